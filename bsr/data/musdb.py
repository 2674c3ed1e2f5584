"""Open MUSDB18 and MUSDB18HQ through the ``musdb`` package, with clear errors.

MUSDB18HQ stores each song as a folder of five wav files::

    ROOT/train/<song>/mixture.wav, vocals.wav, drums.wav, bass.wav, other.wav
    ROOT/test/<song>/...

MUSDB18 (compressed) stores each song as one ``ROOT/train/<song>.stem.mp4`` whose five
audio streams are, in this order: mixture, drums, bass, other, vocals.

The ``musdb`` package reads both, but a malformed folder gives confusing errors deep inside
it (or silently yields zero tracks). :func:`validate_wav_root` therefore checks a wav folder
with ``soundfile`` first, and :func:`open_db` turns every user mistake into a one-line
:class:`~bsr.errors.BsrError`. :func:`detect_layout` tells the two layouts apart (and
refuses a root that mixes them); :mod:`bsr.data.wavcache` converts a MUSDB18 root once
into the wav layout, which is what the training sampler and the evaluation read.

Nothing here imports ``musdb`` at module level: importing it (via ``stempeg``) fails when
``ffprobe`` is not on PATH, so we call :func:`bsr.ffmpeg.ensure_ffmpeg` first.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from bsr.errors import BsrError
from bsr.ffmpeg import ensure_ffmpeg

STEMS = ("vocals", "drums", "bass", "other")
"""The four MUSDB18 sources, in the order every ``bsr`` tensor uses."""

TARGETS = STEMS + ("accompaniment",)
"""What a model may be evaluated on: the four stems plus accompaniment = drums + bass + other."""

WAV_FILES = ("mixture",) + STEMS
"""The five files of a MUSDB18HQ song folder (without ``.wav``)."""

SUBSETS = ("train", "test")
SPLITS = (None, "train", "valid")

LAYOUT = "ROOT/train/<song>/mixture.wav, vocals.wav, drums.wav, bass.wav, other.wav"


@dataclass(frozen=True)
class WavSong:
    """One MUSDB18HQ song folder that passed :func:`validate_wav_root`.

    ``frames`` is the length in samples shared by all five files; ``rate`` is in Hz.
    """

    name: str
    folder: Path
    frames: int
    rate: int

    def path(self, stem: str) -> Path:
        """The wav file of ``stem`` (one of ``WAV_FILES``)."""
        return self.folder / f"{stem}.wav"


def validation_tracks() -> tuple[str, ...]:
    """Names of the songs in musdb's official validation split (taken from the train subset).

    Read straight from the ``musdb`` package's ``configs/mus.yaml`` without importing it,
    so that the training sampler works on machines without ffmpeg.
    """
    spec = importlib.util.find_spec("musdb")
    if spec is None or not spec.submodule_search_locations:
        raise BsrError("the musdb package is not installed: run `pip install musdb`")
    config = Path(list(spec.submodule_search_locations)[0]) / "configs" / "mus.yaml"
    with open(config) as f:
        return tuple(yaml.safe_load(f)["validation_tracks"])


def check_subset_split(subset: str, split: str | None) -> None:
    """Raise a one-line error for an unknown ``subset`` / ``split`` combination."""
    if subset not in SUBSETS:
        raise BsrError(f"unknown subset {subset!r}: use 'train' or 'test'")
    if split not in SPLITS:
        raise BsrError(f"unknown split {split!r}: use None, 'train' or 'valid'")
    if split is not None and subset != "train":
        raise BsrError(f"split={split!r} only applies to subset='train': drop split or use train")


def check_root(root: str | Path) -> Path:
    """Return ``root`` as a Path, or raise if it is not an existing folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise BsrError(f"dataset folder {root} does not exist: check the path (expected {LAYOUT})")
    if not root.is_dir():
        raise BsrError(f"dataset path {root} is a file: pass the folder that holds train/")
    return root


def no_tracks_error(root: Path, subset: str) -> BsrError:
    """The error for a root without any song of ``subset``, with a hint for a common slip."""
    hint = ""
    if (root / "mixture.wav").exists() or any(root.glob("*/mixture.wav")):
        hint = " (this looks like a subset or song folder: pass the folder above train/ and test/)"
    return BsrError(
        f"no tracks found in {root / subset}{hint}: expected {LAYOUT} "
        f"or ROOT/{subset}/<song>.stem.mp4"
    )


def song_folders(root: Path, subset: str) -> list[Path]:
    """Sorted song folders of ``root/subset`` (any sub-folder counts, so missing files show)."""
    subset_dir = root / subset
    if not subset_dir.is_dir():
        return []
    return sorted(p for p in subset_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_song(folder: Path) -> WavSong:
    """Check one song folder with ``sf.info`` (headers only, fast) and describe it."""
    infos = {}
    for stem in WAV_FILES:
        path = folder / f"{stem}.wav"
        if not path.is_file():
            raise BsrError(
                f"song '{folder.name}' has no {stem}.wav: every song folder needs "
                f"{', '.join(s + '.wav' for s in WAV_FILES)}"
            )
        try:
            infos[stem] = sf.info(str(path))
        except RuntimeError as err:  # soundfile raises LibsndfileError, a RuntimeError
            reason = str(err).splitlines()[0]
            raise BsrError(f"{path} is not a readable wav file ({reason}): re-export it") from None
    ref = infos["mixture"]
    for stem, info in infos.items():
        path = folder / f"{stem}.wav"
        if info.channels != 2:
            raise BsrError(
                f"{path} has {info.channels} channel(s) but MUSDB18HQ stems are stereo: "
                "re-export it as 2-channel wav"
            )
        if info.samplerate != ref.samplerate:
            raise BsrError(
                f"{path} is at {info.samplerate} Hz but mixture.wav is at {ref.samplerate} Hz: "
                "resample all five files of the song to the same rate"
            )
        if info.frames != ref.frames:
            raise BsrError(
                f"{path} has {info.frames} samples but mixture.wav has {ref.frames}: "
                "all five files of a song must have the same length; trim or pad them"
            )
    return WavSong(folder.name, folder, int(ref.frames), int(ref.samplerate))


def validate_wav_root(
    root: str | Path, subset: str = "train", split: str | None = None
) -> list[WavSong]:
    """Check a MUSDB18HQ-layout folder before ``musdb`` touches it.

    Every song folder of ``root/subset`` must hold the five wav files, stereo, with one
    sample rate and one length. ``split`` keeps musdb's official ``'train'`` songs or only
    its ``'valid'`` songs (``None`` keeps all). Returns the songs sorted by name.
    """
    check_subset_split(subset, split)
    root = check_root(root)
    folders = song_folders(root, subset)
    if not folders:
        raise no_tracks_error(root, subset)
    if split is not None:
        valid = set(validation_tracks())
        folders = [f for f in folders if (f.name in valid) == (split == "valid")]
        if not folders:
            raise BsrError(
                f"no songs of musdb's {split!r} split in {root / subset}: use split=None "
                "to take every song (the split only makes sense for the real MUSDB18 names)"
            )
    return [check_song(folder) for folder in folders]


def stem_files(root: Path, subset: str) -> list[Path]:
    """Sorted MUSDB18 ``.stem.mp4`` files of ``root/subset`` (none when it is missing)."""
    subset_dir = root / subset
    if not subset_dir.is_dir():
        return []
    return sorted(
        p for p in subset_dir.glob("*.stem.mp4") if p.is_file() and not p.name.startswith(".")
    )


def track_name(path: Path) -> str:
    """A MUSDB18 file's track name: ``train/Artist - Title.stem.mp4`` -> ``Artist - Title``."""
    return path.name[: -len(".stem.mp4")]


def detect_layout(root: Path) -> str | None:
    """``'MUSDB18'`` (``.stem.mp4`` files), ``'MUSDB18HQ'`` (song folders) or None (neither).

    Looks at both ``train/`` and ``test/``; a root holding both kinds is refused, since
    half of it would be silently ignored.
    """
    stems = [p for subset in SUBSETS for p in stem_files(root, subset)]
    folders = [p for subset in SUBSETS for p in song_folders(root, subset)]
    if stems and folders:
        one, other = stems[0].relative_to(root), folders[0].relative_to(root)
        raise BsrError(
            f"{root} mixes MUSDB18 .stem.mp4 files ({one}) and MUSDB18HQ song folders "
            f"({other}/): keep one layout per root, move the other into a root of its own"
        )
    if stems:
        return "MUSDB18"
    return "MUSDB18HQ" if folders else None


def detect_is_wav(root: Path, subset: str) -> bool:
    """True for a MUSDB18HQ (wav) folder, False for MUSDB18 (``.stem.mp4``) files."""
    layout = detect_layout(root)
    found = stem_files(root, subset) if layout == "MUSDB18" else song_folders(root, subset)
    if not found:
        raise no_tracks_error(root, subset)
    return layout == "MUSDB18HQ"


def open_db(
    root: str | Path,
    subset: str = "train",
    split: str | None = None,
    is_wav: bool | None = None,
) -> Any:
    """Open MUSDB18 or MUSDB18HQ as a ``musdb.DB`` with one subset.

    ``subset`` is ``'train'`` (100 songs) or ``'test'`` (50 songs). ``split`` is musdb's
    official split of the train subset: ``'train'`` (86 songs), ``'valid'`` (14 songs) or
    ``None`` (all). ``is_wav=None`` picks MUSDB18HQ when song folders are present and
    MUSDB18 when ``.stem.mp4`` files are.
    """
    check_subset_split(subset, split)
    root = check_root(root)
    if is_wav is None:
        is_wav = detect_is_wav(root, subset)
    if is_wav:
        validate_wav_root(root, subset, split)
    ensure_ffmpeg()  # musdb -> stempeg refuses to import without ffprobe
    import musdb

    db = musdb.DB(root=str(root), subsets=subset, split=split, is_wav=is_wav)
    if len(db) == 0:
        kind = "song folders" if is_wav else ".stem.mp4 files"
        split_note = f" in musdb's {split!r} split" if split else ""
        raise BsrError(
            f"no {kind}{split_note} found in {root / subset}: expected {LAYOUT} "
            f"or ROOT/{subset}/<song>.stem.mp4"
        )
    return db


def read_wav(path: Path) -> np.ndarray:
    """A whole wav file as float32, shape ``(samples, channels)``."""
    audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return audio


def load_track(track: Any) -> dict[str, np.ndarray]:
    """Mixture and stems of one ``musdb`` track, each float32 ``(samples, channels)``.

    Keys: ``'mixture'``, ``'vocals'``, ``'drums'``, ``'bass'``, ``'other'``. The mixture is
    the one stored in the dataset, not recomputed. Wav tracks are read with soundfile
    (musdb would round them to 16 bit); ``.stem.mp4`` tracks are decoded by musdb, as the
    official evaluation does (16-bit, so the rare peaks above 1.0 are clipped).
    """
    if track.is_wav:
        audio = {"mixture": read_wav(Path(track.path))}
        for stem in STEMS:
            if stem not in track.sources:
                raise BsrError(f"song '{track.name}' has no {stem}.wav: add it to its folder")
            audio[stem] = read_wav(Path(track.sources[stem].path))
    else:
        streams = track.stems  # (streams, samples, channels), in the file's stream order
        if streams.ndim != 3 or streams.shape[0] < 5:
            raise BsrError(f"{track.path} has fewer than 5 audio streams: it is not a MUSDB18 stem")
        audio = {"mixture": streams[0].astype(np.float32)}
        for stem in STEMS:
            audio[stem] = streams[track.sources[stem].stem_id].astype(np.float32)
    for name, array in audio.items():
        if array.shape[1] != 2:
            raise BsrError(f"{name} of '{track.name}' is not stereo: re-export it as 2-channel")
    return audio


def add_accompaniment(audio: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A copy of ``audio`` with ``'accompaniment'`` = drums + bass + other added."""
    return {**audio, "accompaniment": audio["drums"] + audio["bass"] + audio["other"]}
