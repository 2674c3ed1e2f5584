"""The folder runner: score a folder of separated stems against a MUSDB18HQ-layout folder.

The references may also be a MUSDB18 root (``.stem.mp4`` files): they are read from its wav
cache, converted on first use (:func:`bsr.data.wavcache.wav_root`).

Every (track, method) pair is one job, read from disk and scored in a worker process
(:func:`_evaluate_job`), so that progress comes often and the cores stay busy; the results
come back as one :class:`~bsr.evaluate.report.MethodResult` per method.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import warnings
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from bsr.errors import BsrError
from bsr.evaluate.baselines import (
    BASELINES,
    ORACLE_HOP,
    ORACLE_N_FFT,
    baseline_estimates,
    check_baselines,
)
from bsr.evaluate.metrics import STEMS, stem_order
from bsr.evaluate.report import METHOD_LABELS, MethodResult, write_reports
from bsr.evaluate.track import complement_name, complemented_stem, evaluate_track, parts_of_mixture


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
    ``ESTIMATES/<track>/<stem>.wav``, matched to the references by track name (a folder
    ``<track>.stem``, as older ``bsr separate`` named a ``.stem.mp4``'s stems, counts as
    ``<track>``); references ``DATA/<subset>/<track>/<stem>.wav`` (MUSDB18HQ) or
    ``DATA/<subset>/<track>.stem.mp4`` (MUSDB18, read through its wav cache).
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
    folders = _estimate_folders(est_root)
    names = sorted(n for n in folders if (ref_root / n).is_dir())
    if not names:
        raise BsrError(
            f"no track folder in {est_root} matches a track in {ref_root}: estimates must be "
            "<estimates>/<subset>/<track name>/<stem>.wav with MUSDB's track names"
        )
    unmatched = sorted(folders[n].name for n in set(folders) - set(names))
    if unmatched:
        warnings.warn(
            f"{len(unmatched)} estimate folder(s) match no reference track and are skipped: "
            + ", ".join(unmatched[:5]),
            stacklevel=2,
        )
    if targets is None:
        targets = stem_order({p.stem for n in names for p in folders[n].glob("*.wav")})
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


def _estimate_folders(est_root: Path) -> dict[str, Path]:
    """The track folders of ``est_root`` by track name (``Song.stem`` -> ``Song``)."""
    folders: dict[str, Path] = {}
    for path in sorted(est_root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        name = path.name.removesuffix(".stem") or path.name
        if name in folders:
            raise BsrError(
                f"{folders[name]} and {path} both hold estimates of track {name!r}: "
                "keep one of the two folders"
            )
        folders[name] = path
    return folders


def _subset_dir(data_dir: str | Path, subset: str) -> Path:
    """``data_dir/subset`` (of the wav cache, for a MUSDB18 root), or a one-line error."""
    from bsr.data.wavcache import wav_root

    folder = wav_root(data_dir, subset) / subset
    if not folder.is_dir():
        raise BsrError(
            f"reference folder {folder} not found: pass the MUSDB18HQ root that holds "
            f"{subset}/<track>/<stem>.wav or the MUSDB18 root that holds {subset}/<track>.stem.mp4"
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
        "n_fft": ORACLE_N_FFT,
        "stft_hop": ORACLE_HOP,
    }


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


def _report(done: int, total: int, job: dict) -> None:
    """One progress line: ``  scored 3/10: test/Song Name [IRM]``."""
    subset = Path(job["reference_dir"]).parent.name
    label = METHOD_LABELS.get(job["method"], job["method"])
    print(f"  scored {done}/{total}: {subset}/{job['track']} [{label}]", flush=True)


def _evaluate_job(job: dict) -> dict:
    """One method on one track, run in a worker process: an evaluate_track() result."""
    track, method = job["track"], job["method"]
    refs, mixture, rate = _load_references(Path(job["reference_dir"]))
    needed = job["targets"]
    for t in needed:
        if t not in refs and complemented_stem(t) not in refs:
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
    partition = {k: refs[k] for k in parts_of_mixture(refs)}
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
            base = complemented_stem(t)
            est[t] = sum(v for k, v in guess.items() if k != base)
    return evaluate_track(refs, est, rate, track, job["win"], job["hop"], mixture=mixture)


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
        mixture = sum(refs[k] for k in parts_of_mixture(refs))
    return refs, mixture, rate


def _read(path: Path) -> tuple[np.ndarray, int]:
    """A wav as float64 ``(samples, channels)`` and its rate."""
    try:
        import soundfile as sf  # here, so that `bsr` starts without it (a bare GPU image)

        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile's messages are long and multi-line
        raise BsrError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return audio, rate
