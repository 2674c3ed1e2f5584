"""``bsr bench separate``: the real-time factor of separating a whole track."""

from __future__ import annotations

import math
import statistics

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
    resolve_device,
    resolve_precision,
    software_summary,
    state_bytes,
    timed,
)
from bsr.bench.flops import model_flops
from bsr.bench.model import describe_config
from bsr.config import load_config
from bsr.errors import BsrError

SEPARATE_COLUMNS = ("track", "windows", "batch", "precision", "seconds", "RTF", "x real time",
                    "peak MiB", "TFLOP/s", "MFU")  # fmt: skip


def bench_separate(
    preset: str = "small",
    minutes: float = 3.0,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    window_seconds: float = 8.0,
    hop_seconds: float = 4.0,
    precision: str = "fp32",
    repeats: int = 1,
    peak_tflops: float | None = None,
    seed: int = 0,
) -> Table:
    """Real-time factor of :func:`bsr.separate.separate` on a stereo track of ``minutes``.

    The model has random weights (speed does not depend on them) and the track is noise
    at the model's sample rate, cut into windows exactly as ``bsr separate`` does. One
    window batch is separated first, untimed, to warm up. RTF = seconds of computing per
    second of audio (below 1: faster than real time).
    """
    from bsr.model import BSRoformer, count_parameters

    check_positive(
        minutes=minutes,
        batch_size=batch_size,
        window=window_seconds,
        hop=hop_seconds,
        repeats=repeats,
        peak_tflops=peak_tflops,
    )
    if hop_seconds > window_seconds:
        raise BsrError(f"--hop {hop_seconds} is longer than --window {window_seconds}: shorten it")
    config = load_config(preset)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    torch.manual_seed(seed)
    model = BSRoformer(config.model).to(device).eval()
    rate = config.model.sample_rate
    length = max(1, round(minutes * 60 * rate))
    audio = 0.1 * np.random.default_rng(seed).standard_normal((2, length), dtype=np.float32)
    options = dict(window_seconds=window_seconds, hop_seconds=hop_seconds, batch_size=batch_size)
    times, peak, memory = _time_separation(model, audio, options, precision, repeats, device)
    elapsed, duration = statistics.median(times), length / rate
    window, hop = round(window_seconds * rate), round(hop_seconds * rate)
    passes, flops = _separation_flops(config.model, length, window, hop)
    peak_value, peak_source = peak_flops(device, precision, peak_tflops)
    table = Table(
        title=f"bsr bench separate: {config.name}",
        columns=list(SEPARATE_COLUMNS),
        header=[
            machine_summary(device),
            software_summary(),
            describe_config(config.name, config.model, count_parameters(model)),
            f"run: {duration:.1f} s stereo noise at {rate} Hz, windows {window_seconds:g} s "
            f"every {hop_seconds:g} s (hann overlap-add, as bsr separate), {precision} on "
            f"{device}, median of {repeats}",
        ],
        formats={"MFU": "{:.1%}", "RTF": "{:.4f}"},
        details={"flops": flops, "times": times},
    )
    table.rows.append(
        {
            "track": f"{duration / 60:.2f} min stereo",
            "windows": passes,
            "batch": batch_size,
            "precision": precision,
            "seconds": elapsed,
            "RTF": elapsed / duration,
            "x real time": duration / elapsed,
            "peak MiB": peak / MIB,
            "TFLOP/s": flops / elapsed / 1e12,
            "MFU": flops / elapsed / peak_value if peak_value else None,
        }
    )
    table.notes = [
        "RTF = compute seconds / audio seconds; random weights (speed does not depend on them)",
        f"FLOPs: analytic matrix products of every window; MFU peak: {peak_source}",
        f"peak memory: {memory}",
    ]
    return table


def _time_separation(
    model, audio: np.ndarray, options: dict, precision: str, repeats: int, device
) -> tuple[list[float], int, str]:
    """Separate ``audio`` ``(2, samples)`` ``repeats`` times after one untimed batch of
    windows; returns the times in seconds, the peak memory in bytes and how it was measured."""
    from bsr.separate import separate

    rate = model.config.sample_rate

    def run(clip: np.ndarray) -> None:
        with autocast(device, precision):
            separate(clip, rate, model, **options)

    window, hop = round(options["window_seconds"] * rate), round(options["hop_seconds"] * rate)
    run(audio[:, : window + (options["batch_size"] - 1) * hop])  # warm-up: one batch of windows
    memory = PeakMemory(device)
    times, peak = [], 0
    for _ in range(repeats):
        memory.start()
        times.append(timed(lambda: run(audio), device))
        peak = max(peak, memory.stop(own=state_bytes(model)))
    return times, peak, memory.method


def _separation_flops(config, length: int, window: int, hop: int) -> tuple[int, float]:
    """The model passes ``bsr.separate`` makes over ``length`` samples, and their FLOPs."""
    # Windows as bsr.separate cuts them (a track shorter than a window is one pass).
    passes = 1 if length <= window else math.ceil((length + window - hop) / hop)
    channel_passes = 1 if config.channels == 2 else 2  # a mono model runs per channel
    flops = channel_passes * passes * model_flops(config, 1, min(length, window))
    return passes * channel_passes, flops
