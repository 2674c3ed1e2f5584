"""Scoring separated stems: museval's cSDR, the community's uSDR, and oracle baselines.

Two SDR numbers circulate in the source-separation literature and they are **not**
comparable, so this module never puts them in the same column:

* **cSDR** ("chunk" SDR, the BS-RoFormer paper's Table 2): museval's BSSEval v4 on 1 s
  frames. Per track and stem we take the median over frames (NaN frames, i.e. frames
  where a reference or an estimate is silent, are skipped), then the median over tracks.
  Labelled ``"cSDR (median of medians, museval v4)"``.
* **uSDR** ("utterance" or global SDR, SDX23 and most community tables):
  ``10 * log10(sum(s**2) / sum((s - s_hat)**2))`` over the whole track, then the mean
  over tracks. Labelled ``"uSDR (mean over tracks)"``.

museval needs **at least two targets** per track: its SIR splits the error into the part
explained by the *other* references (interference) and the rest, which is meaningless
with a single source. When only one stem is estimated (say vocals),
:func:`evaluate_track` adds its complement automatically: ``"accompaniment"`` (for
vocals; ``"not_<stem>"`` for any other stem) with estimate ``mixture - estimate`` and
as reference the sum of the other stems (musdb's accompaniment), or ``mixture -
reference`` when they are not given. SDR, uSDR and ISR of the estimated stem do not
depend on the added target; SIR and SAR do, exactly as in museval.

museval also has a vocals/accompaniment rule that we mirror: when both ``vocals`` and
``accompaniment`` are estimated, that pair is scored on its own (vocals against
accompaniment) and any other stems are scored together as a second group.

Baselines put a model's numbers in context, on the same tracks. The first two are
floors; the four oracles are the sigsep oracles of SiSEC 2018 (``sigsep-mus-oracle``):
they look at the true stems, so they are upper references for a family of methods, not
results (:data:`BASELINE_NOTES` says what each one bounds):

=================  ==========================================================
``mixture``        the mixture itself as the estimate of every stem
``constant_gain``  ``g * mixture`` with the least-squares ``g = <s, x> / <x, x>``
``ibm``            ideal binary mask: bin to stem ``j`` if ``|S_j| / |X| >= 0.5``
``irm``            ideal ratio mask ``|S_j| / sum_k |S_k|`` (magnitude, alpha = 1)
``irm2``           ideal ratio mask ``|S_j|^2 / sum_k |S_k|^2`` (power, alpha = 2)
``mwf``            multichannel Wiener filter ``v_j R_j (sum_k v_k R_k)^-1 x`` with
                   per-bin spatial covariances ``R_j(f)`` and PSDs ``v_j(f, t)``
=================  ==========================================================

The masks act on every channel of the mixture STFT ``X`` separately; the MWF filters
both channels jointly. All four use a Hann STFT with ``n_fft = 4096`` and hop 1024 (93 ms
windows at 44.1 kHz with 75 % overlap: fine enough in frequency to separate bass notes;
sigsep used 2048 and 1024), arguments of :func:`baseline_estimates`. The unbounded complex
ratio mask ``S_j / X`` is not offered: it rebuilds every stem exactly, so it bounds nothing.

All arrays are ``(samples, channels)``, the layout of ``soundfile`` and musdb.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import math
import multiprocessing
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from bsr.errors import BsrError

STEMS = ("vocals", "drums", "bass", "other")
"""MUSDB18's four stems, in museval's order; they add up to the mixture."""

METRICS = ("SDR", "SIR", "ISR", "SAR")
BASELINES = ("mixture", "constant_gain", "ibm", "irm", "irm2", "mwf")
"""Baseline names, in the order of the tables (after the model)."""
METHOD_LABELS = {
    "model": "model",
    "mixture": "mixture",
    "constant_gain": "constant gain",
    "ibm": "IBM",
    "irm": "IRM",
    "irm2": "IRM (power)",
    "mwf": "MWF",
}
BASELINE_NOTES = {
    "mixture": "the mixture as every stem's estimate: no separation at all",
    "constant_gain": "the best single gain per stem and track (least squares): a floor to clear",
    "ibm": "ideal binary mask (alpha 1, theta 0.5): about the best on/off time-frequency mask",
    "irm": "ideal ratio mask of magnitudes (alpha 1): about the best real mask on the mixture "
    "phase",
    "irm2": "ideal ratio mask of powers (alpha 2, one-channel Wiener filter): the same, "
    "power-weighted",
    "mwf": "multichannel Wiener filter from the true PSDs and spatial covariances: about the best "
    "linear stereo filter per bin",
}
"""One line per baseline: what its score bounds (reports print these under the tables)."""
REMOVED_BASELINES = {
    "cirm": "the unbounded complex ideal ratio mask S_j / X rebuilds every stem exactly "
    "(100+ dB), which bounds nothing",
}
IBM_THETA = 0.5
"""The IBM gives a bin to a stem when ``|S_j| / |X| >= IBM_THETA`` (sigsep's majority vote)."""
CSDR_LABEL = "cSDR (median of medians, museval v4)"
USDR_LABEL = "uSDR (mean over tracks)"

USDR_EPS = 1e-7
"""Added to numerator and denominator of uSDR so silence gives 0 dB, not a division error."""

N_FFT = 4096
HOP = 1024


# --------------------------------------------------------------------------- uSDR


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


# --------------------------------------------------------------------------- input checks


def _as_audio(name: str, audio: np.ndarray) -> np.ndarray:
    """``(samples,)`` or ``(samples, channels)`` -> float64 ``(samples, channels)``."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise BsrError(f"{name} has shape {x.shape}: pass audio as (samples, channels)")
    # A (2, 441000) array is almost surely channels-first (torch's layout), not 2 samples.
    if x.shape[0] < x.shape[1] and x.shape[0] <= 8:
        raise BsrError(
            f"{name} has shape {x.shape}, which looks like (channels, samples): "
            "transpose it to (samples, channels)"
        )
    return x


def _align(target: str, reference: np.ndarray, estimate: np.ndarray, tolerance: int) -> np.ndarray:
    """Check an estimate against its reference and bring it to the reference's length.

    Models that go through an STFT often return a few samples more or less than they were
    given, so a length difference smaller than one evaluation window (``tolerance``
    samples) is fixed the way museval does it: truncate a longer estimate, zero-pad a
    shorter one. A larger difference means the wrong file or sample rate: error.

    Args:
        reference: ``(samples, channels)``.
        estimate: ``(samples', channels')``.

    Returns:
        ``(samples, channels)`` estimate.
    """
    if not np.all(np.isfinite(estimate)):
        raise BsrError(
            f"estimate for {target!r} contains NaN or inf: fix the model output "
            "(e.g. check for a division by zero) before evaluating"
        )
    if estimate.shape[1] != reference.shape[1]:
        raise BsrError(
            f"estimate for {target!r} has {estimate.shape[1]} channel(s) but the reference "
            f"has {reference.shape[1]}: write the estimate with the reference's channels "
            "(separate each channel of the stereo mixture, do not down-mix)"
        )
    diff = estimate.shape[0] - reference.shape[0]
    if abs(diff) >= tolerance:
        raise BsrError(
            f"estimate for {target!r} has {estimate.shape[0]} samples but the reference has "
            f"{reference.shape[0]}: check the sample rate and that the estimate is for "
            "this track"
        )
    if diff > 0:
        return estimate[: reference.shape[0]]
    if diff < 0:
        return np.pad(estimate, ((0, -diff), (0, 0)))
    return estimate


def complement_name(target: str) -> str:
    """Name of the target added when only ``target`` is estimated (museval's two-target rule)."""
    return {"vocals": "accompaniment", "accompaniment": "vocals"}.get(target, f"not_{target}")


# --------------------------------------------------------------------------- museval


def _bss_eval_v4(
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


def _nanmedian(values: Iterable[float]) -> float:
    """Median ignoring NaN; NaN (without a warning) when nothing is left."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(np.median(arr)) if arr.size else math.nan


def _order(names: Iterable[str]) -> list[str]:
    """MUSDB stems first in museval's order, then accompaniment, then the rest sorted."""
    names = set(names)
    canon = [*STEMS, "accompaniment"]
    return [n for n in canon if n in names] + sorted(names - set(canon))


def evaluate_track(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    rate: int = 44100,
    track_name: str = "track",
    win: float = 1.0,
    hop: float = 1.0,
    mixture: np.ndarray | None = None,
) -> dict:
    """Score the estimated stems of one track with museval BSSEval v4 and uSDR.

    Args:
        references: stem name -> ``(samples, channels)`` true stem. May hold more stems
            than ``estimates`` (they are used only to build an added complement).
        estimates: stem name -> ``(samples', channels)`` estimate; one entry per target
            to score. Lengths within one window of the reference are truncated/padded.
        rate: sample rate in Hz (frames are ``win * rate`` samples).
        track_name: stored in the result.
        win, hop: museval frame length and hop in seconds (1 s, 1 s as in SiSEC/paper).
        mixture: ``(samples, channels)`` mixture; the added complement's estimate is
            ``mixture - estimate`` (default: the sum of the reference stems). If it is
            not exactly the sum of the stems (a decoded or clipped mixture.wav), the
            complement's scores include that difference, just as a model's would.

    Returns:
        ``{"track": str, "rate": int, "win": float, "hop": float, "targets": {name:
        {"SDR", "SIR", "ISR", "SAR": (frames,) float arrays, "cSDR": float (nanmedian of
        the SDR frames), "uSDR": float, "added": bool}}}``, targets in museval's order.
        ``added`` marks a complement created by the two-target rule.
    """
    if not estimates:
        raise BsrError("no estimates given: pass at least one stem, e.g. {'vocals': array}")
    window, hop_samples = int(win * rate), int(hop * rate)
    if window < 1 or hop_samples < 1:
        raise BsrError(f"win={win} s and hop={hop} s at {rate} Hz give empty frames: use 1.0")
    refs = {k: _as_audio(f"reference {k!r}", v) for k, v in references.items()}
    if mixture is not None:
        refs = {**refs, "mixture": _as_audio("mixture", mixture)}
    shapes = {k: v.shape for k, v in refs.items()}
    if len(set(shapes.values())) > 1:
        raise BsrError(f"references differ in shape {shapes}: cut them to one length")
    ests = {}
    for name, est in estimates.items():
        base = _complemented(name)
        if name not in refs and base in refs:
            refs[name] = _complement_reference(refs, base, mixture)
        if name not in refs:
            raise BsrError(
                f"no reference for estimated stem {name!r} (have {sorted(refs)}): "
                "rename the estimate or add the reference"
            )
        ests[name] = _as_audio(f"estimate {name!r}", est)
    for name in ests:
        ests[name] = _align(name, refs[name], ests[name], window)

    added = set()
    if len(ests) == 1:
        (name,) = ests
        other = complement_name(name)
        if other not in refs:
            refs[other] = _complement_reference(refs, name, mixture)
        ests[other] = _mixture_of(refs, mixture) - ests[name]
        added.add(other)

    # museval's rule: vocals+accompaniment are scored as their own pair.
    pair = "vocals" in ests and "accompaniment" in ests
    group = [n for n in _order(ests) if not (pair and n == "accompaniment")]
    scores: dict[str, dict[str, np.ndarray]] = {}
    groups = []
    if len(group) >= 2:
        groups.append(group)
    if pair:
        groups.append(["vocals", "accompaniment"])
    for names in groups:
        out = _bss_eval_v4(
            np.stack([refs[n] for n in names]),
            np.stack([ests[n] for n in names]),
            window,
            hop_samples,
        )
        for i, n in enumerate(names):
            if pair and n == "vocals" and "accompaniment" not in names:
                continue  # vocals come from the vocals/accompaniment pair
            scores[n] = {m: out[m][i] for m in METRICS}

    targets = {}
    for n in _order(scores):
        entry: dict = dict(scores[n])
        entry["cSDR"] = _nanmedian(entry["SDR"])
        entry["uSDR"] = usdr(refs[n], ests[n])
        entry["added"] = n in added
        targets[n] = entry
    # A silent stem blanks museval's frames for the whole track: record it, so the report
    # can say why the track has no cSDR rather than drop it without a word.
    silent = {
        "references": [n for n in _order(ests) if not np.any(refs[n])],
        "estimates": [n for n in _order(ests) if not np.any(ests[n])],
    }
    return {
        "track": track_name,
        "rate": rate,
        "win": win,
        "hop": hop,
        "targets": targets,
        "silent": silent,
    }


def _complemented(name: str) -> str | None:
    """The stem that ``name`` is the complement of (inverse of :func:`complement_name`)."""
    if name == "accompaniment":
        return "vocals"
    return name[4:] if name.startswith("not_") else None


def _partition(refs: Mapping[str, np.ndarray]) -> list[str]:
    """The reference stems that add up to the mixture (derived complements left out)."""
    stems = [k for k in refs if k != "mixture" and _complemented(k) is None]
    if "accompaniment" in refs and set(stems) <= {"vocals"}:
        stems.append("accompaniment")  # a vocals/accompaniment track, like musdb's sample
    return stems


def _mixture_of(refs: Mapping[str, np.ndarray], mixture: np.ndarray | None) -> np.ndarray:
    """The mixture: the one given, else ``refs["mixture"]``, else the sum of the stems."""
    if mixture is not None:
        return _as_audio("mixture", mixture)
    if "mixture" in refs:
        return refs["mixture"]
    stems = _partition(refs)
    if len(stems) < 2:
        raise BsrError(
            "museval needs two targets, so a single estimate gets its complement "
            "(mixture - estimate), but no mixture is known: pass mixture=... or all stems"
        )
    return sum(refs[k] for k in stems)


def _complement_reference(
    refs: Mapping[str, np.ndarray], target: str, mixture: np.ndarray | None
) -> np.ndarray:
    """Everything but ``target``: the sum of the other stems (musdb's definition of
    accompaniment), or ``mixture - target`` when the other stems are not given."""
    rest = [k for k in _partition(refs) if k != target]
    if rest:
        return sum(refs[k] for k in rest)
    return _mixture_of(refs, mixture) - refs[target]


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


# --------------------------------------------------------------------------- baselines


def check_baselines(kinds: Iterable[str]) -> None:
    """Raise a one-line :class:`BsrError` for a baseline name that is not offered."""
    for kind in kinds:
        if kind in REMOVED_BASELINES:
            raise BsrError(
                f"baseline {kind!r} was removed: {REMOVED_BASELINES[kind]}; use 'irm' "
                "(or 'ibm', 'irm2', 'mwf') for an oracle upper bound"
            )
        if kind not in BASELINES:
            raise BsrError(f"unknown baseline {kind!r}: choose from {', '.join(BASELINES)}")


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(samples, channels)`` -> ``(channels, bins, frames)`` complex64, Hann window."""
    *_, spec = signal.stft(
        x.T.astype(np.float32), window="hann", nperseg=n_fft, noverlap=n_fft - hop
    )
    return spec


def _stft_blocks(x: np.ndarray, n_fft: int, hop: int, block: int = 256):
    """The frames of :func:`_stft` in float64, ``block`` frames at a time.

    Pads like ``scipy.signal.stft`` (``n_fft // 2`` zeros at both ends, then zeros up to
    a whole number of hops) and transforms one slice of frames per step, so a long track
    never holds its whole complex128 spectrogram.

    Args:
        x: ``(samples, channels)``.

    Yields:
        ``(first frame, (channels, bins, frames') complex128)``.
    """
    xp = np.pad(np.asarray(x, dtype=np.float64).T, ((0, 0), (n_fft // 2, n_fft // 2)))
    xp = np.pad(xp, ((0, 0), (0, (-(xp.shape[-1] - n_fft) % hop) % n_fft)))
    frames = (xp.shape[-1] - n_fft) // hop + 1
    for t0 in range(0, frames, block):
        t1 = min(t0 + block, frames)
        *_, spec = signal.stft(
            xp[:, t0 * hop : (t1 - 1) * hop + n_fft],
            window="hann",
            nperseg=n_fft,
            noverlap=n_fft - hop,
            boundary=None,
            padded=False,
        )
        yield t0, spec


def _istft(spec: np.ndarray, length: int, n_fft: int, hop: int) -> np.ndarray:
    """``(channels, bins, frames)`` -> ``(length, channels)`` float64."""
    _, x = signal.istft(spec, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    x = x[..., :length]
    if x.shape[-1] < length:  # the padded STFT always covers the signal, but be safe
        x = np.pad(x, ((0, 0), (0, length - x.shape[-1])))
    return x.T.astype(np.float64)


def _stems_and_mixture(
    references: Mapping[str, np.ndarray], mixture: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Checked float64 ``(samples, channels)`` stems (``"mixture"`` dropped) and mixture."""
    x = _as_audio("mixture", mixture)
    stems = {k: _as_audio(f"reference {k!r}", v) for k, v in references.items() if k != "mixture"}
    if "accompaniment" in stems and len(set(stems) - {"vocals", "accompaniment"}) > 0:
        raise BsrError(
            "references hold 'accompaniment' and the stems it is made of: pass only stems "
            "that add up to the mixture (drop 'accompaniment')"
        )
    for k, s in stems.items():
        if s.shape != x.shape:
            raise BsrError(f"reference {k!r} has shape {s.shape} but the mixture {x.shape}")
    return stems, x


_MASK_ALPHA = {"ibm": 1, "irm": 1, "irm2": 2}
"""The exponent of the spectrograms in each mask oracle (sigsep's ``alpha``)."""


def _masks(stems: Mapping[str, np.ndarray], X: np.ndarray, kind: str, n_fft: int, hop: int):
    """Yield ``(stem, (channels, bins, frames) float32 mask)`` of a mask oracle, stem by stem.

    ``ibm``: ``1`` where ``|S_j|^a / |X|^a >= IBM_THETA``, else ``0`` (a bin may go to
    several stems, or to none, when stems cancel). ``irm``/``irm2``: ``|S_j|^a / sum_k
    |S_k|^a``. Silent bins (``0 / 0``) get ``0``. The ratio masks compute each stem's
    STFT twice rather than keep it: a 4-minute stereo stem at n_fft 4096 is ~340 MB.
    """
    alpha = _MASK_ALPHA[kind]
    tiny = np.finfo(np.float32).tiny
    if kind == "ibm":
        mix = np.abs(X) ** alpha + tiny
        for k, s in stems.items():
            yield k, (np.abs(_stft(s, n_fft, hop)) ** alpha / mix >= IBM_THETA).astype(np.float32)
        return
    denom = np.zeros(X.shape, dtype=np.float32)
    for s in stems.values():
        denom += np.abs(_stft(s, n_fft, hop)) ** alpha
    denom += tiny
    for k, s in stems.items():
        yield k, np.abs(_stft(s, n_fft, hop)) ** alpha / denom


def oracle_masks(
    references: Mapping[str, np.ndarray],
    mixture: np.ndarray,
    kind: str,
    n_fft: int = N_FFT,
    hop: int = HOP,
) -> dict[str, np.ndarray]:
    """The masks of a mask oracle (``ibm``, ``irm`` or ``irm2``), to look at or test.

    Args:
        references: stem name -> ``(samples, channels)``, adding up to the mixture.
        mixture: ``(samples, channels)``.

    Returns:
        stem name -> ``(channels, bins, frames)`` float32 mask of the mixture's STFT
        (``scipy.signal.stft``, Hann window, ``n_fft``, ``hop``).
    """
    check_baselines([kind])
    if kind not in _MASK_ALPHA:
        raise BsrError(f"{kind!r} is not a mask oracle: choose from {', '.join(_MASK_ALPHA)}")
    stems, x = _stems_and_mixture(references, mixture)
    return dict(_masks(stems, _stft(x, n_fft, hop), kind, n_fft, hop))


def _solve(C: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``C^-1 b`` for a stack of small systems: ``C (..., I, I)``, ``b (..., I)``.

    One or two channels (mono, stereo) by the explicit formulas, which are much faster
    than ``np.linalg.solve`` on millions of tiny systems.
    """
    if C.shape[-1] == 1:
        return b / C[..., 0]
    if C.shape[-1] == 2:
        a, c01, c10, d = C[..., 0, 0], C[..., 0, 1], C[..., 1, 0], C[..., 1, 1]
        det = a * d - c01 * c10
        z0 = (d * b[..., 0] - c01 * b[..., 1]) / det
        z1 = (a * b[..., 1] - c10 * b[..., 0]) / det
        return np.stack([z0, z1], axis=-1)
    return np.linalg.solve(C, b[..., None])[..., 0]


def _mwf(
    stems: Mapping[str, np.ndarray], x: np.ndarray, n_fft: int, hop: int
) -> dict[str, np.ndarray]:
    """The oracle multichannel Wiener filter (local Gaussian model), after sigsep's ``MWF``.

    Each stem ``j`` is modelled in bin ``(f, t)`` as a zero-mean Gaussian vector over
    the channels with covariance ``v_j(f, t) R_j(f)``, both taken from the true stem:
    the PSD ``v_j = mean over channels of |S_j|^2`` and the spatial covariance ``R_j(f) =
    mean over frames of S_j S_j^H / (eps + v_j)``, scaled to trace = channels, plus
    ``eps I``. The estimate is ``v_j R_j (sum_k v_k R_k)^-1 x`` in every bin: a stereo
    filter that uses where a stem sits in the stereo image as well as how loud it is. The
    estimates add up to the mixture (up to a floor that keeps silent bins finite).

    sigsep then refines the PSD to ``S_j^H R_j^-1 S_j / channels``; we keep the first
    estimate, whose model power ``trace(v_j R_j)`` is the stem's power ``|S_j|^2`` in every
    bin, whereas the refinement halves the power of a stem panned to one spot (rank-1
    ``R_j``) and amplifies round-off there. Computed in float64, a block of frames at a
    time, so a long track never holds a whole complex128 spectrogram.
    """
    eps = np.finfo(np.float64).eps
    channels = x.shape[1]
    eye = np.eye(channels)
    model = {}
    for k, s in stems.items():
        acc = np.zeros((n_fft // 2 + 1, channels, channels), dtype=np.complex128)
        v = []
        for _, S in _stft_blocks(s, n_fft, hop):
            v.append(np.mean(np.abs(S) ** 2, axis=0))
            acc += np.einsum("ift,jft->fij", S / (eps + v[-1]), S.conj())
        v = np.concatenate(v, axis=1)
        R = acc / v.shape[1]
        trace = np.real(np.einsum("fii->f", R))[:, None, None]
        R = np.where(trace > 0, R * channels / np.where(trace > 0, trace, 1.0), eye) + eps * eye
        model[k] = (R, v.astype(np.float32))

    # Where every stem is silent sum_k v_k R_k is 0: a floor far below the music keeps
    # the inverse finite and sends those bins to 0.
    floor = 1e-10 * sum(float(np.mean(v)) for _, v in model.values()) or 1.0
    out = {}
    for k in stems:
        R_k, v_k = model[k]
        spec = np.empty((channels, *v_k.shape), dtype=np.complex64)
        for t0, X in _stft_blocks(x, n_fft, hop):
            t = slice(t0, t0 + X.shape[-1])
            C = floor * eye + sum(v[:, t, None, None] * R[:, None] for R, v in model.values())
            z = _solve(C, X.transpose(1, 2, 0))  # (bins, frames', channels)
            est = v_k[:, t, None] * np.einsum("fij,ftj->fti", R_k, z)
            spec[:, :, t] = est.transpose(2, 0, 1)
        out[k] = _istft(spec, x.shape[0], n_fft, hop)
    return out


def baseline_estimates(
    references: Mapping[str, np.ndarray],
    mixture: np.ndarray,
    kind: str,
    n_fft: int = N_FFT,
    hop: int = HOP,
) -> dict[str, np.ndarray]:
    """Estimates of every stem by a non-learned (mostly oracle) method.

    Args:
        references: stem name -> ``(samples, channels)``; the stems must add up to the
            mixture (MUSDB's four, or vocals + accompaniment). The oracles look at them.
        mixture: ``(samples, channels)``.
        kind: one of :data:`BASELINES` (see :data:`BASELINE_NOTES`).
        n_fft, hop: STFT size for the oracles ``ibm``, ``irm``, ``irm2``, ``mwf``.

    Returns:
        stem name -> ``(samples, channels)`` float64 estimate.
    """
    check_baselines([kind])
    stems, x = _stems_and_mixture(references, mixture)
    if kind == "mixture":
        return {k: x.copy() for k in stems}
    if kind == "constant_gain":
        energy = float(np.sum(x * x)) or 1.0  # silent mixture: any g is optimal, use 0
        return {k: float(np.sum(s * x)) / energy * x for k, s in stems.items()}
    if kind == "mwf":
        return _mwf(stems, x, n_fft, hop)
    X = _stft(x, n_fft, hop)  # (channels, bins, frames)
    return {k: _istft(m * X, x.shape[0], n_fft, hop) for k, m in _masks(stems, X, kind, n_fft, hop)}


# --------------------------------------------------------------------------- results


@dataclass
class MethodResult:
    """Scores of one method (the model or a baseline) on a set of tracks.

    ``tracks`` maps track name -> :func:`evaluate_track` result.
    """

    method: str
    tracks: dict[str, dict] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return METHOD_LABELS.get(self.method, self.method)

    @property
    def targets(self) -> list[str]:
        return _order({n for t in self.tracks.values() for n in t["targets"]})

    def csdr(self) -> dict[str, float]:
        """Stem -> median over tracks of the per-track median over frames (museval v4)."""
        return {
            n: _nanmedian(
                t["targets"][n]["cSDR"] for t in self.tracks.values() if n in t["targets"]
            )
            for n in self.targets
        }

    def usdr(self) -> dict[str, float]:
        """Stem -> mean over tracks of the whole-track SDR."""
        return {
            n: float(
                np.mean(
                    [t["targets"][n]["uSDR"] for t in self.tracks.values() if n in t["targets"]]
                )
            )
            for n in self.targets
        }


def _average(values: Mapping[str, float]) -> float:
    """Mean over stems (the papers' "average" column); NaN if any stem is NaN."""
    return float(np.mean(list(values.values()))) if values else math.nan


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.2f}"


def format_table(results: MethodResult | Sequence[MethodResult]) -> str:
    """Markdown: a cSDR table and a separate uSDR table, rows = methods, cols = stems + average.

    Rows follow the order model, mixture, constant gain, then the oracles IBM, IRM, IRM
    (power), MWF (others after). :func:`format_notes` says what each baseline bounds.
    """
    if isinstance(results, MethodResult):
        results = [results]
    rank = {m: i for i, m in enumerate(["model", *BASELINES])}
    results = sorted(results, key=lambda r: rank.get(r.method, len(rank)))
    stems = _order({n for r in results for n in r.targets})
    n_tracks = max((len(r.tracks) for r in results), default=0)
    lines = []
    for label, values in ((CSDR_LABEL, "csdr"), (USDR_LABEL, "usdr")):
        lines += [f"### {label}, dB ({n_tracks} tracks)", ""]
        lines.append("| method | " + " | ".join([*stems, "average"]) + " |")
        lines.append("|---" * (len(stems) + 2) + "|")
        for r in results:
            per_stem = getattr(r, values)()
            row = [_fmt(per_stem.get(s, math.nan)) for s in stems]
            row.append(_fmt(_average({s: per_stem[s] for s in stems if s in per_stem})))
            lines.append(f"| {r.label} | " + " | ".join(row) + " |")
        lines.append("")
    lines += silent_notes(results)
    return "\n".join(lines)


def silent_notes(results: Sequence[MethodResult]) -> list[str]:
    """One line per method and track with a silent reference or estimate stem.

    museval cannot score a track in which any stem is all zeros (every frame is NaN), so
    such a track drops out of the cSDR medians; its uSDR still counts. Saying so keeps a
    table from hiding a track.
    """
    lines = []
    for r in results:
        for name, track in r.tracks.items():
            silent = track.get("silent", {})
            parts = [f"{kind} {', '.join(stems)}" for kind, stems in silent.items() if stems]
            if parts:
                lines.append(
                    f"- {r.label}, {name}: silent {'; '.join(parts)}: no cSDR for this track "
                    "(museval needs sound in every stem); its uSDR is counted"
                )
    return [*lines, ""] if lines else []


def format_notes(results: MethodResult | Sequence[MethodResult]) -> str:
    """Markdown list: one line per baseline in ``results`` on what its score bounds."""
    if isinstance(results, MethodResult):
        results = [results]
    present = {r.method for r in results}
    lines = [f"- **{METHOD_LABELS[b]}**: {BASELINE_NOTES[b]}" for b in BASELINES if b in present]
    if not lines:
        return ""
    head = "Baselines (the oracles look at the true stems: upper references, not results):"
    return "\n".join([head, "", *lines, ""])


def format_csv(results: MethodResult | Sequence[MethodResult]) -> str:
    """CSV, one row per method and stem (plus "average"); one column per metric."""
    if isinstance(results, MethodResult):
        results = [results]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "stem", CSDR_LABEL, USDR_LABEL, "tracks"])
    for r in results:
        c, u = r.csdr(), r.usdr()
        for s in r.targets:
            writer.writerow([r.label, s, _fmt(c[s]), _fmt(u[s]), len(r.tracks)])
        writer.writerow([r.label, "average", _fmt(_average(c)), _fmt(_average(u)), len(r.tracks)])
    return buf.getvalue()


def write_reports(
    results: Sequence[MethodResult], out_dir: str | Path, subset: str = "test"
) -> Path:
    """Write per-track museval JSON, ``results.md`` and ``results.csv`` under ``out_dir``.

    ``results.md`` holds :func:`format_table` and, under it, :func:`format_notes`.

    The model's JSON go to ``out_dir/<subset>/<track>.json`` (museval's layout), a
    baseline's to ``out_dir/baselines/<kind>/<subset>/<track>.json``.
    """
    out = Path(out_dir)
    for r in results:
        folder = out / subset if r.method == "model" else out / "baselines" / r.method / subset
        folder.mkdir(parents=True, exist_ok=True)
        for name, scores in r.tracks.items():
            with open(folder / f"{name}.json", "w") as f:
                json.dump(museval_json(scores), f, indent=2)
    notes = format_notes(results)
    (out / "results.md").write_text(format_table(results) + (f"\n{notes}" if notes else ""))
    (out / "results.csv").write_text(format_csv(results))
    return out


# --------------------------------------------------------------------------- folders


def _read(path: Path) -> tuple[np.ndarray, int]:
    """A wav as float64 ``(samples, channels)`` and its rate."""
    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile's messages are long and multi-line
        raise BsrError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return audio, rate


def _load_references(track_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """All ``<stem>.wav`` of a MUSDB18HQ track folder: stems, mixture, rate."""
    refs, rate = {}, None
    for path in sorted(track_dir.glob("*.wav")):
        audio, r = _read(path)
        if rate is not None and r != rate:
            raise BsrError(f"{path} is {r} Hz but the track's other stems are {rate} Hz")
        rate = r
        refs[path.stem] = audio
    mixture = refs.pop("mixture", None)
    if mixture is None:
        if not refs:
            raise BsrError(f"no .wav stems in {track_dir}: point data_dir at a MUSDB18HQ folder")
        mixture = sum(refs[k] for k in _partition(refs))
    return refs, mixture, rate


def _evaluate_job(job: dict) -> dict:
    """One method on one track, run in a worker process: an evaluate_track() result."""
    track, method = job["track"], job["method"]
    refs, mixture, rate = _load_references(Path(job["reference_dir"]))
    needed = job["targets"]
    for t in needed:
        if t not in refs and _complemented(t) not in refs:
            raise BsrError(
                f"reference stem {t!r} missing in {job['reference_dir']}: "
                "use a MUSDB18HQ-layout folder or drop the stem from targets"
            )
    est = {}
    if method == "model":
        for t in needed:
            path = Path(job["estimate_dir"]) / f"{t}.wav"
            if not path.is_file():
                raise BsrError(f"estimate missing: {path}: write it or drop {t!r} from targets")
            audio, r = _read(path)
            if r != rate:
                raise BsrError(
                    f"{path} is {r} Hz but the reference is {rate} Hz: write estimates at {rate} Hz"
                )
            est[t] = audio
        return evaluate_track(refs, est, rate, track, job["win"], job["hop"], mixture=mixture)
    partition = {k: refs[k] for k in _partition(refs)}
    guess = baseline_estimates(partition, mixture, method, job["n_fft"], job["stft_hop"])
    wanted = list(needed)
    if len(wanted) == 1:  # museval's two-target rule, see evaluate_track
        wanted.append(complement_name(wanted[0]))
    for t in wanted:
        if t in guess:
            est[t] = guess[t]
        elif method == "mixture":
            est[t] = mixture  # the mixture baseline guesses the mixture for everything
        else:
            # musdb's accompaniment is the sum of the other stems, so is its guess.
            # (Not mixture - guess: a mixture.wav is not exactly the sum of its stems.)
            base = _complemented(t)
            est[t] = sum(v for k, v in guess.items() if k != base)
    return evaluate_track(refs, est, rate, track, job["win"], job["hop"], mixture=mixture)


def _report(done: int, total: int, job: dict) -> None:
    """One progress line: ``  scored 3/10: test/Song Name [IRM]``."""
    subset = Path(job["reference_dir"]).parent.name
    label = METHOD_LABELS.get(job["method"], job["method"])
    print(f"  scored {done}/{total}: {subset}/{job['track']} [{label}]", flush=True)


def _run_jobs(jobs: list[dict], workers: int, progress: bool = False) -> list[dict]:
    """Run :func:`_evaluate_job` for every job, ``workers`` processes at a time.

    Returns the results in the order of ``jobs``; with ``progress``, prints a line as
    each job finishes (in the order they finish).
    """
    if workers < 1:
        raise BsrError(f"workers={workers}: use 1 or more processes")
    if workers == 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            results.append(_evaluate_job(job))
            if progress:
                _report(len(results), len(jobs), job)
        return results
    # Start workers from a clean interpreter rather than forking this one: forking a process
    # that already runs torch's thread pool (a notebook, a test session) can deadlock.
    # "forkserver" (Unix) imports bsr.evaluate once in a server and forks workers from it;
    # "spawn" (Windows) re-imports in every worker.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        from bsr.ffmpeg import ensure_ffmpeg

        ensure_ffmpeg()  # on PATH before the server starts, so it can preload museval
        ctx.set_forkserver_preload(["bsr.evaluate", "museval"])
    results: list = [None] * len(jobs)
    try:
        with concurrent.futures.ProcessPoolExecutor(
            min(workers, len(jobs)), mp_context=ctx
        ) as pool:
            futures = {pool.submit(_evaluate_job, job): i for i, job in enumerate(jobs)}
            try:
                done = concurrent.futures.as_completed(futures)
                for count, future in enumerate(done, 1):
                    i = futures[future]
                    results[i] = future.result()
                    if progress:
                        _report(count, len(jobs), jobs[i])
            except BaseException:
                for future in futures:  # a bad track: do not wait for the queued ones
                    future.cancel()
                raise
    except BrokenProcessPool:
        raise BsrError(
            "an evaluation worker process died (out of memory, or a script that calls "
            "evaluate_folder outside `if __name__ == '__main__':`): add the guard or "
            "use workers=1"
        ) from None
    return results


def _subset_dir(data_dir: str | Path, subset: str) -> Path:
    folder = Path(data_dir) / subset
    if not folder.is_dir():
        raise BsrError(
            f"reference folder {folder} not found: pass the MUSDB18HQ root that holds "
            f"{subset}/<track>/<stem>.wav"
        )
    return folder


def _score(
    names: list[str],
    methods: Sequence[str],
    make_job,
    workers: int,
    progress: bool,
) -> list[MethodResult]:
    """Every method on every track, one job per (track, method) so progress comes often."""
    jobs = [make_job(n, m) for n in names for m in methods]
    if progress:
        labels = ", ".join(METHOD_LABELS.get(m, m) for m in methods)
        print(f"  scoring {len(names)} track(s) x {len(methods)} method(s): {labels}", flush=True)
    results = iter(_run_jobs(jobs, workers, progress))
    by_track = {n: {m: next(results) for m in methods} for n in names}
    return [MethodResult(m, {n: by_track[n][m] for n in names}) for m in methods]


def evaluate_folder(
    estimates_dir: str | Path,
    data_dir: str | Path,
    subset: str = "test",
    targets: Sequence[str] | None = None,
    workers: int = 2,
    out_dir: str | Path | None = None,
    baselines: Sequence[str] = (),
    win: float = 1.0,
    hop: float = 1.0,
    progress: bool = True,
) -> list[MethodResult]:
    """Score a folder of separated stems against a MUSDB18HQ-layout reference folder.

    Estimates are ``ESTIMATES/<subset>/<track>/<stem>.wav`` (museval's layout) or
    ``ESTIMATES/<track>/<stem>.wav``; references ``DATA/<subset>/<track>/<stem>.wav``.
    Every track with an estimate folder is scored (museval BSSEval v4 + uSDR), each
    (track, method) pair a job, in parallel over ``workers`` processes.

    Args:
        targets: stems to score; default: the ``.wav`` names found in the estimate folders.
            A single stem gets its complement added (museval's two-target rule).
        out_dir: if given, write ``<subset>/<track>.json`` (museval format),
            ``results.md`` and ``results.csv`` there.
        baselines: also score these :data:`BASELINES` on the same tracks and targets.
        progress: print a line as each track's method is scored (``  scored 3/10: ...``).

    Returns:
        ``[model result, *baseline results]``; see :func:`format_table`.
    """
    check_baselines(baselines)
    root = Path(estimates_dir)
    if not root.is_dir():
        raise BsrError(f"estimates folder {root} not found: pass the folder the model wrote")
    ref_root = _subset_dir(data_dir, subset)
    est_root = root / subset if (root / subset).is_dir() else root
    folders = {p.name: p for p in est_root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names = sorted(n for n in folders if (ref_root / n).is_dir())
    if not names:
        raise BsrError(
            f"no track folder in {est_root} matches a track in {ref_root}: estimates must be "
            "<estimates>/<subset>/<track name>/<stem>.wav with MUSDB's track names"
        )
    unmatched = sorted(set(folders) - set(names))
    if unmatched:
        warnings.warn(
            f"{len(unmatched)} estimate folder(s) match no reference track and are skipped: "
            + ", ".join(unmatched[:5]),
            stacklevel=2,
        )
    if targets is None:
        targets = _order({p.stem for n in names for p in folders[n].glob("*.wav")})
        if not targets:
            raise BsrError(f"no <stem>.wav files in the track folders of {est_root}")
    targets = list(targets)
    results = _score(
        names,
        ["model", *baselines],
        lambda n, m: _job(n, ref_root / n, folders[n], targets, m, win, hop),
        workers,
        progress,
    )
    if out_dir is not None:
        write_reports(results, out_dir, subset)
    return results


def evaluate_baselines(
    data_dir: str | Path,
    subset: str = "test",
    kinds: Sequence[str] = BASELINES,
    targets: Sequence[str] = STEMS,
    workers: int = 2,
    out_dir: str | Path | None = None,
    tracks: Sequence[str] | None = None,
    win: float = 1.0,
    hop: float = 1.0,
    progress: bool = True,
) -> list[MethodResult]:
    """Score the baselines alone on ``DATA/<subset>`` (all tracks, or ``tracks``).

    Same tables, files and progress lines as :func:`evaluate_folder`, without a model row.
    """
    check_baselines(kinds)
    ref_root = _subset_dir(data_dir, subset)
    names = (
        sorted(tracks)
        if tracks is not None
        else sorted(p.name for p in ref_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if not names:
        raise BsrError(f"no track folders in {ref_root}: pass a MUSDB18HQ-layout data_dir")
    missing = [n for n in names if not (ref_root / n).is_dir()]
    if missing:
        raise BsrError(f"no track {missing[0]!r} in {ref_root}: check the track names")
    results = _score(
        names,
        list(kinds),
        lambda n, m: _job(n, ref_root / n, None, targets, m, win, hop),
        workers,
        progress,
    )
    if out_dir is not None:
        write_reports(results, out_dir, subset)
    return results


def _job(name, reference_dir, estimate_dir, targets, method, win, hop) -> dict:
    """Everything a worker needs for one method on one track, as plain picklable values."""
    return {
        "track": name,
        "method": method,
        "reference_dir": str(reference_dir),
        "estimate_dir": None if estimate_dir is None else str(estimate_dir),
        "targets": list(targets),
        "win": win,
        "hop": hop,
        "n_fft": N_FFT,
        "stft_hop": HOP,
    }
