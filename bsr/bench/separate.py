"""``bsr bench separate``: the real-time factor and memory of separating whole tracks.

One length (``--minutes 3``) is measured in this process. Several (``--minutes 1 2 5 10``)
are measured each in a fresh Python process, so that no length inherits another's
allocator caches or peak; the table then says whether the time per audio minute and the
memory per audio minute stay constant, i.e. whether separation is linear in length.

    python -m bsr.bench.separate '{"minutes": 1, "preset": "tiny", ...}'

is that fresh process: it measures one length and prints one JSON line.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import torch

from bsr.bench.common import (
    MIB,
    PeakMemory,
    Table,
    autocast,
    check_positive,
    machine_summary,
    peak_flops,
    resident_bytes,
    resolve_device,
    resolve_precision,
    software_summary,
    state_bytes,
    timed,
)
from bsr.bench.flops import model_flops
from bsr.bench.model import describe_config
from bsr.errors import BsrError

SEPARATE_COLUMNS = ("track", "windows", "batch", "precision", "seconds", "RTF", "x real time",
                    "s / audio min", "start MiB", "peak MiB", "TFLOP/s", "MFU")  # fmt: skip

LINEAR_SPREAD = 1.25
"""Time per audio minute within this factor from the shortest to the longest: linear."""


def bench_separate(
    preset: str = "small",
    minutes: float | Sequence[float] = 3.0,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    precision: str = "fp32",
    repeats: int = 1,
    peak_tflops: float | None = None,
    seed: int = 0,
    model: str | None = None,
) -> Table:
    """Real-time factor and peak memory of :func:`bsr.separate.separate` on stereo tracks
    of each of ``minutes``.

    ``model`` (a shipped name such as ``course``, or a checkpoint) is a trained network;
    without it the ``preset`` gets random weights (speed does not depend on them). The
    track is noise at the model's rate, cut into the model's windows (8 s every 4 s for a
    preset) exactly as ``bsr separate`` does. One batch of windows is separated first,
    untimed, to warm up. RTF = seconds of computing per second of audio (below 1: faster
    than real time). Several lengths: each in a fresh process (see the module's docstring).
    """
    lengths = [minutes] if isinstance(minutes, (int, float)) else list(minutes)
    if not lengths:
        raise BsrError("--minutes needs at least one length: e.g. --minutes 1 2 5")
    for value in lengths:
        check_positive(minutes=value)
    check_positive(batch_size=batch_size, window=window_seconds, hop=hop_seconds,
                   repeats=repeats, peak_tflops=peak_tflops)  # fmt: skip
    if hop_seconds is not None and window_seconds is not None and hop_seconds > window_seconds:
        raise BsrError(f"--hop {hop_seconds} is longer than --window {window_seconds}: shorten it")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    settings = dict(preset=preset, model=model, device=str(device), batch_size=batch_size,
                    window_seconds=window_seconds, hop_seconds=hop_seconds,
                    precision=precision, repeats=repeats, seed=seed)  # fmt: skip
    network, name = build_network(preset, model, device, seed)
    window, hop = _windows(network, window_seconds, hop_seconds)
    rate = network.config.sample_rate
    if len(lengths) == 1:
        rows = [measure_length(network, lengths[0], settings)]
    else:
        rows = [_measure_in_fresh_process(settings, value) for value in lengths]
    peak_value, peak_source = peak_flops(device, precision, peak_tflops)
    times = [row.pop("times") for row in rows]
    method = [row.pop("memory") for row in rows][0]
    for row in rows:
        row["MFU"] = row.pop("flop/s") / peak_value if peak_value else None
    from bsr.model import count_parameters

    weights = "trained weights" if model else "random weights (speed does not depend on them)"
    fresh = ", each length in a fresh process" if len(lengths) > 1 else ""
    table = Table(
        title=f"bsr bench separate: {name}",
        columns=list(SEPARATE_COLUMNS),
        rows=rows,
        header=[
            machine_summary(device),
            software_summary(),
            describe_config(name, network.config, count_parameters(network)),
            f"run: stereo noise at {rate} Hz, windows {window / rate:g} s every {hop / rate:g} s "
            f"(hann overlap-add, as bsr separate), {precision} on {device}, median of "
            f"{repeats}, {weights}{fresh}",
        ],
        formats={"MFU": "{:.1%}", "RTF": "{:.4f}"},
        details={"times": times},
    )
    table.notes = [
        "RTF = compute seconds / audio seconds; s / audio min = seconds per minute of audio",
        f"FLOPs: analytic matrix products of every window; MFU peak: {peak_source}",
        f"peak memory: {method}; start = resident when separation begins "
        "(Python, torch, the model, the input track)",
    ]
    if len(rows) > 1:
        table.notes.append(linearity_note(rows, network.config))
    return table


def build_network(preset: str, model: str | None, device: torch.device, seed: int):
    """A trained model by name or path, else ``preset`` with random weights; and its name."""
    if model is not None:
        from bsr.hub import load_model

        return load_model(model, device=device).eval(), str(model)
    from bsr.config import load_config
    from bsr.model import BSRoformer

    config = load_config(preset)
    torch.manual_seed(seed)
    return BSRoformer(config.model).to(device).eval(), config.name


def _windows(network, window_seconds: float | None, hop_seconds: float | None):
    """The window and hop in samples, as ``bsr separate`` picks them."""
    from bsr.separate import window_and_hop

    return window_and_hop(network, window_seconds, hop_seconds)


def measure_length(network, minutes: float, settings: dict) -> dict:
    """One table row: separate ``minutes`` of stereo noise with ``network``."""
    device = torch.device(settings["device"])
    rate = network.config.sample_rate
    window, hop = _windows(network, settings["window_seconds"], settings["hop_seconds"])
    length = max(1, round(minutes * 60 * rate))
    audio = np.random.default_rng(settings["seed"]).standard_normal((2, length), np.float32)
    audio *= 0.1  # in place: no second copy of a long track
    options = dict(window_seconds=window / rate, hop_seconds=hop / rate,
                   batch_size=settings["batch_size"])  # fmt: skip
    times, start, peak, memory = _time_separation(network, audio, options, settings, device)
    elapsed, duration = statistics.median(times), length / rate
    passes, flops = _separation_flops(network.config, length, window, hop)
    return {
        "track": f"{duration / 60:.2f} min stereo",
        "minutes": duration / 60,  # not a column: for the linearity note
        "windows": passes,
        "batch": settings["batch_size"],
        "precision": settings["precision"],
        "seconds": elapsed,
        "RTF": elapsed / duration,
        "x real time": duration / elapsed,
        "s / audio min": elapsed / (duration / 60),
        "start MiB": start / MIB,
        "peak MiB": peak / MIB,
        "TFLOP/s": flops / elapsed / 1e12,
        "flop/s": flops / elapsed,
        "times": times,
        "memory": memory,
    }


def _time_separation(model, audio: np.ndarray, options: dict, settings: dict, device):
    """Separate ``audio`` ``(2, samples)`` ``repeats`` times after one untimed batch of
    windows; returns the times in seconds, the memory in use at the start and at the peak
    (bytes), and how memory was measured."""
    from bsr.separate import separate

    rate = model.config.sample_rate
    precision = settings["precision"]

    def run(clip: np.ndarray) -> None:
        with autocast(device, precision):
            separate(clip, rate, model, **options)

    window, hop = round(options["window_seconds"] * rate), round(options["hop_seconds"] * rate)
    run(audio[:, : window + (options["batch_size"] - 1) * hop])  # warm-up: one batch of windows
    memory = PeakMemory(device)
    if device.type == "cuda":
        start = torch.cuda.memory_allocated(device)
    else:
        start = resident_bytes()
    times, peak = [], 0
    for _ in range(settings["repeats"]):
        memory.start()
        times.append(timed(lambda: run(audio), device))
        peak = max(peak, memory.stop(own=state_bytes(model)))
    return times, start, peak, memory.method


def _separation_flops(config, length: int, window: int, hop: int) -> tuple[int, float]:
    """The model passes ``bsr.separate`` makes over ``length`` samples, and their FLOPs."""
    # Windows as bsr.separate cuts them (a track shorter than a window is one pass).
    passes = 1 if length <= window else math.ceil((length + window - hop) / hop)
    channel_passes = 1 if config.channels == 2 else 2  # a mono model runs per channel
    flops = channel_passes * passes * model_flops(config, 1, min(length, window))
    return passes * channel_passes, flops


def linearity_note(rows: list[dict], config) -> str:
    """Whether time and memory grow in proportion to the audio, from the table's rows."""
    per_minute = [row["s / audio min"] for row in rows]
    spread = max(per_minute) / min(per_minute)
    verdict = "linear in length" if spread <= LINEAR_SPREAD else "NOT linear in length"
    shortest, longest = min(rows, key=lambda r: r["minutes"]), max(rows, key=lambda r: r["minutes"])
    span = longest["minutes"] - shortest["minutes"]
    growth = (longest["peak MiB"] - shortest["peak MiB"]) / span if span else 0.0
    # What must grow with the song: the input, the stems and the overlap-add weight sum.
    floats = 2 + len(config.stems) * 2 + 1
    expected = floats * 4 * config.sample_rate * 60 / MIB
    return (
        f"time per audio minute {min(per_minute):.3g}-{max(per_minute):.3g} s (longest/"
        f"shortest {spread:.2f}): {verdict}; peak memory grows {growth:.0f} MiB per audio "
        f"minute (input + stems + weight sum: {expected:.0f} MiB per minute)"
    )


def _measure_in_fresh_process(settings: dict, minutes: float) -> dict:
    """:func:`measure_length` in a new Python process (same threads), as a row."""
    request = dict(settings, minutes=minutes, threads=torch.get_num_threads())
    args = [sys.executable, "-m", "bsr.bench.separate", json.dumps(request)]
    done = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ))
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        killed = " (killed: out of memory?)" if done.returncode in (-9, 137) else ""
        raise BsrError(
            f"measuring {minutes:g} minutes failed in its process, exit code "
            f"{done.returncode}{killed}: {said}: try a shorter --minutes"
        )
    return json.loads(lines[-1])


def _child(argument: str) -> None:
    """The fresh process: measure the one length in ``argument`` (JSON), print the row."""
    settings = json.loads(argument)
    torch.set_num_threads(settings.pop("threads"))
    device = torch.device(settings["device"])
    network, _ = build_network(settings["preset"], settings["model"], device, settings["seed"])
    print(json.dumps(measure_length(network, settings["minutes"], settings)))


if __name__ == "__main__":
    _child(sys.argv[1])
