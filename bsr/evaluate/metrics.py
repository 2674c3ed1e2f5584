"""The measures themselves: uSDR, museval's BSSEval v4 frames, and museval's JSON.

* **uSDR** ("utterance" or global SDR, SDX23 and most community tables):
  ``10 * log10(sum(s**2) / sum((s - s_hat)**2))`` over the whole track.
* **BSSEval v4** (museval, the BS-RoFormer paper's metric): SDR, SIR, ISR and SAR on 1 s
  frames; the **cSDR** of a stem is the median of its SDR frames (:func:`nanmedian`).

All arrays are ``(samples, channels)``; :mod:`bsr.evaluate.track` applies these to one
track's stems.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np

from bsr.errors import BsrError

STEMS = ("vocals", "drums", "bass", "other")
"""MUSDB18's four stems, in museval's order; they add up to the mixture."""
METRICS = ("SDR", "SIR", "ISR", "SAR")
"""museval's four measures, in the order of its tables."""
USDR_EPS = 1e-7
"""Added to numerator and denominator of uSDR so silence gives 0 dB, not a division error."""


def usdr(reference: np.ndarray, estimate: np.ndarray, eps: float = USDR_EPS) -> float:
    """Global ("utterance") SDR in dB of one stem of one track.

    ``10 * log10((sum(s**2) + eps) / (sum((s - s_hat)**2) + eps))`` over all samples
    and channels, computed in float64 (float32 sums of ~10^7 squares lose digits).

    Args:
        reference: ``(samples, channels)`` true stem ``s``.
        estimate: ``(samples, channels)`` estimate ``s_hat``, same shape.
    """
    s = np.asarray(reference, dtype=np.float64)
    s_hat = np.asarray(estimate, dtype=np.float64)
    if s.shape != s_hat.shape:
        raise BsrError(
            f"usdr needs equal shapes, got reference {s.shape} and estimate {s_hat.shape}: "
            "align them first (evaluate_track does it for you)"
        )
    num = np.sum(s**2) + eps
    den = np.sum((s - s_hat) ** 2) + eps
    return float(10.0 * np.log10(num / den))


def bss_eval_v4(
    references: np.ndarray, estimates: np.ndarray, window: int, hop: int
) -> dict[str, np.ndarray]:
    """museval's BSSEval v4 (the settings of ``museval.evaluate(mode="v4")``).

    v4 fits the 512-tap distortion filters once on the whole track (v3 refitted them per
    frame) and then measures each frame; a frame where any reference or estimate is all
    zeros is NaN for every target. So a stem whose estimate is silent throughout blanks
    the SDR/SIR/ISR/SAR of all targets scored with it (their uSDR is unaffected).

    Args:
        references: ``(sources, samples, channels)``.
        estimates: ``(sources, samples, channels)``.

    Returns:
        metric name -> ``(sources, frames)`` in dB, with museval's +-inf turned into NaN
        (museval's JSON does the same, so medians agree with its published scores).
    """
    if _any_silent(references) or _any_silent(estimates):
        # museval refuses an all-zero source outright (its least-squares system would be
        # singular); its per-frame rule would blank every frame anyway, so do just that.
        nan = np.full((len(references), _n_frames(references.shape[1], window, hop)), np.nan)
        return {m: nan.copy() for m in METRICS}

    from bsr.ffmpeg import ensure_ffmpeg

    # museval imports musdb, which imports stempeg, which refuses to load without ffmpeg.
    ensure_ffmpeg()
    from museval import metrics

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # log10(0) in silent frames
        sdr, isr, sir, sar, _ = metrics.bss_eval(
            references,
            estimates,
            window=window,
            hop=hop,
            compute_permutation=False,
            framewise_filters=False,
            bsseval_sources_version=False,
        )
    out = {"SDR": sdr, "SIR": sir, "ISR": isr, "SAR": sar}
    return {k: np.where(np.isinf(v), np.nan, v).astype(np.float64) for k, v in out.items()}


def _any_silent(sources: np.ndarray) -> bool:
    """Whether any of ``(sources, samples, channels)`` is all zeros."""
    return bool(np.any(np.all(sources.reshape(len(sources), -1) == 0, axis=1)))


def _n_frames(samples: int, window: int, hop: int) -> int:
    """museval's frame count: only whole windows (at least one frame)."""
    return (samples - window + hop) // hop if window < samples else 1


def nanmedian(values: Iterable[float]) -> float:
    """Median ignoring NaN; NaN (without a warning) when nothing is left."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(np.median(arr)) if arr.size else math.nan


def stem_order(names: Iterable[str]) -> list[str]:
    """MUSDB stems first in museval's order, then accompaniment, then the rest sorted."""
    names = set(names)
    canon = [*STEMS, "accompaniment"]
    return [n for n in canon if n in names] + sorted(names - set(canon))


def museval_json(track_scores: dict) -> dict:
    """A track's scores in museval's JSON layout (values rounded to 5 decimals, NaN kept).

    ``{"targets": [{"name", "frames": [{"time", "duration", "metrics": {"SDR", "SIR",
    "SAR", "ISR"}}]}], "museval_version": ...}`` -- readable by ``museval.TrackStore``
    tooling and comparable line by line with museval's own files.
    """
    try:
        from importlib.metadata import version

        museval_version = version("museval")
    except Exception:  # metadata missing in odd installs: the field is informative only
        museval_version = "unknown"
    win, hop = track_scores["win"], track_scores["hop"]
    targets = []
    for name, t in track_scores["targets"].items():
        frames = []
        for i in range(len(t["SDR"])):
            metrics = {m: _q(t[m][i]) for m in ("SDR", "SIR", "SAR", "ISR")}
            frames.append({"time": i * hop, "duration": win, "metrics": metrics})
        targets.append({"name": name, "frames": frames})
    return {"targets": targets, "museval_version": museval_version}


def _q(x: float) -> float:
    """museval stores 5 decimals and NaN for non-finite values."""
    return round(float(x), 5) if np.isfinite(x) else math.nan
