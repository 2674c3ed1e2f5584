"""``bsr bench gpu``: one check of a GPU machine, at most eight minutes, one table.

    bsr bench gpu              # on the GPU machine (python -m bsr bench gpu from a checkout)
    bsr bench gpu --smoke      # the same code paths at tiny size, on any device, CPU included

Four parts, each run through the same functions as the other ``bsr bench`` actions:

(a) **train** the ``gpu-t4`` preset with :func:`bsr.train.train` for three minutes on a
    practice set generated into a temporary folder: steps/s, items/s, peak memory, and the
    validation uSDR reached beside the shipped course model's on the same unseen songs;
(b) **model**: ``bsr bench model --preset paper-l6 --precision bf16 --compare lucidrains``,
    MFU against the matrix rate measured on this device and against the data sheet (bsr
    alone, with the wheels to bring named, where bs-roformer cannot be imported);
(c) **separate** a 3-minute song with paper-l6 (random weights) and the course model;
(d) **memory**: ``bsr bench memory``, the largest training batch per card size.

Budget (full run, 465 s, so that with Python's start it stays under eight minutes): (a)
about 215 s (practice set ~10 s, training 180 s by the clock, scoring ~20 s), (b) ~40 s,
(c) ~20 s, (d) the rest, a measurement skipped when the time left would not cover it.
Every row names its device; a CPU run says ``cpu`` on every row and in the title, so a CPU
figure is never taken for a GPU one.

What it needs: torch, numpy, scipy, pyyaml and **soundfile** (the training sampler reads
the practice songs with it), checked first, in one line. librosa, musdb and museval are
not needed; bs-roformer (for the comparison) is optional.
"""

from __future__ import annotations

import gc
import importlib
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bsr.bench.common import Table, machine_summary, resolve_device, software_summary
from bsr.bench.gpu_parts import part_memory, part_model, part_separate, part_train
from bsr.errors import BsrError

GPU_COLUMNS = ["part", "run", "figure", "value", "device"]
NEEDED = (("soundfile", "soundfile cffi pycparser"), ("scipy", "scipy"))
"""(module, wheels) that ``bsr bench gpu`` imports on its way, checked before anything runs."""


@dataclass(frozen=True)
class Plan:
    """How big each part is, and the time they have together."""

    train_preset: str
    songs: int
    song_seconds: float
    train_seconds: float  # (a) training budget: train(max_seconds=...)
    train_steps: int | None  # (a) or a number of steps (None: the preset's, so time decides)
    train_overrides: dict  # (a) train settings changed from the preset's (smoke: shorter clips)
    why_songs: str
    model_preset: str
    model_batch: int | None  # None: the preset's
    model_seconds: float | None
    model_steps: int
    model_warmup: int
    model_precision: str
    separate_minutes: float
    memory_presets: tuple[str, ...]
    memory_seconds: float
    budget: float  # seconds, all parts
    reserve: float  # seconds kept for (b)-(d) when (a) trains


FULL = Plan(
    train_preset="gpu-t4", songs=24, song_seconds=30.0, train_seconds=180.0, train_steps=None,
    train_overrides={},
    why_songs="Why: 16 training songs give random mixing (each stem from any song and offset) "
    "enough material that three minutes of training (tens of thousands of 2 s items) does "
    "not just learn a few songs by heart, their stems fit the preset's RAM cache (~170 MB), "
    "and writing them takes about 10 s on one core; 8 test songs (4 min of audio) make a "
    "stable mean uSDR and are separated in seconds. Seed 19, not the course model's 1000: "
    "neither model has heard them.",
    model_preset="paper-l6", model_batch=None, model_seconds=None, model_steps=10,
    model_warmup=3, model_precision="bf16", separate_minutes=3.0,
    memory_presets=("paper-l6", "paper-l12"), memory_seconds=8.0, budget=465.0, reserve=200.0,
)  # fmt: skip

SMOKE = Plan(
    train_preset="tiny", songs=3, song_seconds=4.0, train_seconds=20.0, train_steps=3,
    train_overrides={"segment_seconds": 0.5, "valid_seconds": 4.0},
    why_songs="Smoke: the fewest songs that give a train and a test subset, short enough to "
    "write and separate in a second.",
    model_preset="tiny", model_batch=1, model_seconds=0.25, model_steps=2, model_warmup=1,
    model_precision="bf16", separate_minutes=0.05, memory_presets=("tiny",),
    memory_seconds=0.25, budget=120.0, reserve=30.0,
)  # fmt: skip


def check_needs() -> None:
    """One line naming the wheels to bring, before anything runs, when one is missing."""
    missing = []
    for module, wheels in NEEDED:
        try:
            importlib.import_module(module)
        except (ImportError, OSError) as error:  # OSError: soundfile without libsndfile
            missing.append((module, wheels, (str(error).splitlines() or [""])[0]))
    if missing:
        names = " and ".join(module for module, _, _ in missing)
        why = "; ".join(reason for _, _, reason in missing)
        wheels = " ".join(wheel for _, wheel, _ in missing)
        raise BsrError(
            f"bsr bench gpu needs {names} here ({why}): pip install {wheels} (bring the wheels)"
        )


class Clock:
    """The run's budget: seconds left, and how long each part took."""

    def __init__(self, budget: float):
        self.budget, self.start, self.parts = budget, time.perf_counter(), {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()

    def run(self, name: str, fn: Callable[[], tuple[list, list]]) -> tuple[list, list]:
        """``fn()``, timed; a failure becomes a FAILED row (the other parts still run), and
        a part that would start after the budget is spent a SKIPPED row."""
        start = time.perf_counter()
        if self.left() <= 0:
            row = {"part": name, "run": "SKIPPED", "figure": "the time budget is spent",
                   "value": "n/a", "device": "n/a"}  # fmt: skip
            return [row], [f"{name} skipped: the {self.budget:.0f} s budget was spent before it"]
        try:
            return fn()
        except (BsrError, RuntimeError, OSError) as error:  # OutOfMemoryError included
            reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
            row = {"part": name, "run": "FAILED", "figure": reason, "value": "n/a",
                   "device": "n/a"}  # fmt: skip
            return [row], [f"{name} failed: {reason}"]
        finally:
            gc.collect()  # this part's models and tensors, before the next part measures
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.parts[name] = time.perf_counter() - start


def bench_gpu(
    smoke: bool = False,
    preset: str | None = None,
    device: str | torch.device | None = None,
    budget: float | None = None,
    command: str = "bsr bench gpu",
) -> Table:
    """Run parts (a)-(d) and return their one table (see the module's docstring).

    ``smoke`` runs them at tiny size on any device; otherwise a CUDA GPU is required.
    ``preset`` replaces the training preset of (a); ``budget`` the seconds of all parts.
    """
    plan = SMOKE if smoke else FULL
    if preset is not None:
        from bsr.config import load_config

        load_config(preset)  # an unknown preset: a one-line error before anything runs
        plan = _replace(plan, train_preset=preset)
    if budget is not None:
        if not budget > 0:
            raise BsrError(f"--budget must be positive, got {budget}: e.g. --budget 480")
        plan = _replace(plan, budget=budget)
    device = resolve_device(device)
    if device.type != "cuda" and not smoke:
        raise BsrError(
            "bsr bench gpu needs a CUDA GPU (torch sees none here): run bsr bench gpu --smoke "
            "for the CPU check of the same code paths"
        )
    check_needs()
    clock = Clock(plan.budget)
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bsr-bench-gpu-") as folder:
        work = Path(folder)
        for name, fn in (
            ("(a) train", lambda: part_train(plan, device, work, clock.left() - plan.reserve)),
            ("(b) model", lambda: part_model(plan, device)),
            ("(c) separate", lambda: part_separate(plan, device)),
            ("(d) memory", lambda: part_memory(plan, device, clock.left)),
        ):
            part_rows, part_notes = clock.run(name, fn)
            rows += part_rows
            notes += part_notes
    return _table(plan, smoke, device, rows, notes, clock, command)


def _replace(plan: Plan, **changes) -> Plan:
    import dataclasses

    return dataclasses.replace(plan, **changes)


def _table(plan: Plan, smoke: bool, device, rows, notes, clock: Clock, command: str) -> Table:
    """The one table: header (machine, GPU, torch, command, time), rows, notes."""
    on_cpu = device.type != "cuda"
    what = "CPU figures (no GPU used)" if on_cpu else torch.cuda.get_device_name(device)
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in clock.parts.items())
    header = [
        machine_summary(device),
        software_summary(f", Python {platform.python_version()}"),
        f"command: {command}",
        f"wall clock: {clock.elapsed():.0f} s of a {plan.budget:.0f} s budget ({parts})",
    ]
    if on_cpu:
        header.append("every figure below is a CPU figure, not a GPU one (device: cpu)")
    failed = [row["part"] for row in rows if row["run"] == "FAILED"]
    return Table(
        title=f"bsr bench gpu{' --smoke' if smoke else ''}: {what}",
        columns=list(GPU_COLUMNS),
        rows=rows,
        header=header,
        notes=notes,
        details={"failed": failed, "parts_seconds": dict(clock.parts)},
    )
