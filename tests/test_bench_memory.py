"""``bsr bench memory``: the arithmetic, the saved-tensor count, and a CPU run of the table.

The real figures need a GPU (``torch.cuda.max_memory_allocated``); on a CPU the peaks are
counted from what autograd keeps, which these tests compare with hand-computed sizes.
"""

from __future__ import annotations

import argparse

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from bsr import BsrError
from bsr.bench import add_bench_parser
from bsr.bench.memory import (
    GIB,
    USABLE,
    Probe,
    bench_memory,
    largest_batch,
    measured_batch,
    saved_for_backward,
)


def test_largest_batch_arithmetic():
    # 16 GB card: 0.9 * 16 GiB = 14.4 GiB; minus 1 GiB fixed leaves 13.4 GiB; 2 GiB per item.
    assert USABLE == 0.9
    assert largest_batch(1 * GIB, 2 * GIB, 16) == 6
    assert largest_batch(20 * GIB, 1 * GIB, 16) == 0  # the weights alone do not fit
    assert largest_batch(1 * GIB, 0.0, 16) is None  # no per-item figure, no answer


def test_saved_tensors_are_counted_once_per_storage():
    x = torch.randn(1000, requires_grad=True)  # 4000 bytes
    w = torch.randn(1000, requires_grad=True)
    saved = saved_for_backward()
    with saved:
        y = x * w  # mul keeps both inputs: 8000 bytes
        z = (y * w).sum()  # keeps y (4000) and w again (already counted)
    assert saved.bytes == 12_000
    z.backward()  # the graph still works with the hooks gone
    assert torch.allclose(x.grad, w.detach() ** 2)


def test_checkpointing_keeps_only_the_block_input():
    block = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
    x = torch.randn(32, 64, requires_grad=True)
    plain, checkpointed = saved_for_backward(), saved_for_backward()
    with plain:
        block(x).sum()
    with checkpointed:
        checkpoint(block, x, use_reentrant=False).sum()
    # Plain: x, the 256-wide activations before and after GELU, and weights; far more.
    assert plain.bytes > 3 * 32 * 256 * 4
    assert checkpointed.bytes < plain.bytes / 3


def test_cpu_table_for_the_tiny_preset():
    table = bench_memory(["tiny"], seconds=0.25, device="cpu", capacities=[1, 2, 4])
    assert table.column("checkpointing") == ["off", "on"]
    off, on = table.rows
    for row in table.rows:
        assert row["fixed GiB"] > 0 and row["per item GiB"] > 0
        batches = [row["1 GB"], row["2 GB"], row["4 GB"]]
        assert batches == sorted(batches) and batches[-1] > batches[0]
    assert on["per item GiB"] < off["per item GiB"]  # what checkpointing is for
    text = table.format()
    assert "counted, not measured" in text and "this GPU" not in text


def test_measured_batch_steps_down_until_one_fits(monkeypatch):
    import bsr.bench.memory as module

    tried = []

    def fits(probe, batch):
        tried.append(batch)
        return batch <= 5

    monkeypatch.setattr(module, "fits", fits)
    probe = Probe("tiny", 1.0, torch.device("cpu"), "fp32", False)
    assert measured_batch(probe, 8) == 5
    assert tried == [8, 7, 6, 5]
    assert measured_batch(probe, None) is None


def test_bad_arguments_and_the_cli():
    with pytest.raises(BsrError, match="--seconds must be positive"):
        bench_memory(["tiny"], seconds=0, device="cpu")
    with pytest.raises(BsrError, match="--capacities"):
        bench_memory(["tiny"], seconds=1, device="cpu", capacities=[16, -1])
    parser = argparse.ArgumentParser(prog="bsr")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", "memory"])
    assert args.presets == ["paper-l6", "paper-l12"] and args.seconds == 8.0
    assert args.capacities == [16, 24, 40, 80] and callable(args.func)
