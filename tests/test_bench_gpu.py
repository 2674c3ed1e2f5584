"""``bsr bench gpu``: its smoke run on the CPU, without the packages the GPU machine lacks,
and the GPU precision paths (bf16 autocast, fp16 with a gradient scaler) on the CPU.

The smoke run goes through every code path of the real GPU check at tiny size; these tests
check that each part (a)-(d) prints numbers and says ``cpu``, never how fast anything is.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bsr import BsrError
from bsr.bench.common import Table
from bsr.cli import main

REPO = Path(__file__).resolve().parents[1]
PARTS = ("(a) train", "(b) model", "(c) separate", "(d) memory")
NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
VALUE = re.compile(rf"{NUMBER}(?:%|x)?(?: / {NUMBER})*")
NOT_ON_THE_GPU_MACHINE = ("librosa", "musdb", "museval", "bs_roformer")

# Hides modules from every import, as if they were not installed: each finder on
# sys.meta_path is wrapped so that it finds nothing under a blocked name.
SITECUSTOMIZE = """
import os, sys

BLOCKED = set(os.environ["BSR_TEST_BLOCK"].split(","))


class Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
"""

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the printed table, as ``{column: cell}``."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    columns = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(columns, cells)))
    return rows


def check_cpu_table(text: str) -> list[dict[str, str]]:
    """Every part has rows, every value is a number, every row and the title say CPU."""
    assert text.startswith("## bsr bench gpu --smoke: CPU figures"), text[:200]
    assert "command: bsr bench gpu --smoke" in text
    assert "every figure below is a CPU figure" in text
    rows = table_rows(text)
    assert [row["part"] for row in rows if row["part"] not in PARTS] == []
    for part in PARTS:
        assert any(row["part"] == part for row in rows), f"no rows for {part}"
    for row in rows:
        assert row["device"] == "cpu", row
        assert VALUE.fullmatch(row["value"]), f"not a number: {row}"
        assert "GPU" not in row["figure"], f"a CPU figure named as a GPU one: {row}"
    figures = {(row["part"], row["figure"]) for row in rows}
    for wanted in [
        ("(a) train", "steps/s (median)"),
        ("(a) train", "items/s (batch x steps/s)"),
        ("(a) train", "peak MiB, CPU process RSS"),
        ("(b) model", "MFU vs measured matrix rate"),
        ("(c) separate", "RTF (compute s / audio s)"),
        ("(d) memory", "largest batch at 16 / 24 / 40 / 80 GB (computed)"),
    ]:
        assert wanted in figures, wanted
    runs = " ".join(row["run"] for row in rows)
    assert "course model (shipped), same songs" in runs  # (a): the comparison on the same songs
    assert "course model" in runs and "(random weights)" in runs  # (c): both models
    return rows


def run_blocked(blocked: tuple[str, ...], args: list[str], tmp_path: Path):
    """``python -m bsr ARGS`` in a fresh process where ``blocked`` cannot be imported."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, BSR_TEST_BLOCK=",".join(blocked), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    probe = f"import importlib.util as u; print([m for m in {blocked!r} if u.find_spec(m)])"
    seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert seen.stdout.strip() == "[]", f"the block did not hide {seen.stdout}{seen.stderr}"
    return subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


# ---------------------------------------------------------------------------- the smoke run


def test_smoke_run_on_the_cpu_prints_every_part_with_numbers(capsys):
    assert main(["bench", "gpu", "--smoke", "--threads", "1"]) == 0
    rows = check_cpu_table(capsys.readouterr().out)
    if importlib.util.find_spec("bs_roformer") is not None:  # the peer compared, as on a GPU
        assert any(row["run"].startswith("lucidrains tiny train") for row in rows)
        assert any(row["figure"] == "steps/s ratio" for row in rows)


def test_smoke_run_without_librosa_musdb_museval_or_the_peer(tmp_path):
    """What the GPU machine lacks is not needed: the run passes, and names the peer's wheels."""
    done = run_blocked(NOT_ON_THE_GPU_MACHINE, ["-m", "bsr", "bench", "gpu", "--smoke",
                                                "--threads", "1"], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = check_cpu_table(done.stdout)
    assert not any(row["run"].startswith("lucidrains") for row in rows)
    assert "(b) lucidrains not compared" in done.stdout
    assert "bring the wheels bs-roformer==0.4.1, beartype, rotary-embedding-torch" in done.stdout


def test_without_soundfile_it_fails_at_the_start_in_one_line(tmp_path):
    """soundfile is the one wheel the GPU check needs beyond torch, numpy, scipy and pyyaml:
    without it ``bsr bench gpu`` stops before running anything, in one line naming it."""
    args = ["-m", "bsr", "bench", "gpu", "--smoke", "--threads", "1"]  # no busy-machine note
    done = run_blocked(("soundfile",), args, tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert lines[0].startswith("bsr: error: bsr bench gpu needs soundfile here")
    assert lines[0].endswith("pip install soundfile cffi pycparser (bring the wheels)")


@pytest.mark.skipif(importlib.util.find_spec("bs_roformer") is None, reason="no bs-roformer")
def test_the_peer_loads_without_librosa(tmp_path):
    """bs-roformer's __init__ imports librosa for its mel model; bsr's peer does without."""
    script = (
        "import torch\n"
        "from bsr import BSRoformer, load_config\n"
        "from bsr.bench.peer import build_peer, comparable_config, output_error\n"
        "config, _ = comparable_config(load_config('tiny').model)\n"
        "model = BSRoformer(config)\n"
        "peer = build_peer(model, torch.device('cpu'))\n"
        "print(type(peer).__module__, output_error(model, peer, 0.1 * torch.randn(1, 2, 4096)))\n"
    )
    done = run_blocked(("librosa",), ["-W", "ignore", "-c", script], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    module, error = done.stdout.split()
    assert module == "bs_roformer.bs_roformer" and float(error) < 1e-4


# ---------------------------------------------------------------------------- errors


def test_the_full_check_needs_a_gpu_and_good_arguments(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "gpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "needs a CUDA GPU" in error and "--smoke" in error
    assert main(["bench", "gpu", "--smoke", "--budget", "0"]) == 2
    assert "--budget must be positive" in capsys.readouterr().err
    assert main(["bench", "gpu", "--smoke", "--preset", "no-such-preset"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_a_failing_part_is_a_row_and_the_command_fails(capsys, monkeypatch):
    from bsr.bench import gpu

    clock = gpu.Clock(10.0)

    def broken():
        raise BsrError("the card is on fire: cool it")

    rows, notes = clock.run("(b) model", broken)
    assert rows[0]["run"] == "FAILED" and rows[0]["figure"] == "the card is on fire: cool it"
    assert (
        notes == ["(b) model failed: the card is on fire: cool it"] and "(b) model" in clock.parts
    )
    skipped, _ = gpu.Clock(0.0).run("(d) memory", broken)  # no time left: not even started
    assert skipped[0]["run"] == "SKIPPED" and skipped[0]["figure"] == "the time budget is spent"
    table = Table("t", list(gpu.GPU_COLUMNS), rows=rows, details={"failed": ["(b) model"]})
    monkeypatch.setattr(gpu, "bench_gpu", lambda *args, **kwargs: table)
    assert main(["bench", "gpu", "--smoke"]) == 2
    captured = capsys.readouterr()
    assert "| (b) model | FAILED |" in captured.out
    assert (
        captured.err.strip()
        == "bsr: error: (b) model failed (see the table): fix that and run again"
    )


# ---------------------------------------------------------------------------- precision paths


def one_step(precision: str):
    """A training step of the tiny model through bsr.train's own pieces, on the CPU.

    ``bsr.train.train`` refuses bf16 and fp16 on a CPU, so the step is taken with the
    pieces it uses (:func:`accumulate_gradients`, :func:`apply_update`), the autocast of
    ``precision`` and, for fp16, a gradient scaler. Returns the run, the loss parts, the
    gradients before the update, the dtype a Linear layer produced, and whether it stepped.
    """
    from bsr.config import load_config
    from bsr.train import accumulate_gradients, apply_update, build_run, target_index

    config = load_config("tiny")
    device = torch.device("cpu")
    run = build_run(config, device)  # the same seed: the same initial weights every time
    if precision == "fp16":
        try:
            run.scaler = torch.amp.GradScaler("cpu")
        except (RuntimeError, TypeError, ValueError) as error:
            pytest.skip(f"this torch has no CPU gradient scaler: {error}")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)
    seen = []
    linear = next(m for m in run.model.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    stems = 0.1 * torch.randn(1, 4, 2, 64 * config.model.hop_length,
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    groups = target_index(config.model.stems)
    parts = accumulate_gradients(run, iter([stems]), groups, run.model, autocast, device)
    grads = torch.cat([p.grad.flatten().float() for p in run.model.parameters()])
    stepped = apply_update(run)
    return run, parts, grads, seen[0], stepped


def test_bf16_autocast_step_on_the_cpu_is_close_to_fp32():
    _, loss32, grads32, dtype32, _ = one_step("fp32")
    run, loss16, grads16, dtype16, stepped = one_step("bf16")
    assert (dtype32, dtype16) == (torch.float32, torch.bfloat16)  # autocast really ran bf16
    assert torch.isfinite(loss16).all() and stepped
    assert torch.allclose(loss16, loss32, rtol=1e-2)
    assert torch.nn.functional.cosine_similarity(grads16, grads32, dim=0) > 0.99
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_fp16_autocast_with_a_grad_scaler_steps_on_the_cpu_without_nan():
    _, loss32, grads32, _, _ = one_step("fp32")
    run, loss16, grads16, dtype, stepped = one_step("fp16")
    assert dtype == torch.float16 and run.scaler.is_enabled()
    scale = run.scaler.get_scale()
    assert torch.isfinite(loss16).all() and torch.allclose(loss16, loss32, rtol=1e-2)
    # The backward ran on the scaled loss: the gradients were `scale` times the fp32 ones.
    ratio = (grads16.norm() / grads32.norm()).item()
    assert 0.5 * scale < ratio < 2 * scale, (ratio, scale)
    assert stepped and scale > 0  # no overflow at this scale: the update was applied
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_train_itself_refuses_bf16_on_the_cpu():
    """Why the two tests above use train's pieces: the loop keeps mixed precision for GPUs."""
    from bsr.train import pick_precision

    with pytest.raises(BsrError, match="needs a CUDA GPU"):
        pick_precision("bf16", torch.device("cpu"))
