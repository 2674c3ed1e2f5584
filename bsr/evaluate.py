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

Baselines put a model's numbers in context, on the same tracks:

=================  ==========================================================
``mixture``        the mixture itself as the estimate of every stem
``constant_gain``  ``g * mixture`` with the least-squares ``g = <s, x> / <x, x>``
``irm``            ideal ratio mask ``|S_j| / sum_k |S_k|`` on the mixture STFT
``cirm``           complex ideal ratio mask ``S_j / X``: exact up to STFT round-off
=================  ==========================================================

The two oracles use a Hann STFT with ``n_fft = 4096`` and hop 1024 (93 ms windows at
44.1 kHz with 75 % overlap: fine enough in frequency to separate bass notes); both are
arguments of :func:`baseline_estimates`.

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
BASELINES = ("mixture", "constant_gain", "irm", "cirm")
METHOD_LABELS = {
    "model": "model",
    "mixture": "mixture",
    "constant_gain": "constant gain",
    "irm": "IRM",
    "cirm": "cIRM",
}
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
    return {"track": track_name, "rate": rate, "win": win, "hop": hop, "targets": targets}


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


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(samples, channels)`` -> ``(channels, bins, frames)`` complex64, Hann window."""
    *_, spec = signal.stft(
        x.T.astype(np.float32), window="hann", nperseg=n_fft, noverlap=n_fft - hop
    )
    return spec


def _istft(spec: np.ndarray, length: int, n_fft: int, hop: int) -> np.ndarray:
    """``(channels, bins, frames)`` -> ``(length, channels)`` float64."""
    _, x = signal.istft(spec, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    x = x[..., :length]
    if x.shape[-1] < length:  # the padded STFT always covers the signal, but be safe
        x = np.pad(x, ((0, 0), (0, length - x.shape[-1])))
    return x.T.astype(np.float64)


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
        kind: one of :data:`BASELINES`.
        n_fft, hop: STFT size for ``irm``/``cirm``.

    Returns:
        stem name -> ``(samples, channels)`` float64 estimate.
    """
    if kind not in BASELINES:
        raise BsrError(f"unknown baseline {kind!r}: choose from {', '.join(BASELINES)}")
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

    if kind == "mixture":
        return {k: x.copy() for k in stems}
    if kind == "constant_gain":
        energy = float(np.sum(x * x)) or 1.0  # silent mixture: any g is optimal, use 0
        return {k: float(np.sum(s * x)) / energy * x for k, s in stems.items()}

    n = x.shape[0]
    X = _stft(x, n_fft, hop)  # (channels, bins, frames)
    out = {}
    if kind == "irm":
        # Each stem's STFT is computed twice (denominator, then mask) to keep only one
        # stem's spectrogram in memory: a 4-minute stereo stem at n_fft 4096 is ~340 MB.
        denom = np.zeros(X.shape, dtype=np.float32)
        for s in stems.values():
            denom += np.abs(_stft(s, n_fft, hop))
        denom += np.finfo(np.float32).tiny  # 0/0 in silent bins -> mask 0
        for k, s in stems.items():
            mask = np.abs(_stft(s, n_fft, hop)) / denom
            out[k] = _istft(mask * X, n, n_fft, hop)
        return out
    # cIRM: M = S / X = S conj(X) / |X|^2. Where |X| ~ 0 the ratio explodes (and is 0/0 in
    # digital silence), so |X|^2 is floored at a tiny fraction of its mean; above the floor
    # M X == S and the estimate equals the stem up to STFT round-off.
    power = np.abs(X) ** 2
    floor = 1e-10 * float(np.mean(power)) + 1e-30
    denom = np.maximum(power, floor)
    for k, s in stems.items():
        mask = _stft(s, n_fft, hop) * np.conj(X) / denom
        out[k] = _istft(mask * X, n, n_fft, hop)
    return out


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

    Rows follow the order model, mixture, constant gain, IRM, cIRM (others after).
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
    return "\n".join(lines)


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
    (out / "results.md").write_text(format_table(results))
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


def _evaluate_job(job: dict) -> dict[str, dict]:
    """One track, run in a worker process: method -> evaluate_track() result."""
    track = job["track"]
    refs, mixture, rate = _load_references(Path(job["reference_dir"]))
    partition = {k: refs[k] for k in _partition(refs)}
    needed = job["targets"]
    for t in needed:
        if t not in refs and _complemented(t) not in refs:
            raise BsrError(
                f"reference stem {t!r} missing in {job['reference_dir']}: "
                "use a MUSDB18HQ-layout folder or drop the stem from targets"
            )
    out = {}
    if job["estimate_dir"] is not None:
        est = {}
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
        out["model"] = evaluate_track(
            refs, est, rate, track, job["win"], job["hop"], mixture=mixture
        )
    for kind in job["baselines"]:
        guess = baseline_estimates(partition, mixture, kind, job["n_fft"], job["stft_hop"])
        wanted = list(needed)
        if len(wanted) == 1:  # museval's two-target rule, see evaluate_track
            wanted.append(complement_name(wanted[0]))
        est = {}
        for t in wanted:
            if t in guess:
                est[t] = guess[t]
            elif kind == "mixture":
                est[t] = mixture  # the mixture baseline guesses the mixture for everything
            else:
                # musdb's accompaniment is the sum of the other stems, so is its guess.
                # (Not mixture - guess: a mixture.wav is not exactly the sum of its stems.)
                base = _complemented(t)
                est[t] = sum(v for k, v in guess.items() if k != base)
        out[kind] = evaluate_track(refs, est, rate, track, job["win"], job["hop"], mixture=mixture)
    return out


def _run_jobs(jobs: list[dict], workers: int) -> list[dict]:
    """Run :func:`_evaluate_job` for every track, ``workers`` processes at a time."""
    if workers < 1:
        raise BsrError(f"workers={workers}: use 1 or more processes")
    if workers == 1 or len(jobs) == 1:
        return [_evaluate_job(j) for j in jobs]
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
    try:
        with concurrent.futures.ProcessPoolExecutor(
            min(workers, len(jobs)), mp_context=ctx
        ) as pool:
            return list(pool.map(_evaluate_job, jobs))
    except BrokenProcessPool:
        raise BsrError(
            "an evaluation worker process died (out of memory, or a script that calls "
            "evaluate_folder outside `if __name__ == '__main__':`): add the guard or "
            "use workers=1"
        ) from None


def _subset_dir(data_dir: str | Path, subset: str) -> Path:
    folder = Path(data_dir) / subset
    if not folder.is_dir():
        raise BsrError(
            f"reference folder {folder} not found: pass the MUSDB18HQ root that holds "
            f"{subset}/<track>/<stem>.wav"
        )
    return folder


def _collect(results: list[dict], methods: Sequence[str], names: list[str]) -> list[MethodResult]:
    return [MethodResult(m, {n: r[m] for n, r in zip(names, results)}) for m in methods]


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
) -> list[MethodResult]:
    """Score a folder of separated stems against a MUSDB18HQ-layout reference folder.

    Estimates are ``ESTIMATES/<subset>/<track>/<stem>.wav`` (museval's layout) or
    ``ESTIMATES/<track>/<stem>.wav``; references ``DATA/<subset>/<track>/<stem>.wav``.
    Every track with an estimate folder is scored (museval BSSEval v4 + uSDR), tracks in
    parallel over ``workers`` processes.

    Args:
        targets: stems to score; default: the ``.wav`` names found in the estimate folders.
            A single stem gets its complement added (museval's two-target rule).
        out_dir: if given, write ``<subset>/<track>.json`` (museval format),
            ``results.md`` and ``results.csv`` there.
        baselines: also score these :data:`BASELINES` on the same tracks and targets.

    Returns:
        ``[model result, *baseline results]``; see :func:`format_table`.
    """
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
    for kind in baselines:
        if kind not in BASELINES:
            raise BsrError(f"unknown baseline {kind!r}: choose from {', '.join(BASELINES)}")
    jobs = [_job(n, ref_root / n, folders[n], targets, baselines, win, hop) for n in names]
    results = _collect(_run_jobs(jobs, workers), ["model", *baselines], names)
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
) -> list[MethodResult]:
    """Score the baselines alone on ``DATA/<subset>`` (all tracks, or ``tracks``).

    Same tables and files as :func:`evaluate_folder`, without a model row.
    """
    ref_root = _subset_dir(data_dir, subset)
    for kind in kinds:
        if kind not in BASELINES:
            raise BsrError(f"unknown baseline {kind!r}: choose from {', '.join(BASELINES)}")
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
    jobs = [_job(n, ref_root / n, None, list(targets), kinds, win, hop) for n in names]
    results = _collect(_run_jobs(jobs, workers), list(kinds), names)
    if out_dir is not None:
        write_reports(results, out_dir, subset)
    return results


def _job(name, reference_dir, estimate_dir, targets, baselines, win, hop) -> dict:
    """Everything a worker needs for one track, as plain picklable values."""
    return {
        "track": name,
        "reference_dir": str(reference_dir),
        "estimate_dir": None if estimate_dir is None else str(estimate_dir),
        "targets": list(targets),
        "baselines": list(baselines),
        "win": win,
        "hop": hop,
        "n_fft": N_FFT,
        "stft_hop": HOP,
    }
