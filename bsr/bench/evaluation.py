"""``bsr bench eval``: how fast museval scores a track, four stems or vocals alone."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from bsr.bench.common import Table, check_positive, machine_summary, software_summary
from bsr.errors import BsrError

EVAL_CASES = ("all", "vocals")


def bench_eval(
    seconds: float = 30.0,
    repeats: int = 1,
    sample_rate: int = 44100,
    seed: int = 0,
    targets: Sequence[str] = EVAL_CASES,
) -> Table:
    """museval (BSSEval v4, 1 s frames) throughput through :func:`bsr.evaluate.evaluate_track`.

    Scores a noise track of ``seconds`` once per entry of ``targets``: ``"all"`` four
    stems, ``"vocals"`` vocals alone (which adds the accompaniment as a second target,
    as museval needs).
    """
    from bsr.evaluate import STEMS, evaluate_track

    check_positive(seconds=seconds, repeats=repeats, sample_rate=sample_rate)
    unknown = [t for t in targets if t not in EVAL_CASES] or ([] if targets else ["nothing"])
    if unknown:
        raise BsrError(f"unknown targets {unknown[0]!r}: use {' and/or '.join(EVAL_CASES)}")
    length = round(seconds * sample_rate)
    if length < sample_rate:
        raise BsrError(f"--seconds {seconds} is less than one 1 s museval frame: use 1 or more")
    rng = np.random.default_rng(seed)
    refs = {name: 0.1 * rng.standard_normal((length, 2)) for name in STEMS}
    noisy = {name: ref + 0.03 * rng.standard_normal(ref.shape) for name, ref in refs.items()}
    every = {
        "all": ("4 stems", dict(noisy)),
        "vocals": ("vocals (+ accompaniment)", {"vocals": noisy["vocals"]}),
    }
    cases = dict(every[t] for t in dict.fromkeys(targets))
    frames = length // sample_rate
    table = Table(
        title="bsr bench eval",
        columns=["targets", "track s", "frames", "seconds", "audio s/s", "frames/s"],
        header=[
            machine_summary(),
            software_summary(),
            f"config: {length / sample_rate:g} s stereo noise at {sample_rate} Hz, museval "
            f"v4 frames 1 s, median of {repeats}",
        ],
    )
    for name, estimates in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            evaluate_track(refs, estimates, rate=sample_rate)
            times.append(time.perf_counter() - start)
        elapsed = statistics.median(times)
        table.rows.append(
            {
                "targets": name,
                "track s": length / sample_rate,
                "frames": frames,
                "seconds": elapsed,
                "audio s/s": length / sample_rate / elapsed,
                "frames/s": frames / elapsed,
            }
        )
    table.notes = ["audio s/s = seconds of track scored per second, all targets together"]
    return table
