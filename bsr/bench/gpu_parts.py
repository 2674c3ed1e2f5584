"""The four parts of ``bsr bench gpu``: train, model steps, separation, memory.

Each part returns ``(rows, notes)``: rows of the one table (``part``, ``run``, ``figure``,
``value``, ``device``, values already formatted) and the notes that explain them. The plan
(:class:`bsr.bench.gpu.Plan`) says how big each part is; the clock how much time is left.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bsr.bench.common import MIB, PeakMemory, _cell, peak_flops, timed
from bsr.errors import BsrError

PRACTICE_SEED = 19
"""Seed of the generated practice set: not 1000, the course model's training songs."""


def device_label(device: torch.device) -> str:
    """``cpu``, or ``cuda (NVIDIA H200)``: the device column of every row."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def value(number: float | int | None, percent: bool = False) -> str:
    """A table value: three significant digits (a percentage for MFU), ``n/a`` if missing."""
    if number is None:
        return "n/a"
    return f"{number:.1%}" if percent else _cell(number)


def peak_name(device: torch.device) -> str:
    """What a peak-memory figure is on this device (never "GPU" on a CPU)."""
    if device.type == "cuda":
        return "peak GPU MiB (torch.cuda.max_memory_allocated)"
    return "peak MiB, CPU process RSS"


class Rows(list):
    """The rows of one part, all on one device."""

    def __init__(self, part: str, device: torch.device):
        super().__init__()
        self.part, self.device = part, device_label(device)

    def add(self, run: str, figure: str, number, percent: bool = False) -> None:
        self.append({"part": self.part, "run": run, "figure": figure,
                     "value": value(number, percent), "device": self.device})  # fmt: skip


# ---------------------------------------------------------------------------- (a) train


def part_train(plan, device: torch.device, folder: Path, seconds_left: float):
    """(a) Train the plan's preset on a generated practice set for a time budget, then score
    it and the shipped course model on the same unseen test songs."""
    from bsr.config import load_config
    from bsr.data.synth import write_practice_set
    from bsr.train import pick_precision, train

    config = load_config(plan.train_preset)
    if plan.train_overrides:
        train_config = dataclasses.replace(config.train, **plan.train_overrides).validate()
        config = dataclasses.replace(config, train=train_config)
    t = config.train
    start = time.perf_counter()
    data = write_practice_set(folder / "practice", plan.songs, plan.song_seconds, PRACTICE_SEED,
                              sample_rate=config.model.sample_rate)  # fmt: skip
    written = time.perf_counter() - start
    budget = max(1.0, min(plan.train_seconds, seconds_left))
    memory = PeakMemory(device)
    memory.start()
    start = time.perf_counter()
    train(config, data, folder / "run", device=device, steps=plan.train_steps,
          max_seconds=budget, progress=False)  # fmt: skip
    wall = time.perf_counter() - start
    peak = memory.stop()
    records = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").open()]
    steps = [r["steps_per_s"] for r in records if r["event"] == "step"]
    valid = [r["usdr_mean"] for r in records if r["event"] == "valid"]
    rate = statistics.median(steps[1:] or steps)  # the first step warms up
    batch = t.batch_size * t.grad_accum
    precision = pick_precision(t.precision, device)
    run = (f"train {config.name}, {precision}, batch {batch} x {t.segment_seconds:g} s, "
           f"{len(steps)} steps in {wall:.0f} s")  # fmt: skip
    rows = Rows("(a) train", device)
    rows.add(run, "steps/s (median)", rate)
    rows.add(run, "items/s (batch x steps/s)", batch * rate)
    rows.add(run, peak_name(device), peak / MIB)
    rows.add(run, "validation uSDR dB (train's own: EMA, one chunk per test song)",
             valid[-1] if valid else None)  # fmt: skip
    songs = sorted(p for p in (data / "test").iterdir() if p.is_dir())
    scored, notes = score_models(folder / "run" / "model.pt", songs, device)
    what = (
        f"{len(songs)} test song{'s' * (len(songs) != 1)} x {plan.song_seconds:g} s, bsr.separate"
    )
    for name, score in scored.items():
        rows.add(f"{name}, {what}", "validation uSDR dB (mean over stems and songs)", score)
    tests = len(songs)
    notes.insert(0, (
        f"(a) practice set: {plan.songs} songs of {plan.song_seconds:g} s (seed "
        f"{PRACTICE_SEED}; {plan.songs - tests} train, {tests} test), written in {written:.1f} s "
        f"to a temporary folder. {plan.why_songs}"
    ))  # fmt: skip
    stop = f"{budget:.0f} s" + (f" or {plan.train_steps} steps" if plan.train_steps else "")
    notes.append(
        f"(a) training stops by time or steps ({stop}); steps/s is the median of the logged "
        "steps after the first; the peak includes validation (CPU: main process only)"
    )
    return rows, notes


def score_models(trained_path: Path, songs: list[Path], device: torch.device):
    """Mean uSDR of the trained model and of the course model on ``songs``, separated whole.

    Returns ``({name: dB}, notes)``. Both are scored on the trained model's stems; the course
    model only where it has them (its drums, bass and other summed for ``accompaniment``).
    """
    from bsr.hub import load_model

    trained = load_model(trained_path, device=device)
    course = load_model("course", device=device)
    stems = list(trained.stems)
    rate = trained.config.sample_rate
    scores = {"the model trained here (EMA)": song_usdr(trained, songs, stems)}
    notes = []
    if course.config.sample_rate != rate:
        notes.append(f"(a) course model not scored: it runs at {course.config.sample_rate} Hz, "
                     f"the songs at {rate} Hz (resampling needs librosa)")  # fmt: skip
    elif not all(_course_can(course, stem) for stem in stems):
        notes.append(f"(a) course model not scored: it has no estimate of all of {stems}")
    else:
        scores["course model (shipped), same songs"] = song_usdr(course, songs, stems)
    return scores, notes


def _course_can(model, stem: str) -> bool:
    return stem in model.stems or (stem == "accompaniment" and {"drums", "bass", "other"}
                                   <= set(model.stems))  # fmt: skip


def song_usdr(model, songs: list[Path], stems: list[str]) -> float:
    """uSDR (dB) of ``model`` separating each whole song, averaged over songs and ``stems``."""
    from bsr.audio import read_audio
    from bsr.evaluate import usdr
    from bsr.separate import separate

    values = []
    for song in songs:
        mixture, rate = read_audio(song / "mixture.wav")
        estimates = separate(mixture, rate, model)
        for stem in stems:
            parts = [stem] if stem != "accompaniment" else ["drums", "bass", "other"]
            reference = sum(read_audio(song / f"{p}.wav")[0] for p in parts)
            estimate = estimates[stem] if stem in estimates else sum(estimates[p] for p in parts)
            values.append(usdr(np.asarray(reference).T, np.asarray(estimate).T))
    return float(np.mean(values))


# ---------------------------------------------------------------------------- (b) model


def matmul_rate(device: torch.device, precision: str) -> tuple[float, int]:
    """Measured FLOP/s of square matrix products in ``precision`` on ``device``, and ``n``."""
    n, repeats = (8192, 50) if device.type == "cuda" else (384, 4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(device, dtype) for _ in range(2))
    for _ in range(3):
        torch.mm(a, b)  # warm-up: kernels chosen, clocks up
    elapsed = timed(lambda: [torch.mm(a, b) for _ in range(repeats)], device)
    return 2.0 * n**3 * repeats / elapsed, n


def part_model(plan, device: torch.device):
    """(b) ``bsr bench model --preset P --precision bf16 --compare lucidrains``, MFU against
    the measured matrix rate; bsr alone where the peer cannot be imported or fails."""
    from bsr.bench.model import bench_model
    from bsr.bench.peer import PEER_WHEELS, peer_module
    from bsr.config import load_config

    precision, notes = plan.model_precision, []
    compare: str | None = "lucidrains"
    try:
        peer_module()
    except BsrError as error:
        compare = None
        wheels = ", ".join(PEER_WHEELS)
        notes.append(f"(b) lucidrains not compared ({error}): bring the wheels {wheels}")
    rate, n = matmul_rate(device, precision)
    options = dict(batch=plan.model_batch, seconds=plan.model_seconds, precision=precision,
                   steps=plan.model_steps, warmup=plan.model_warmup, device=device,
                   peak_tflops=rate / 1e12)  # fmt: skip
    try:
        table = bench_model(plan.model_preset, compare=compare, **options)
    except BsrError as error:
        if compare is None:
            raise
        notes.append(f"(b) lucidrains failed, bsr timed alone: {error}")
        compare, table = None, bench_model(plan.model_preset, **options)
    config = load_config(plan.model_preset)
    batch = plan.model_batch or config.train.batch_size
    seconds = table.details["samples"] / config.model.sample_rate
    sheet, source = peak_flops(device, precision)
    clips = f"batch {batch} x {seconds:.2f} s"
    rows = Rows("(b) model", device)
    rows.add(f"{n}x{n} torch.mm, {precision}", "matrix rate TFLOP/s (measured)", rate / 1e12)
    for row in table.rows:
        run = f"{row['network']} {config.name} {row['step']}, {precision}, {clips}"
        if " / " in row["network"]:  # the ratio row: text such as "1.05x"
            rows.append(rows_entry(rows, run, "steps/s ratio", row["steps/s"]))
            continue
        rows.add(run, "steps/s (median)", row["steps/s"])
        rows.add(run, "items/s (batch x steps/s)", batch * row["steps/s"])
        if row["step"] == "train":
            rows.add(run, peak_name(device), row["peak MiB"])
        rows.add(run, "MFU vs measured matrix rate", row["MFU"], percent=True)
        if sheet:
            rows.add(run, "MFU vs data sheet", row["TFLOP/s"] * 1e12 / sheet, percent=True)
    notes += [
        f"(b) {table.title}: {table.header[-1].removeprefix('run: ')}",
        f"(b) MFU = analytic matrix FLOPs / time / peak; peaks: the measured {precision} "
        f"torch.mm rate ({rate / 1e12:.3g} TFLOP/s) and the data sheet "
        f"({source if sheet else 'none known for this device'})",
        *(f"(b) {note}" for note in table.notes if "ratios" in note or "compared" in note),
    ]
    return rows, notes


def rows_entry(rows: Rows, run: str, figure: str, text) -> dict:
    """A row whose value is already text (a ratio such as ``1.05x``)."""
    return {"part": rows.part, "run": run, "figure": figure, "value": str(text),
            "device": rows.device}  # fmt: skip


# ---------------------------------------------------------------------------- (c) separate


def part_separate(plan, device: torch.device):
    """(c) Separate one song of ``plan.separate_minutes`` with the big preset (random
    weights) and with the course model: seconds, real-time factor, peak memory."""
    from bsr.bench.separate import bench_separate

    rows, notes = Rows("(c) separate", device), []
    for name, options in (
        (f"{plan.model_preset} (random weights)", {"preset": plan.model_preset}),
        ("course model", {"model": "course"}),
    ):
        table = bench_separate(minutes=plan.separate_minutes, device=device, **options)
        row = table.rows[0]
        windows = f"{row['windows']} window{'s' * (row['windows'] != 1)}"
        run = f"{name}, {row['track']}, {windows}, {row['precision']}"
        rows.add(run, "seconds", row["seconds"])
        rows.add(run, "RTF (compute s / audio s)", row["RTF"])
        rows.add(run, "x real time", row["x real time"])
        rows.add(run, peak_name(device), row["peak MiB"])
        notes.append(f"(c) {name}: {table.header[-1].removeprefix('run: ')}")
    return rows, notes


# ---------------------------------------------------------------------------- (d) memory


def part_memory(plan, device: torch.device, seconds_left):
    """(d) ``bsr bench memory``: the largest training batch per card size, preset by preset,
    checkpointing off then on; a measurement that would overrun the budget is skipped."""
    from bsr.bench.memory import CAPACITIES_GB, bench_memory

    rows, notes, longest = Rows("(d) memory", device), [], 0.0
    on_gpu = device.type == "cuda"
    cards = " / ".join(f"{c:g}" for c in CAPACITIES_GB)
    for preset in plan.memory_presets:
        for checkpointing in (False, True):
            verify = on_gpu and not checkpointing
            if rows and seconds_left() < 2 * longest + 5:
                notes.append(f"(d) {preset} checkpointing {'on' if checkpointing else 'off'}: "
                             "skipped, the time budget is spent")  # fmt: skip
                continue
            start = time.perf_counter()
            table = bench_memory([preset], seconds=plan.memory_seconds, device=device,
                                 checkpointing=(checkpointing,), verify=verify)  # fmt: skip
            longest = max(longest, time.perf_counter() - start)
            row = table.rows[0]
            run = (f"{row['preset']}, {plan.memory_seconds:g} s clips, checkpointing "
                   f"{row['checkpointing']}")  # fmt: skip
            batches = " / ".join(value(row[f"{c:g} GB"]) for c in CAPACITIES_GB)
            rows.append(rows_entry(rows, run, f"largest batch at {cards} GB (computed)", batches))
            rows.add(run, "GiB per item", row["per item GiB"])
            if verify:
                rows.add(run, "largest batch on this GPU (measured)", row["this GPU, measured"])
    notes.append(
        "(d) computed: floor((0.9 x card - fixed) / per item) from steps at batch 1 and 2; "
        + ("measured: that batch run on this GPU, stepping down until one fits (checkpointing "
           "off; on is computed only, to keep the budget)" if on_gpu else
           "CPU: peaks counted (weights, gradients, AdamW, saved tensors), a lower bound")
    )  # fmt: skip
    return rows, notes
