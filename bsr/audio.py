"""Reading and writing audio files, whatever a learner has: wav, flac, ogg, mp3, m4a, ...

``read_audio(path)`` returns ``(channels, samples)`` float32 and the sample rate, for any
sample rate and any number of channels. It asks soundfile (libsndfile: wav of every bit
depth, flac, ogg/vorbis and opus, mp3, aiff, ...) first and falls back to the ``ffmpeg``
program for the rest (m4a/AAC, mp4, opus where libsndfile lacks it, wma, ...), decoded to
32-bit float through a pipe. A file that neither can read is one :class:`BsrError` line
naming the file, what it looks like and what to do.

``probe_audio(path)`` reads only the header (channels, rate, length), so that a list of
files can be checked before any of them is decoded; ``write_audio`` writes 32-bit float wav,
``write_stems`` a folder of stems without replacing any. ``excerpt`` cuts the part of a
song to separate; ``read_audio_as`` reads a file at a model's rate and channel count.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bsr.errors import BsrError

FORMATS = "wav, flac, ogg, mp3, m4a/aac or opus"
"""What the error messages suggest: the formats a learner is most likely to have."""

PADDING_LIMIT = 4096
"""At most this many decoded samples past the length the container declares are dropped:
the decoder's padding to a whole codec frame (AAC: up to 1024 samples), never real audio."""

WRITE_BLOCK = 2**20
"""Frames per block when writing, so that interleaving a long stem needs no full copy."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: ``frames`` is None where only decoding tells."""

    channels: int
    sample_rate: int
    frames: int | None
    reader: str  # "soundfile" or "ffmpeg"
    format: str  # e.g. "WAV PCM_16" or "aac in mov,mp4,m4a,3gp,3g2,mj2"


def check_audio(audio: np.ndarray, name: str = "audio") -> None:
    """Refuse empty or non-finite audio with a one-line error; silence is fine."""
    if audio.shape[-1] == 0:
        raise BsrError(f"{name} is empty (0 samples): give a file with audio in it")
    if not np.isfinite(audio).all():
        raise BsrError(f"{name} contains NaN or infinite samples: repair or re-export the file")


def probe_audio(path: str | Path) -> AudioInfo:
    """The header of ``path`` (soundfile, else ffprobe), or a one-line :class:`BsrError`."""
    path = _check_file(path)
    info, reason = _soundfile_info(path)
    return info if info is not None else _ffprobe_info(path, reason)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """``path`` -> ``(audio (channels, samples) float32, sample_rate)``, one-line errors.

    soundfile reads what libsndfile knows; anything else is decoded by ``ffmpeg``, from
    the file's *first* audio stream: a MUSDB18 ``.stem.mp4`` (five streams: mixture,
    drums, bass, other, vocals) gives its mixture. Lossy files are as long as their
    container says (the decoder's padding to a whole frame is dropped), except raw
    ``.aac`` (ADTS), which records no length and starts with the encoder's 1024-sample
    priming, as in any player. Empty or NaN audio is refused as by :func:`check_audio`.
    """
    path = _check_file(path)
    info, reason = _soundfile_info(path)
    if info is not None:
        try:
            audio, rate = _soundfile_read(path)
        except Exception as error:  # noqa: BLE001  # a header that reads, data that does not
            info, reason = None, _first_line(error)
    if info is None:
        info = _ffprobe_info(path, reason)
        audio, rate = _ffmpeg_read(path, info), info.sample_rate
    check_audio(audio, str(path))
    return audio, rate


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``audio`` ``(channels, samples)`` as 32-bit float wav, block by block."""
    import soundfile as sf

    channels, length = audio.shape
    with sf.SoundFile(path, "w", sample_rate, channels, subtype="FLOAT") as file:
        for start in range(0, length, WRITE_BLOCK):
            file.write(audio[:, start : start + WRITE_BLOCK].T)


def write_stems(
    stems: dict[str, np.ndarray], sample_rate: int, folder: str | Path, force: bool = False
) -> list[Path]:
    """Write ``{stem: (channels, samples)}`` as ``folder/<stem>.wav``; returns the paths.

    Stems that exist already are kept, and nothing is written, unless ``force``.
    """
    folder = Path(folder)
    targets = [folder / f"{name}.wav" for name in stems]
    clash = [target for target in targets if target.exists()]
    if clash and not force:
        raise BsrError(f"{clash[0]} already exists: pass --force to overwrite, or another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BsrError(f"cannot create {folder} ({error.strerror}): choose another --out") from None
    for target, estimate in zip(targets, stems.values()):
        write_audio(target, estimate, sample_rate)
    return targets


def excerpt(
    audio: np.ndarray, rate: int, seconds: float | None, start: float | None = None
) -> np.ndarray:
    """``seconds`` of ``(channels, samples)`` audio from ``start`` (None: centred), a view.

    ``seconds=None`` or longer than the song: the whole song. An excerpt never runs past
    either end of the song: it is cut at the end rather than padded.
    """
    length = audio.shape[-1]
    if seconds is None:
        return audio
    size = min(length, round(seconds * rate))
    first = (length - size) // 2 if start is None else min(max(round(start * rate), 0), length)
    return audio[..., first : first + size]


def read_audio_as(path: str | Path, sample_rate: int, channels: int) -> np.ndarray:
    """A file as ``(samples, channels)`` float32 at ``sample_rate``, the layout musdb gives.

    Mono is repeated into every channel; more channels than asked are averaged down.
    """
    audio, rate = read_audio(path)
    if rate != sample_rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate, axis=-1)
    if audio.shape[0] != channels:
        audio = np.repeat(audio.mean(0, keepdims=True), channels, axis=0)
    return np.ascontiguousarray(audio.T, dtype=np.float32)


# ---------------------------------------------------------------------------- soundfile


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C libraries print to file descriptor 2 (libmpg123's "Note: ..." lines
    about a file that is not mp3), so that an error stays one line."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (some embedded interpreters): nothing to silence
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _soundfile_info(path: Path) -> tuple[AudioInfo | None, str]:
    """The header as libsndfile reads it, or ``(None, why not)``."""
    import soundfile as sf

    try:
        with _quiet_stderr():
            info = sf.info(str(path))
    except Exception as error:  # noqa: BLE001  # libsndfile reports damage in several ways
        return None, _first_line(error)
    if info.channels < 1 or info.samplerate < 1:
        return None, f"{info.channels} channels at {info.samplerate} Hz"
    return AudioInfo(info.channels, info.samplerate, info.frames, "soundfile",
                     f"{info.format} {info.subtype}"), ""  # fmt: skip


def _soundfile_read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with _quiet_stderr():
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), rate


# ---------------------------------------------------------------------------- ffmpeg


def _ffprobe_info(path: Path, soundfile_reason: str = "") -> AudioInfo:
    """The first audio stream as ffprobe sees it, or a one-line :class:`BsrError`."""
    from bsr.ffmpeg import ensure_ffmpeg

    try:
        ensure_ffmpeg()
    except BsrError as error:
        raise BsrError(
            f"cannot read {path} with soundfile ({soundfile_reason or 'unknown format'}), "
            f"and {error}"
        ) from None
    args = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
            f"file:{path}"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, errors="replace")
    try:
        probe = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        probe = None
    if not probe:
        raise _unreadable(path, _ffmpeg_reason(done.stderr, path), soundfile_reason)
    streams = probe.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    kind = probe.get("format", {}).get("format_name", "unknown")
    if not audio:
        found = ", ".join(f"{s.get('codec_type')} {s.get('codec_name')}" for s in streams)
        raise BsrError(
            f"cannot read {path} as audio: it is {_looks_like(path)} with no audio stream "
            f"(ffprobe sees {kind}: {found or 'no streams'}): give a file with audio in it"
        )
    stream = audio[0]
    channels, rate = int(stream.get("channels") or 0), int(stream.get("sample_rate") or 0)
    if channels < 1 or rate < 1:
        raise BsrError(
            f"cannot read {path}: its audio stream declares {channels} channels at {rate} Hz "
            "(a damaged header): re-export the file"
        )
    return AudioInfo(channels, rate, _declared_frames(stream, rate), "ffmpeg",
                     f"{stream.get('codec_name')} in {kind}")  # fmt: skip


def _declared_frames(stream: dict, rate: int) -> int | None:
    """The stream's length in samples from its container's duration, None if not given."""
    try:
        num, den = (int(v) for v in stream["time_base"].split("/"))
        return round(int(stream["duration_ts"]) * num * rate / den)
    except (KeyError, ValueError, ZeroDivisionError):
        pass
    try:
        return round(float(stream["duration"]) * rate)
    except (KeyError, ValueError):
        return None


def _ffmpeg_read(path: Path, info: AudioInfo) -> np.ndarray:
    """Decode the first audio stream to ``(channels, samples)`` float32 through a pipe."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0:a:0",
            "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=log)
        log.seek(0)
        messages = log.read().decode(errors="replace")
    if done.returncode != 0:
        raise _unreadable(path, _ffmpeg_reason(messages, path), "", what="ffmpeg")
    data = np.frombuffer(done.stdout, dtype=np.float32)
    if data.size % info.channels:
        raise BsrError(
            f"cannot read {path}: ffmpeg decoded {data.size} samples, not a whole number of "
            f"{info.channels}-channel frames: convert it to wav first (ffmpeg -i IN out.wav)"
        )
    frames = data.reshape(-1, info.channels)
    declared = info.frames
    if declared is not None and declared < len(frames) <= declared + PADDING_LIMIT:
        frames = frames[:declared]  # the decoder's padding to a whole codec frame
    return np.array(frames.T, order="C")  # a copy: writable, not a view of ffmpeg's bytes


def _ffmpeg_reason(messages: str, path: Path) -> str:
    """ffmpeg's complaint in a few words: its distinct messages, prefixes removed."""
    seen = []
    for line in messages.splitlines():
        line = line.strip()
        if line.startswith("[") and "] " in line:
            line = line.split("] ", 1)[1]  # "[mov,mp4 @ 0x...] moov atom not found"
        line = line.replace(f"file:{path}: ", "")
        line = line.rstrip(".")
        if line and not line.startswith("Error opening input") and line not in seen:
            seen.append(line)
    return "; ".join(seen)[:160] or "no message"


# ---------------------------------------------------------------------------- errors


def _check_file(path: str | Path) -> Path:
    """Refuse a missing path, a directory, an empty or unreadable file."""
    path = Path(path)
    if path.is_dir():
        raise BsrError(f"{path} is a directory: give audio files ({FORMATS})")
    if not path.is_file():
        raise BsrError(f"{path} not found: check the path")
    if path.stat().st_size == 0:
        raise BsrError(f"{path} is empty (0 bytes): give a file with audio in it")
    if not os.access(path, os.R_OK):
        raise BsrError(f"{path} cannot be opened (permission denied): check its permissions")
    return path


UNHELPFUL = ("Format not recognised", "System error", "File does not exist", "unknown error")


def _unreadable(path: Path, reason: str, soundfile_reason: str, what: str = "ffprobe"):
    """The :class:`BsrError` for a file that is not audio, or damaged audio."""
    if soundfile_reason and not any(s in soundfile_reason for s in UNHELPFUL):
        reason = f"{soundfile_reason}; {what}: {reason}"  # libsndfile's words are specific
    else:
        reason = f"{what}: {reason}"
    looks = _looks_like(path)
    fix = (
        f"give an audio file ({FORMATS})"
        if looks.startswith(("a text", "a zip", "a PDF", "an image", "an HTML"))
        else f"if it is damaged or cut short, export or download it again ({FORMATS})"
    )
    return BsrError(f"cannot read {path} as audio: it is {looks} ({reason}): {fix}")


MAGIC = ((b"PK\x03\x04", "a zip archive"), (b"%PDF", "a PDF document"),
         (b"\x89PNG", "an image (PNG)"), (b"\xff\xd8\xff", "an image (JPEG)"))  # fmt: skip


def _looks_like(path: Path) -> str:
    """``a text file (19 bytes)``, ``a zip archive (2 kB)``, ``20 kB of .m4a data``..."""
    size = path.stat().st_size
    amount = f"{size} bytes" if size < 10_000 else f"{size / 1000:.0f} kB"
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        head = b""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return f"{name}, {amount}"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return f"an HTML page, {amount}"
    if _is_text(head):
        return f"a text file, {amount}"
    return f"{amount} of {path.suffix or 'unnamed'} data"


def _is_text(head: bytes) -> bool:
    """Whether the first bytes of a file are printable UTF-8 (a character may be cut)."""
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return all(c.isprintable() or c in "\r\n\t" for c in text)
    return False


def _first_line(error: BaseException) -> str:
    """libsndfile's message without its ``Error opening 'PATH': `` prefix."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    if line.startswith("Error opening") and "': " in line:
        line = line.split("': ", 1)[1]
    return line[:100]
