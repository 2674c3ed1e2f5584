"""A MUSDB18 root (``.stem.mp4`` files) converted once into the MUSDB18HQ wav layout.

Training reads a few seconds from random places of random songs, thousands of times;
decoding a whole AAC file for each chunk would be far too slow. So the first time a
MUSDB18 root is used, :func:`wav_root` decodes every song of the subset asked for into::

    <course folder>/data/cache/<root name>-<hash>/train/<song>/mixture.wav, vocals.wav, ...
                                                 /test/<song>/...

and from then on the sampler, the validation set and the evaluation read those wav files
exactly as they read MUSDB18HQ. The hash covers the root's absolute path and the name,
size and modification time of every ``.stem.mp4`` in ``train/`` and ``test/``: while they
are unchanged the cache is reused; when one changes, the next use converts into a new
folder (the old one is left alone, and the message says it can be deleted).

* **What is stored.** The mixture is stream 0 as stored (musdb's convention, not the sum of
  the stems); all five are cut to the length the container declares (the AAC decoder adds
  up to a frame of padding at the end), so a song is as long as ``bsr separate`` reads it.
* **Format: 32-bit float wav**, about 106 MB per minute of song (five stereo files at
  44.1 kHz). 16-bit would halve that, but it rounds the decoder's output and clips its
  peaks above full scale (Falcon 69's mixture reaches 1.024): the cache would no longer
  equal what musdb's float decoding gives, and the scores on it would drift from those on
  the ``.stem.mp4`` files. Full MUSDB18 (about 10 h) needs about 63 GB this way.
* **Never half-written.** A subset is decoded into a hidden temporary folder beside its
  final place and renamed into place when complete, so an interrupted conversion (or two
  processes converting at once, as DDP ranks do) never leaves a partial subset that a later
  run would trust. A subset folder that exists is complete.
* Each subset is converted when first needed: ``bsr evaluate --subset test`` never decodes
  the 100 training songs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from bsr.data.examples import decode_stem, one_line, write_song
from bsr.data.musdb import (
    SUBSETS,
    WAV_FILES,
    check_subset_split,
    detect_layout,
    no_tracks_error,
    stem_files,
    track_name,
)
from bsr.errors import BsrError
from bsr.home import course_folder

VERSION = 1
"""Part of every cache key: bump it when what a cache holds changes, so old ones are not used."""

FORMAT = "32-bit float wav"
MARKER = "bsr-cache.json"
"""A small file in each cache folder naming the root it was converted from."""


def wav_root(root: str | Path, subset: str = "train", progress: bool = True) -> Path:
    """The MUSDB18HQ-layout folder from which to read ``subset`` of ``root``.

    A MUSDB18HQ root is returned as it is (so is a path holding neither layout: the
    caller's own checks report it). For a MUSDB18 root, the wav cache of :func:`cache_folder`
    is returned, converting ``subset`` first if the cache does not hold it yet (with a line
    on stdout saying what was converted and where, unless ``progress`` is False).
    """
    root = Path(root).expanduser()
    if not root.is_dir() or detect_layout(root) != "MUSDB18":
        return root
    check_subset_split(subset, None)
    if not stem_files(root, subset):
        raise no_tracks_error(root, subset)
    cache = cache_folder(root)
    if not (cache / subset).is_dir():
        convert_subset(root, subset, cache, progress)
    return cache


def cache_key(root: Path) -> str:
    """12 hex digits of a hash of ``root``'s absolute path and its files' names, sizes, mtimes."""
    digest = hashlib.sha256(f"bsr wav cache {VERSION}\n{root.resolve()}\n".encode())
    for subset in SUBSETS:
        for path in stem_files(root, subset):
            stat = path.stat()
            digest.update(f"{subset}/{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def cache_folder(root: str | Path) -> Path:
    """Where the wav cache of the MUSDB18 ``root`` lives (whether or not it exists yet)."""
    root = Path(root).expanduser().resolve()
    return course_folder("data", "cache", f"{root.name}-{cache_key(root)}")


def convert_song(path: Path) -> dict[str, np.ndarray]:
    """A ``.stem.mp4`` as ``{name: float32 (samples, 2)}`` for ``mixture`` and the 4 stems.

    The mixture is stream 0 as stored; all five are cut to the length the container
    declares. A file that cannot be decoded, or decodes shorter than it declares (a
    truncated download), is a one-line :class:`BsrError`.
    """
    from bsr.audio import probe_audio

    declared = probe_audio(path).frames  # also a one-line error for a file that is no audio
    try:
        streams = decode_stem(path)
    except BsrError:
        raise
    except Exception as err:  # noqa: BLE001  # stempeg fails in many ways on a damaged file
        raise BsrError(
            f"cannot decode {path} ({one_line(err)}): the file is damaged; download it again"
        ) from None
    shortest = min(len(audio) for audio in streams.values())
    frames = declared or shortest
    if shortest < frames:
        raise BsrError(
            f"{path} decodes to {shortest} samples but declares {frames}: the file is "
            "truncated; download it again"
        )
    return {name: np.ascontiguousarray(streams[name][:frames]) for name in WAV_FILES}


def convert_subset(root: Path, subset: str, cache: Path, progress: bool = True) -> Path:
    """Decode every ``root/subset/*.stem.mp4`` into ``cache/subset/<song>/`` (float wav).

    Writes into a hidden temporary folder and renames it into place only when every song
    is done; on any error the temporary folder is removed and nothing else is left.
    Returns ``cache/subset``.
    """
    from bsr.audio import probe_audio

    files = stem_files(root, subset)
    for path in files:  # headers first: a bad file fails in a second, not after an hour
        probe_audio(path)
    cache.mkdir(parents=True, exist_ok=True)
    write_marker(cache, root)
    target = cache / subset
    partial = cache / f".{subset}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    try:
        size = 0
        for path in files:
            for wav in write_song(convert_song(path), partial / track_name(path)):
                size += wav.stat().st_size
        published = publish(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if progress and published:
        older = ", ".join(str(folder) for folder in older_caches(root, cache))
        note = f"; older cache(s) of this root, no longer used: {older}" if older else ""
        print(
            f"converted {len(files)} MUSDB18 song(s) of {root / subset} to {FORMAT} in {target} "
            f"({size / 1e6:.1f} MB, {time.monotonic() - start:.1f} s; reused while those files "
            f"are unchanged){note}",
            flush=True,
        )
    return target


def publish(partial: Path, target: Path) -> bool:
    """Rename the finished ``partial`` folder to ``target``; False if another process won."""
    try:
        partial.rename(target)
    except OSError:
        if target.is_dir():  # converted meanwhile by another process (a DDP rank): use theirs
            return False
        raise
    return True


def write_marker(cache: Path, root: Path) -> None:
    """Record in ``cache`` which root it holds (for people, and for :func:`older_caches`)."""
    marker = cache / MARKER
    if marker.is_file():
        return
    text = json.dumps({"source": str(root.resolve()), "layout": "MUSDB18", "format": FORMAT})
    partial = cache / f".{MARKER}.{uuid.uuid4().hex[:8]}"
    partial.write_text(text + "\n")
    os.replace(partial, marker)


def older_caches(root: Path, cache: Path) -> list[Path]:
    """Other cache folders converted from the same ``root`` (from before its files changed)."""
    source = str(root.resolve())
    found = []
    for folder in sorted(cache.parent.glob(f"{glob.escape(root.resolve().name)}-*")):
        if folder == cache:
            continue
        try:
            if json.loads((folder / MARKER).read_text()).get("source") == source:
                found.append(folder)
        except (OSError, ValueError):
            continue
    return found
