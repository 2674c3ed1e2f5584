"""Sets of practice songs: a MUSDB18HQ-style folder on disk, or an endless stream.

:func:`write_practice_set` writes ``out/{train,test}/<Song Name>/<stem>.wav`` that
``musdb`` opens, byte for byte reproducible; :func:`endless_source` and
:class:`SynthStems` make new songs forever, for training without a disk.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from bsr.data.synth.mix import STEMS, compose_song, mixture_of
from bsr.data.synth.plan import check_song_args, plan_song
from bsr.errors import BsrError

MANIFEST = "practice_set.json"


def song_seed(seed: int, index: int, stream: int = 0) -> int:
    """The seed of song ``index`` derived from a set's ``seed`` (stream 0: practice sets,
    1: :func:`endless_source`), so the two never hand out the same sequence of songs."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def song_folder_name(seed: int, number: int) -> str:
    """A track name such as "Practice 007 - Minor Groove" (musdb reads "Artist - Title")."""
    return f"Practice {number:03d} - {plan_song(seed, 1.0).title}"


def _practice_layout(songs: int, seed: int, test_fraction: float) -> dict[str, list]:
    """Which song goes where: {"train": [(name, song seed), ...], "test": [...]}."""
    tests = 0 if songs < 2 else min(songs - 1, max(1, round(songs * test_fraction)))
    layout: dict[str, list] = {"train": [], "test": []}
    for index in range(songs):
        s = song_seed(seed, index)
        subset = "test" if index >= songs - tests else "train"
        layout[subset].append((song_folder_name(s, index + 1), s))
    return layout


def write_float_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write (samples, channels) audio as a 32-bit float WAV file, byte for byte reproducible.

    soundfile (libsndfile) writes the same format but stamps float files with the time of
    writing (a "PEAK" chunk), so the same song would give different bytes each time. A WAV
    file is simple enough to write by hand: a RIFF header, a "fmt " chunk (format 3 =
    IEEE float), a "fact" chunk (frames), then the interleaved little-endian samples.
    Any reader (soundfile, ffmpeg, musdb) opens it.
    """
    audio = np.ascontiguousarray(audio, dtype="<f4")
    frames, channels = audio.shape
    sample_rate = int(sample_rate)
    data = audio.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, channels, sample_rate, sample_rate * channels * 4,
                      channels * 4, 32, 0)  # fmt: skip
    chunks = [b"fmt ", struct.pack("<I", len(fmt)), fmt, b"fact", struct.pack("<II", 4, frames)]
    chunks += [b"data", struct.pack("<I", len(data)), data]
    body = b"WAVE" + b"".join(chunks)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def practice_settings(
    songs: int, seconds: float, seed: int, test_fraction: float = 1 / 3, sample_rate: int = 44100
) -> dict:
    """What a practice set's manifest records: the generator and every argument that
    changes its songs. Two sets with equal settings hold the same bytes."""
    return {
        "generator": "bsr.data.synth",
        "version": 1,
        "songs": int(songs),
        "seconds": float(seconds),
        "seed": int(seed),
        "test_fraction": float(test_fraction),
        "sample_rate": int(sample_rate),
    }


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of the practice set in ``folder``, or None where there is none."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def holds_practice_set(folder: str | Path, settings: dict) -> bool:
    """Does ``folder`` hold the practice set of exactly these :func:`practice_settings`?"""
    manifest = read_manifest(folder)
    return manifest is not None and {k: manifest.get(k) for k in settings} == settings


def _existing_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}


def write_practice_set(
    out: str | Path,
    songs: int,
    seconds: float,
    seed: int,
    test_fraction: float = 1 / 3,
    sample_rate: int = 44100,
    force: bool = False,
) -> Path:
    """Write a MUSDB18HQ-style practice set and return its folder.

    Layout: ``out/{train,test}/<Song Name>/{mixture,vocals,drums,bass,other}.wav``
    (stereo, 32-bit float), plus ``out/practice_set.json`` recording the arguments.
    ``mixture.wav`` is exactly the float32 sum of the four stems. About
    ``test_fraction`` of the songs (at least one, when there are two or more) go to test.
    Open it with ``musdb.DB(root=out, is_wav=True)``.

    Writing again with the same arguments rewrites the same bytes. A folder holding
    anything else is refused unless ``force`` (which replaces an older practice set's
    files but leaves other files alone).
    """
    if isinstance(songs, bool) or not isinstance(songs, int | np.integer) or songs < 1:
        raise BsrError(f"songs must be a whole number >= 1, got {songs!r}; use e.g. --songs 6")
    if not isinstance(test_fraction, int | float) or not 0.0 <= test_fraction < 1.0:
        raise BsrError(f"test_fraction must be in [0, 1), got {test_fraction!r}; e.g. 0.33")
    check_song_args(seed, seconds, sample_rate)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BsrError(f"{out} is a file, not a folder; choose a folder for the practice set")
    settings = practice_settings(songs, seconds, seed, test_fraction, sample_rate)
    layout = _practice_layout(int(songs), int(seed), float(test_fraction))
    wanted = {MANIFEST} | {
        f"{subset}/{name}/{stem}.wav"
        for subset, entries in layout.items()
        for name, _ in entries
        for stem in ("mixture", *STEMS)
    }
    _make_room(out, settings, wanted, force)
    for subset in ("train", "test"):
        (out / subset).mkdir(parents=True, exist_ok=True)  # musdb lists both
        for name, s in layout[subset]:
            folder = out / subset / name
            folder.mkdir(exist_ok=True)
            stems = compose_song(s, seconds, sample_rate)
            tracks = {"mixture": mixture_of(stems), **stems}
            for stem, audio in tracks.items():
                write_float_wav(folder / f"{stem}.wav", audio, sample_rate)
    settings["tracks"] = {k: [name for name, _ in v] for k, v in layout.items()}
    (out / MANIFEST).write_text(json.dumps(settings, indent=2) + "\n")
    return out


def _make_room(out: Path, settings: dict, wanted: set[str], force: bool) -> None:
    """Refuse to write over files we did not make (unless ``force``); remove stale ones."""
    if not out.exists():
        return
    existing = _existing_files(out)
    if not existing:
        return
    old = read_manifest(out)
    if holds_practice_set(out, settings) and existing <= wanted:
        return  # the same practice set: rewriting gives the same bytes
    if not force:
        what = "a different practice set" if old is not None else f"{len(existing)} other files"
        raise BsrError(f"{out} already holds {what}; use an empty folder or --force")
    if old is not None:  # forget the old set's songs so musdb does not list them
        for subset, names in old.get("tracks", {}).items():
            for name in names:
                folder = out / subset / name
                for stem in ("mixture", *STEMS):
                    path = folder / f"{stem}.wav"
                    if path.relative_to(out).as_posix() not in wanted:
                        path.unlink(missing_ok=True)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def endless_source(
    seed: int, seconds: float, sample_rate: int = 44100, *, start: int = 0, step: int = 1
) -> Iterator[dict[str, np.ndarray]]:
    """New songs forever: yields stem dicts as :func:`compose_song`, one fresh seed each.

    Song k (k = start, start + step, ...) uses ``song_seed(seed, k, stream=1)``; ``start``
    and ``step`` let several data-loading workers share out the songs between them.
    """
    check_song_args(seed, seconds, sample_rate)
    if step < 1 or start < 0:
        raise BsrError(f"start must be >= 0 and step >= 1, got {start}, {step}")
    for index in itertools.count(start, step):
        yield compose_song(song_seed(seed, index, stream=1), seconds, sample_rate)


class SynthStems(IterableDataset):
    """An endless PyTorch dataset of practice songs, for training with no files at all.

    Each item is a float32 tensor of shape (4, 2, samples): (stem, channel, time), stems in
    the order vocals, drums, bass, other. With a DataLoader of W workers, worker w makes
    songs w, w + W, w + 2W, ... of :func:`endless_source`, so no two workers repeat a song
    and the whole run is the same every time.
    """

    def __init__(self, seed: int, seconds: float, sample_rate: int = 44100) -> None:
        super().__init__()
        check_song_args(seed, seconds, sample_rate)
        self.seed, self.seconds, self.sample_rate = seed, seconds, sample_rate

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()  # None in the main process, else this worker's id and count
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        source = endless_source(self.seed, self.seconds, self.sample_rate, start=start, step=step)
        for stems in source:
            yield torch.from_numpy(np.stack([stems[name].T for name in STEMS]))
