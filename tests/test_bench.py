"""``bsr bench``: the FLOP count, the tables, the comparison with the peer, bad arguments.

Everything runs on the tiny preset with a few steps: these tests check that the
benchmarks measure the right thing and print it, never how fast anything is.
"""

from __future__ import annotations

import argparse
import dataclasses
from unittest import mock

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bsr import BsrError, BSRoformer, load_config
from bsr.attention import Attention
from bsr.bench import (
    MODEL_COLUMNS,
    Contender,
    Table,
    add_bench_parser,
    bench_data,
    bench_eval,
    bench_model,
    bench_separate,
    comparable_config,
    flop_breakdown,
    model_flops,
    peak_flops,
    run_step,
    set_threads,
)

# The peer warns about torch's deprecated sdp_kernel context and its STFT window check.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and leave the other cores alone)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = dict(preset="tiny", batch=1, seconds=0.1, steps=2, warmup=0, device="cpu")


def counted_flops(config, batch: int, samples: int, backward: bool = False) -> int:
    """FLOPs torch's own counter sees in a forward (and backward) pass."""
    model = BSRoformer(config)
    audio = torch.randn(batch, config.channels, samples)

    def explicit(layer, x, rope=None):  # explicit q k^T and A v: products the counter sees
        return layer.explicit(x, rope)[0]

    with mock.patch.object(Attention, "forward", explicit):
        with FlopCounterMode(display=False) as counter:
            out = model(audio)
            if backward:
                out.square().mean().backward()
    return counter.get_total_flops()


FLOP_CASES = {
    "tiny": {},
    "gates-final-deep-mask": dict(
        gates=True, mask_norm="final", mask_estimator_depth=3, time_transformer_depth=2
    ),
    "mel-dimhead": dict(bands="mel", num_mel_bands=12, dim_head=8, channels=1, stems=["vocals"]),
}


@pytest.mark.parametrize("overrides", FLOP_CASES.values(), ids=FLOP_CASES.keys())
def test_flop_count_agrees_with_torch_counter(overrides):
    config = dataclasses.replace(load_config("tiny").model, **overrides).validate()
    samples = 9 * config.hop_length + 5
    ours = model_flops(config, 2, samples)
    assert ours == pytest.approx(counted_flops(config, 2, samples), rel=0.1)
    # A training step is counted as three forward passes.
    assert 3 * ours == pytest.approx(counted_flops(config, 2, samples, backward=True), rel=0.1)


def test_flop_breakdown_names_the_parts_and_grows_with_length():
    config = load_config("small").model
    parts = flop_breakdown(config, 1, 44100)
    assert set(parts) == {
        "band split",
        "attention projections",
        "attention scores",
        "feed-forward",
        "mask estimators",
    }
    assert all(value > 0 for value in parts.values())
    assert model_flops(config, 2, 44100) == pytest.approx(2 * sum(parts.values()))
    # Attention over time is quadratic in the frames: doubling the clip more than doubles it.
    assert model_flops(config, 1, 88200) > 2 * model_flops(config, 1, 44100)


def test_bench_model_table_has_the_columns_and_figures():
    table = bench_model(**TINY, mode="both", stft_loss=False)
    assert table.columns == MODEL_COLUMNS
    assert [row["step"] for row in table.rows] == ["train", "infer"]
    for row in table.rows:
        assert row["network"] == "bsr" and row["precision"] == "fp32"
        assert row["steps/s"] > 0 and row["median ms"] > 0 and row["peak MiB"] > 0
        assert row["audio s/s"] == pytest.approx(row["steps/s"] * table.details["samples"] / 44100)
        assert row["MFU"] is None  # a CPU has no known peak
    text = table.format()
    for word in ("machine:", "torch", "config: tiny", "| network |", "n/a"):
        assert word in text
    # The training step's FLOPs are three forward passes.
    train, infer = table.rows
    assert train["TFLOP/s"] * train["median ms"] == pytest.approx(
        3 * infer["TFLOP/s"] * infer["median ms"]
    )


def test_bench_model_mfu_with_a_given_peak():
    table = bench_model(**TINY, mode="infer", peak_tflops=1.0)
    (row,) = table.rows
    assert row["MFU"] == pytest.approx(row["TFLOP/s"] / 1.0)
    assert "%" in table.format()


def test_compare_lucidrains_checks_outputs_and_prints_ratios():
    pytest.importorskip("bs_roformer")
    table = bench_model(**TINY, mode="both", compare="lucidrains", stft_loss=False)
    assert [row["network"] for row in table.rows] == ["bsr", "lucidrains", "bsr / lucidrains"] * 2
    assert table.details["relative_error"] <= 1e-4
    ratio = table.details["ratio_infer"]
    bsr, peer = table.rows[3], table.rows[4]
    assert ratio["steps/s"] == pytest.approx(bsr["steps/s"] / peer["steps/s"])
    assert table.rows[5]["steps/s"].endswith("x")
    # tiny is a paper-style preset: the table says how it was made comparable.
    text = table.format()
    assert "mask_norm: 'per_band' -> 'final'" in text and "bs-roformer 0.4.1" in text


def test_comparable_config_keeps_the_sizes():
    config = load_config("tiny").model
    peer_config, changes = comparable_config(config)
    same = ("dim", "depth", "heads", "bands", "n_fft", "hop_length", "stems", "channels")
    assert all(getattr(peer_config, key) == getattr(config, key) for key in same)
    assert (peer_config.mask_norm, peer_config.gates, peer_config.mlp_expansion_factor) == (
        "final",
        True,
        4,
    )
    assert len(changes) == 3
    assert comparable_config(peer_config)[1] == []  # already comparable: nothing changes
    with pytest.raises(BsrError, match="mel"):
        comparable_config(load_config("mel-l6").model)


def test_peak_flops_table(monkeypatch):
    assert peak_flops(torch.device("cpu"), "fp32")[0] is None
    assert peak_flops(torch.device("cpu"), "bf16", peak_tflops=2.0)[0] == 2e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert peak_flops(torch.device("cuda"), "bf16")[0] == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert peak_flops(torch.device("cuda"), "bf16")[0] == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak_flops(torch.device("cuda"), "bf16")[0] is None


def test_bench_separate_short_track():
    table = bench_separate(
        "tiny", minutes=0.02, device="cpu", window_seconds=0.5, hop_seconds=0.25, batch_size=2
    )
    (row,) = table.rows
    assert row["windows"] == 6  # ceil((1.2 s + 0.25 s padding) / 0.25 s)
    assert row["RTF"] == pytest.approx(1 / row["x real time"])
    assert "RTF" in table.format() and "machine:" in table.format()


def test_bench_separate_several_lengths_one_row_each_in_fresh_processes():
    table = bench_separate(
        "tiny", minutes=[0.02, 0.04], device="cpu", window_seconds=0.5, hop_seconds=0.25,
        batch_size=2,
    )  # fmt: skip
    assert [row["track"] for row in table.rows] == ["0.02 min stereo", "0.04 min stereo"]
    assert [row["windows"] for row in table.rows] == [6, 11]  # ceil((len + 0.25 s) / 0.25 s)
    for row, minutes in zip(table.rows, (0.02, 0.04)):
        assert row["seconds"] > 0 and row["RTF"] == pytest.approx(1 / row["x real time"])
        assert row["s / audio min"] == pytest.approx(row["seconds"] / minutes, rel=1e-3)
        assert 100 < row["start MiB"] <= row["peak MiB"] < 4000  # a Python process with torch
    text = table.format()
    assert text.count(" min stereo |") == 2 and "each length in a fresh process" in text
    assert "time per audio minute" in table.notes[-1] and "MiB per audio minute" in text


def test_bench_separate_cli_takes_lengths_and_a_trained_model(capsys):
    args = bench_cli().parse_args(
        "bench separate --model course --minutes 0.03 --batch-size 1 --device cpu".split()
    )
    assert args.minutes == [0.03] and args.model == "course"
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "bsr bench separate: course" in out and "trained weights" in out
    assert "windows 2 s every 1 s" in out  # the course model's own windows, as bsr separate
    assert out.count(" min stereo |") == 1


def test_cpu_peak_memory_sees_a_big_allocation_and_forgets_it_after_a_reset():
    from bsr.bench.common import MIB, PeakMemory, resident_bytes

    memory = PeakMemory(torch.device("cpu"))
    if not memory.resettable:
        pytest.skip("this kernel does not let a process reset its peak RSS (clear_refs)")
    before = resident_bytes()
    memory.start()
    block = np.ones(256 * MIB // 4, np.float32)  # 256 MiB, every page touched
    del block
    assert memory.stop() - before >= 250 * MIB
    memory.start()
    assert memory.stop() - resident_bytes() < 20 * MIB  # the reset forgot the block


def test_bench_data_tiny():
    table = bench_data(songs=1, song_seconds=1.0, segment_seconds=0.5, items=2)
    assert [row["items"] for row in table.rows] == [1, 2, 2]
    assert all(row["audio s/s"] > 0 for row in table.rows)


def test_bench_eval_tiny():
    table = bench_eval(seconds=1.0, targets=["vocals"])
    (row,) = table.rows
    assert row["frames"] == 1 and row["audio s/s"] > 0


def test_table_format():
    table = Table("t", ["a", "b", "MFU"], formats={"MFU": "{:.1%}"}, header=["machine: x"])
    table.rows.append({"a": "row", "b": 1234.5678, "MFU": 0.1234})
    table.rows.append({"a": "other", "b": 0.012345, "MFU": None})
    text = table.format()
    assert "| row | 1235 | 12.3% |" in text and "| other | 0.0123 | n/a |" in text


BAD = {
    "unknown preset": (dict(TINY, preset="no-such-preset"), "unknown preset"),
    "fp16 on cpu": (dict(TINY, precision="fp16"), "fp16 needs a CUDA GPU"),
    "unknown precision": (dict(TINY, precision="fp8"), "unknown precision"),
    "mode": (dict(TINY, mode="fast"), "unknown mode"),
    "peer": (dict(TINY, compare="demucs"), "cannot compare"),
    "batch": (dict(TINY, batch=0), "--batch must be positive"),
    "steps": (dict(TINY, steps=0), "--steps must be positive"),
    "device": (dict(TINY, device="tpu"), "device"),
    "mel peer": (dict(TINY, preset="mel-l6", compare="lucidrains"), "mel"),
}


@pytest.mark.parametrize("kwargs, message", BAD.values(), ids=BAD.keys())
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(BsrError, match=message):
        bench_model(**kwargs)


def test_bad_other_arguments():
    with pytest.raises(BsrError, match="fp16"):
        bench_separate("tiny", minutes=0.01, device="cpu", precision="fp16")
    with pytest.raises(BsrError, match="--hop"):
        bench_separate("tiny", minutes=0.01, device="cpu", window_seconds=1, hop_seconds=2)
    with pytest.raises(BsrError, match="--minutes must be positive"):
        bench_separate("tiny", minutes=[1, 0], device="cpu")
    with pytest.raises(BsrError, match="at least one length"):
        bench_separate("tiny", minutes=[], device="cpu")
    with pytest.raises(BsrError, match="segment"):
        bench_data(songs=1, song_seconds=1.0, segment_seconds=2.0)
    with pytest.raises(BsrError, match="targets"):
        bench_eval(seconds=1.0, targets=["drums"])


def test_a_failing_peer_is_reported_as_a_user_error():
    def broken() -> None:
        raise RuntimeError("view_as_complex is only supported for float tensors\nmore")

    peer = Contender("lucidrains", broken, torch.nn.Linear(1, 1), quiet=True)
    with pytest.raises(BsrError, match="failed here .view_as_complex.*--precision fp32"):
        run_step(peer, peer.step)
    ours = Contender("bsr", broken, torch.nn.Linear(1, 1))
    with pytest.raises(RuntimeError):  # a bsr failure is a bug: shown as it is
        run_step(ours, ours.step)
    with pytest.raises(BsrError, match="--threads"):
        set_threads(0)


def bench_cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bsr")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_prints_one_table(capsys):
    args = bench_cli().parse_args(
        "bench model --preset tiny --batch 1 --seconds 0.1 --steps 1 --warmup 0 "
        "--mode infer --device cpu".split()
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.count("| network |") == 1 and "config: tiny" in out


def test_cli_arguments_and_defaults():
    parser = bench_cli()
    args = parser.parse_args(["bench", "model"])
    assert (args.preset, args.precision, args.mode, args.compare) == ("small", "auto", "both", None)
    assert args.stft_loss is True
    args = parser.parse_args(["bench", "model", "--compare", "lucidrains", "--no-stft-loss"])
    assert (args.compare, args.stft_loss) == ("lucidrains", False)
    args = parser.parse_args(["bench", "separate"])
    assert (args.minutes, args.model, args.window, args.hop) == ([3.0], None, None, None)
    assert parser.parse_args(["bench", "separate", "--minutes", "1", "2"]).minutes == [1.0, 2.0]
    for action in ("data", "eval"):
        assert callable(parser.parse_args(["bench", action]).func)
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "model", "--precision", "fp8"])
