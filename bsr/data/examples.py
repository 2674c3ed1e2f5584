"""Real MUSDB18 excerpts that need no download, converted to the MUSDB18HQ wav layout.

* "The Easton Ellises - Falcon 69" (test subset) ships inside the ``stempeg`` package as
  ``stempeg.example_stem_path()``: about 6.1 s (268288 samples), 44.1 kHz stereo.
* "Music Delta - 80s Rock" (train subset), about 6.8 s, is used when the project's shared
  folder holds ``data/musdb18-7s-sample/train/Music Delta - 80s Rock.stem.mp4``.

A ``.stem.mp4`` file holds five AAC streams in musdb's order: mixture, drums, bass, other,
vocals. We keep musdb's convention and write the mixture stream as stored rather than the
sum of the stems. Because each stream was AAC-encoded on its own, the two differ a little:
for Falcon 69 the largest |mixture - sum of stems| is about 0.12 away from the edges but
about 3 in the first and last ~50 ms (codec edge artefacts); for 80s Rock it is about 0.05.
``tests/test_data_musdb.py`` prints these numbers.

:func:`download_previews` fetches musdb's 7-second previews of all 150 songs instead.
"""

from __future__ import annotations

import os
import socket
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bsr.data.musdb import WAV_FILES, read_wav
from bsr.errors import BsrError
from bsr.ffmpeg import ensure_ffmpeg

RATE = 44100
FALCON = "The Easton Ellises - Falcon 69"
ROCK = "Music Delta - 80s Rock"
STREAM_ORDER = ("mixture", "drums", "bass", "other", "vocals")
"""Stream order inside a MUSDB18 ``.stem.mp4`` file (musdb's ``stem_ids``)."""

ROCK_IN_SHARED = Path("data") / "musdb18-7s-sample" / "train" / f"{ROCK}.stem.mp4"


def default_shared() -> Path:
    """The ``shared`` folder beside the repository root (the parent of ``bsr``'s parent)."""
    return Path(__file__).resolve().parents[3] / "shared"  # .../<root>/bsr/data/examples.py


def find_rock_stem(shared: str | Path | None = None) -> Path | None:
    """Path of the 80s Rock ``.stem.mp4``, or None when the default shared folder lacks it.

    Looks in ``shared`` if given, else in ``$BSR_SHARED``, else in :func:`default_shared`.
    A folder the user named explicitly (argument or variable) must hold the file.
    """
    explicit = shared if shared is not None else os.environ.get("BSR_SHARED")
    folder = Path(explicit).expanduser() if explicit else default_shared()
    path = folder / ROCK_IN_SHARED
    if path.is_file():
        return path
    if explicit:
        raise BsrError(f"{path} not found: point shared= or BSR_SHARED at the shared folder")
    return None


def decode_stem(path: Path) -> dict[str, np.ndarray]:
    """The five streams of a ``.stem.mp4`` file, each float32 ``(samples, 2)`` at 44.1 kHz."""
    ensure_ffmpeg()
    import stempeg

    streams, _ = stempeg.read_stems(
        str(path), dtype=np.float32, ffmpeg_format="f32le", sample_rate=RATE, always_3d=True
    )  # (streams, samples, channels)
    if streams.shape[0] != len(STREAM_ORDER) or streams.shape[2] != 2:
        raise BsrError(f"{path} is not a 5-stream stereo MUSDB18 stem file: use another file")
    return dict(zip(STREAM_ORDER, streams, strict=True))


def true_stems(path: str | Path) -> dict[str, np.ndarray] | None:
    """The true stems that come with a song file, ``{stem: (channels, samples)}``, or None.

    * ``.../<track>/mixture.wav`` with ``vocals.wav``, ``drums.wav``, ``bass.wav`` and
      ``other.wav`` beside it (MUSDB18HQ, or ``bsr data example``'s output);
    * a MUSDB18 ``.stem.mp4``: its streams 1-4 (stream 0 is the mixture), as long as
      :func:`bsr.audio.read_audio` reads the mixture, sample for sample.

    Any other song has no references, so it cannot be scored: None.
    """
    path = Path(path)
    if path.name.endswith(".stem.mp4"):
        from bsr.audio import probe_audio

        streams = decode_stem(path)
        # stempeg keeps the AAC decoder's padding at the end; bsr.audio.read_audio (the
        # mixture) stops at the length the container declares: cut the stems to it too.
        frames = probe_audio(path).frames or len(streams["mixture"])
        return {name: np.ascontiguousarray(streams[name][:frames].T) for name in WAV_FILES[1:]}
    folder = path.parent
    if path.name != "mixture.wav" or not all((folder / f"{s}.wav").is_file() for s in WAV_FILES):
        return None
    return {s: np.ascontiguousarray(read_wav(folder / f"{s}.wav").T) for s in WAV_FILES[1:]}


def write_song(audio: dict[str, np.ndarray], folder: Path) -> list[Path]:
    """Write ``mixture.wav`` and the four stems (float32 wav) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in WAV_FILES:
        path = folder / f"{name}.wav"
        sf.write(str(path), audio[name], RATE, subtype="FLOAT")
        paths.append(path)
    return paths


def write_examples(out: str | Path, shared: str | Path | None = None) -> list[Path]:
    """Write the real excerpts in MUSDB18HQ layout under ``out`` and return the wav paths.

    Always writes ``out/test/The Easton Ellises - Falcon 69/{mixture,vocals,...}.wav``;
    also ``out/train/Music Delta - 80s Rock/...`` when the shared folder holds it (see
    :func:`find_rock_stem`). ``bsr.data.musdb.open_db(out, subset=...)`` opens the result.
    """
    ensure_ffmpeg()
    import stempeg

    out = Path(out)
    sources = [(Path(stempeg.example_stem_path()), out / "test" / FALCON)]
    rock = find_rock_stem(shared)
    if rock is not None:
        sources.append((rock, out / "train" / ROCK))
    paths = []
    for stem_path, folder in sources:
        paths += write_song(decode_stem(stem_path), folder)
    return paths


def one_line(err: BaseException) -> str:
    """The first line of an exception's reason (``URLError`` keeps it in ``.reason``)."""
    text = str(getattr(err, "reason", "") or err) or type(err).__name__
    return text.splitlines()[0]


def download_previews(root: str | Path, timeout: float = 30.0) -> Path:
    """Download musdb's 7-second MUSDB18 previews (``.stem.mp4``) into ``root``.

    Uses musdb's own downloader (``musdb.DB(download=True)``), which does nothing when
    ``root/train`` already exists. ``timeout`` (seconds) bounds every network wait: musdb
    calls ``urlopen`` without one, so we set the process-wide socket default meanwhile.
    Returns ``root``; open it with ``bsr.data.musdb.open_db(root, is_wav=False)``.
    """
    ensure_ffmpeg()
    import musdb

    root = Path(root).expanduser()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        musdb.DB(root=str(root), download=True)
    except (OSError, zipfile.BadZipFile) as err:  # URLError and timeouts are OSErrors
        raise BsrError(
            f"downloading MUSDB18 previews needs network access: {one_line(err)} "
            "(fix: connect to the internet, or copy the previews into ROOT/train and ROOT/test)"
        ) from None
    except RuntimeError:  # musdb's "Dataset not found" after an odd download
        raise BsrError(f"the download left no {root / 'train'}: delete {root} and retry") from None
    finally:
        socket.setdefaulttimeout(previous)
    return root
