"""Scoring one track: checked stems, museval's two-target rules, then both SDRs.

:func:`evaluate_track` is the one entry point. Before any metric runs it checks the
stems (layout, NaNs, channels, length), then applies museval's two rules:

* museval needs **at least two targets**: its SIR splits the error into the part explained
  by the *other* references and the rest, meaningless with one source. A single estimated
  stem gets its complement added (``accompaniment`` for vocals, ``not_<stem>`` otherwise),
  with estimate ``mixture - estimate`` and as reference the sum of the other stems
  (musdb's accompaniment), or ``mixture - reference`` when they are not given;
* when both ``vocals`` and ``accompaniment`` are estimated, that pair is scored on its own
  and any other stems together as a second group.

All arrays are ``(samples, channels)``, the layout of ``soundfile`` and musdb.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bsr.errors import BsrError
from bsr.evaluate.metrics import METRICS, bss_eval_v4, nanmedian, stem_order, usdr


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
        the SDR frames), "uSDR": float, "added": bool}}, "silent": {"references": [...],
        "estimates": [...]}}``, targets in museval's order. ``added`` marks a complement
        created by the two-target rule; ``silent`` names the all-zero stems.
    """
    if not estimates:
        raise BsrError("no estimates given: pass at least one stem, e.g. {'vocals': array}")
    window, hop_samples = int(win * rate), int(hop * rate)
    if window < 1 or hop_samples < 1:
        raise BsrError(f"win={win} s and hop={hop} s at {rate} Hz give empty frames: use 1.0")
    refs, ests = _checked_stems(references, estimates, mixture, window)
    added = _add_complement(refs, ests, mixture)
    frames = _museval_frames(refs, ests, window, hop_samples)
    targets = {}
    for n in stem_order(frames):
        entry: dict = dict(frames[n])
        entry["cSDR"] = nanmedian(entry["SDR"])
        entry["uSDR"] = usdr(refs[n], ests[n])
        entry["added"] = n in added
        targets[n] = entry
    # A silent stem blanks museval's frames for the whole track: record it, so the report
    # can say why the track has no cSDR rather than drop it without a word.
    silent = {
        "references": [n for n in stem_order(ests) if not np.any(refs[n])],
        "estimates": [n for n in stem_order(ests) if not np.any(ests[n])],
    }
    return {
        "track": track_name,
        "rate": rate,
        "win": win,
        "hop": hop,
        "targets": targets,
        "silent": silent,
    }


def _checked_stems(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    mixture: np.ndarray | None,
    window: int,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Float64 ``(samples, channels)`` references and estimates, one reference per estimate.

    The references (and ``mixture``, stored as ``"mixture"``) must share one shape; an
    estimated complement (``accompaniment``, ``not_bass``) gets its reference built from
    the others; every estimate is checked and cut or padded to its reference's length.
    """
    refs = {k: as_audio(f"reference {k!r}", v) for k, v in references.items()}
    if mixture is not None:
        refs = {**refs, "mixture": as_audio("mixture", mixture)}
    shapes = {k: v.shape for k, v in refs.items()}
    if len(set(shapes.values())) > 1:
        raise BsrError(f"references differ in shape {shapes}: cut them to one length")
    ests = {}
    for name, est in estimates.items():
        base = complemented_stem(name)
        if name not in refs and base in refs:
            refs[name] = _complement_reference(refs, base, mixture)
        if name not in refs:
            raise BsrError(
                f"no reference for estimated stem {name!r} (have {sorted(refs)}): "
                "rename the estimate or add the reference"
            )
        ests[name] = as_audio(f"estimate {name!r}", est)
    for name in ests:
        ests[name] = _align(name, refs[name], ests[name], window)
    return refs, ests


def _add_complement(
    refs: dict[str, np.ndarray], ests: dict[str, np.ndarray], mixture: np.ndarray | None
) -> set[str]:
    """museval's two-target rule: give a lone estimate its complement (in place).

    Returns the names added (empty when two or more stems were estimated).
    """
    if len(ests) != 1:
        return set()
    (name,) = ests
    other = complement_name(name)
    if other not in refs:
        refs[other] = _complement_reference(refs, name, mixture)
    ests[other] = _mixture_of(refs, mixture) - ests[name]
    return {other}


def _museval_frames(
    refs: Mapping[str, np.ndarray], ests: Mapping[str, np.ndarray], window: int, hop: int
) -> dict[str, dict[str, np.ndarray]]:
    """Stem -> metric -> ``(frames,)`` museval scores, scored group by group.

    museval's rule: vocals and accompaniment are scored as their own pair, the other
    stems (if two or more) together; vocals take their scores from the pair.
    """
    pair = "vocals" in ests and "accompaniment" in ests
    group = [n for n in stem_order(ests) if not (pair and n == "accompaniment")]
    groups = []
    if len(group) >= 2:
        groups.append(group)
    if pair:
        groups.append(["vocals", "accompaniment"])
    frames: dict[str, dict[str, np.ndarray]] = {}
    for names in groups:
        out = bss_eval_v4(
            np.stack([refs[n] for n in names]), np.stack([ests[n] for n in names]), window, hop
        )
        for i, n in enumerate(names):
            if pair and n == "vocals" and "accompaniment" not in names:
                continue  # vocals come from the vocals/accompaniment pair
            frames[n] = {m: out[m][i] for m in METRICS}
    return frames


def as_audio(name: str, audio: np.ndarray) -> np.ndarray:
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


def complemented_stem(name: str) -> str | None:
    """The stem that ``name`` is the complement of (inverse of :func:`complement_name`)."""
    if name == "accompaniment":
        return "vocals"
    return name[4:] if name.startswith("not_") else None


def parts_of_mixture(refs: Mapping[str, np.ndarray]) -> list[str]:
    """The reference stems that add up to the mixture (derived complements left out)."""
    stems = [k for k in refs if k != "mixture" and complemented_stem(k) is None]
    if "accompaniment" in refs and set(stems) <= {"vocals"}:
        stems.append("accompaniment")  # a vocals/accompaniment track, like musdb's sample
    return stems


def _mixture_of(refs: Mapping[str, np.ndarray], mixture: np.ndarray | None) -> np.ndarray:
    """The mixture: the one given, else ``refs["mixture"]``, else the sum of the stems."""
    if mixture is not None:
        return as_audio("mixture", mixture)
    if "mixture" in refs:
        return refs["mixture"]
    stems = parts_of_mixture(refs)
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
    rest = [k for k in parts_of_mixture(refs) if k != target]
    if rest:
        return sum(refs[k] for k in rest)
    return _mixture_of(refs, mixture) - refs[target]
