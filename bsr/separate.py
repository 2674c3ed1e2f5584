"""Separation: run a trained model over songs of any length.

A song is longer than anything the model was trained on, so it is cut into windows
(the paper: 8 s every 4 s), each window is separated, and the outputs are laid back on top
of each other, each weighted by a smooth window and divided by the summed weights
("overlap-add"). The weighting matters: simply concatenating non-overlapping windows leaves
an audible click wherever two windows meet, because the model sees no context across a
border. Padding by one window overlap at both ends gives every sample the same number of
windows, edges included.

``separate(audio, sample_rate, model)`` handles any sample rate (resampled to the model's
and back), mono or stereo input, and returns one array per stem, shaped like the input.
A model loaded with a community YAML brings its own windows (``model.separation_defaults``:
``audio.chunk_size`` every ``chunk_size // inference.num_overlap`` samples), the length it
was trained on; those replace the 8 s / 4 s default unless you give others.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bsr.errors import BsrError

WINDOW_SHAPES = ("hann", "triangle", "rectangle")
"""How overlap-add weights each window: the shapes :func:`chunk_weights` knows."""


def chunk_weights(length: int, shape: str) -> torch.Tensor:
    """A strictly positive weighting window of ``length`` samples."""
    if shape == "rectangle":  # plain overlap-and-average, as in the paper's OA
        return torch.ones(length)
    if shape == "hann":
        return torch.hann_window(length + 2, periodic=False)[1:-1]
    if shape == "triangle":
        return torch.bartlett_window(length + 2, periodic=False)[1:-1]
    raise BsrError(f"unknown window shape {shape!r}: use one of {', '.join(WINDOW_SHAPES)}")


@torch.inference_mode()
def separate_tensor(
    model: torch.nn.Module,
    audio: torch.Tensor,
    window: int,
    hop: int,
    shape: str = "hann",
    batch_size: int = 4,
    progress=None,
) -> torch.Tensor:
    """``(channels, samples)`` at the model's rate -> ``(stems, channels, samples)``.

    Input no longer than one window is separated in a single pass.
    """
    device = next(model.parameters()).device
    channels, length = audio.shape
    if length <= window:
        out = model(audio[None].to(device)).float().cpu()[0]
        if progress is not None:
            progress(length)
        return out
    if not 0 < hop <= window:
        raise BsrError(f"hop ({hop} samples) must be between 1 and the window ({window})")
    pad = window - hop
    steps = math.ceil((length + pad) / hop)  # windows needed to cover the padded signal
    total = (steps - 1) * hop + window
    padded = F.pad(audio, (pad, total - length - pad))
    weights = chunk_weights(window, shape)
    stems = len(model.stems)
    out = torch.zeros(stems, channels, total)
    norm = torch.zeros(total)
    starts = list(range(0, total - window + 1, hop))
    done = 0  # input samples reported to ``progress`` so far
    for i in range(0, len(starts), batch_size):
        group = starts[i : i + batch_size]
        chunks = torch.stack([padded[:, s : s + window] for s in group]).to(device)
        estimates = model(chunks).float().cpu()  # (batch, stems, channels, window)
        for s, estimate in zip(group, estimates):
            out[..., s : s + window] += estimate * weights
            norm[s : s + window] += weights
        reached = min(max(group[-1] + window - pad, 0), length)  # input covered so far
        if progress is not None and reached > done:
            progress(reached - done)
        done = max(done, reached)
    return (out / norm)[..., pad : pad + length]


def as_channels_first(audio, channels_hint: int | None = None) -> np.ndarray:
    """Accept ``(samples,)``, ``(channels, samples)`` or ``(samples, channels)``; return
    float32 ``(channels, samples)``."""
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    elif array.ndim == 2 and array.shape[1] <= 8 < array.shape[0]:
        array = array.T  # (samples, channels), as soundfile returns it
    if array.ndim != 2 or array.shape[0] > 8:
        raise BsrError(f"audio of shape {np.shape(audio)} is not (channels, samples)")
    return np.ascontiguousarray(array)


def check_audio(audio: np.ndarray, name: str = "audio") -> None:
    """Refuse empty or non-finite audio with a one-line error; silence is fine."""
    if audio.shape[-1] == 0:
        raise BsrError(f"{name} is empty (0 samples): give a file with audio in it")
    if not np.isfinite(audio).all():
        raise BsrError(f"{name} contains NaN or infinite samples: repair or re-export the file")


DEFAULT_WINDOW_SECONDS, DEFAULT_HOP_SECONDS = 8.0, 4.0  # the paper's


def window_and_hop(
    model: torch.nn.Module, window_seconds: float | None, hop_seconds: float | None
) -> tuple[int, int]:
    """The separation window and hop in samples at the model's rate.

    Given values win; otherwise the model's ``separation_defaults`` (from its community
    YAML), else 8 s every 4 s. A window given without a hop keeps the default overlap
    (the hop is the same fraction of the window).
    """
    rate = model.config.sample_rate
    defaults = getattr(model, "separation_defaults", None) or {
        "window": round(DEFAULT_WINDOW_SECONDS * rate),
        "hop": round(DEFAULT_HOP_SECONDS * rate),
    }
    window = defaults["window"] if window_seconds is None else round(window_seconds * rate)
    if hop_seconds is not None:
        hop = round(hop_seconds * rate)
    else:
        hop = max(1, round(window * defaults["hop"] / defaults["window"]))
    if window < 1:
        raise BsrError(f"the window ({window_seconds} s) must hold at least one sample")
    if not 0 < hop <= window:
        raise BsrError(
            f"the hop ({hop / rate:g} s) must be positive and no longer than the window "
            f"({window / rate:g} s): shorten it"
        )
    return window, hop


def separate(
    audio,
    sample_rate: int,
    model: torch.nn.Module,
    *,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    window: str = "hann",
    batch_size: int = 4,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Separate one song; returns ``{stem: (channels, samples)}`` at ``sample_rate``.

    ``audio`` is ``(channels, samples)`` or ``(samples,)``; a mono song through a stereo
    model is duplicated into both channels and averaged back; a stereo song through a mono
    model is separated one channel at a time. ``window_seconds`` / ``hop_seconds``
    default to the model's own windows (see :func:`window_and_hop`).
    """
    audio = as_channels_first(audio)
    check_audio(audio)
    if window not in WINDOW_SHAPES:
        raise BsrError(f"unknown window shape {window!r}: use one of {', '.join(WINDOW_SHAPES)}")
    if sample_rate <= 0:
        raise BsrError(f"sample rate must be positive, got {sample_rate}")
    model_rate = model.config.sample_rate
    channels = audio.shape[0]
    x = audio
    if sample_rate != model_rate:
        import librosa

        x = librosa.resample(x, orig_sr=sample_rate, target_sr=model_rate, axis=-1)
    shortest = model.config.n_fft // 2 + 1  # the STFT's centre padding needs this much
    if x.shape[-1] < shortest:
        raise BsrError(
            f"the audio is {audio.shape[-1]} samples ({1000 * audio.shape[-1] / sample_rate:.1f}"
            f" ms) long; the model's STFT needs at least {shortest} samples at "
            f"{model_rate} Hz ({1000 * shortest / model_rate:.1f} ms): give a longer file"
        )
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    model_channels = model.channels
    if channels == model_channels:
        inputs = [x]
    elif channels == 1:  # mono song, stereo model
        inputs = [x.expand(model_channels, -1)]
    elif model_channels == 1:  # stereo song, mono model: one channel at a time
        inputs = [x[c : c + 1] for c in range(channels)]
    else:
        raise BsrError(
            f"cannot separate {channels}-channel audio with a {model_channels}-channel model"
        )
    window_len, hop_len = window_and_hop(model, window_seconds, hop_seconds)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=round(x.shape[-1] * len(inputs) / model_rate, 1), unit="s audio")
    sent = 0  # samples reported; the bar moves by the rounded total, so it never overshoots

    def update(n: int) -> None:
        nonlocal sent
        sent += n
        bar.update(round(sent / model_rate, 1) - bar.n)

    progress_fn = update if bar is not None else None
    was_training = model.training
    model.eval()
    try:
        parts = [
            separate_tensor(model, part, window_len, hop_len, window, batch_size, progress_fn)
            for part in inputs
        ]
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # (stems, C', samples)
    if channels == 1 and model_channels > 1:
        out = out.mean(dim=1, keepdim=True)
    result = {}
    for name, estimate in zip(model.stems, out.numpy()):
        if sample_rate != model_rate:
            import librosa

            estimate = librosa.resample(
                estimate, orig_sr=model_rate, target_sr=sample_rate, axis=-1
            )
            estimate = fit_length(estimate, audio.shape[-1])
        result[name] = estimate.astype(np.float32)
    return result


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to ``length`` (resampling can be off by a sample)."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """``(channels, samples)`` float32 and the sample rate, with one-line errors."""
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise BsrError(f"{path} is a directory: give audio files (wav, flac, ogg, mp3)")
    if not path.is_file():
        raise BsrError(f"{path} not found: check the path")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile reports damage in several ways
        reason = str(error).splitlines()[0][:100]
        raise BsrError(
            f"cannot read {path} as audio ({reason}): give a wav, flac, ogg or mp3 file"
        ) from None
    audio = np.ascontiguousarray(data.T)
    check_audio(audio, str(path))
    return audio, rate


def output_folder(path: str | Path, out: str | Path) -> Path:
    """Where the stems of ``path`` go: named after the song, in the layout evaluation reads.

    ``.../<subset>/<track>/mixture.wav`` (MUSDB18HQ) -> ``out/<subset>/<track>/``, so that
    ``bsr evaluate --estimates OUT --data ROOT --subset SUBSET`` finds every song; any
    other file -> ``out/<file name without extension>/``.
    """
    path, out = Path(path), Path(out)
    if path.stem == "mixture" and path.parent.parent != path.parent:
        return out / path.parent.parent.name / path.parent.name
    return out / path.stem


def separate_files(
    files: list[str | Path],
    model: torch.nn.Module,
    out: str | Path,
    *,
    force: bool = False,
    **options,
) -> list[Path]:
    """Separate each file into ``output_folder(file, out)/<stem>.wav``.

    Everything is checked before anything is written: two inputs that would share a
    folder, and stems that exist already (replaced only with ``force``).
    """
    import soundfile as sf

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BsrError(f"--out {out} is a file: give a folder")
    songs = [(Path(f), output_folder(f, out)) for f in files]
    seen: dict[Path, Path] = {}
    for path, folder in songs:
        if folder in seen:
            raise BsrError(
                f"{seen[folder]} and {path} would both be written to {folder}: separate them "
                "into different --out folders, or rename one"
            )
        seen[folder] = path
    for _, folder in songs:
        clash = [folder / f"{s}.wav" for s in model.stems if (folder / f"{s}.wav").exists()]
        if clash and not force:
            raise BsrError(
                f"{clash[0]} already exists: pass --force to overwrite, or another --out"
            )
    written = []
    for path, folder in songs:
        audio, rate = read_audio(path)
        stems = separate(audio, rate, model, **options)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BsrError(
                f"cannot create {folder} ({error.strerror}): choose another --out"
            ) from None
        for name, estimate in stems.items():
            target = folder / f"{name}.wav"
            sf.write(target, estimate.T, rate, subtype="FLOAT")
            written.append(target)
    return written


def separate_folder(
    model: torch.nn.Module,
    data: str | Path,
    subset: str,
    out: str | Path,
    *,
    progress: bool = True,
    **options,
) -> list[str]:
    """Separate every ``data/subset/<song>/mixture.wav`` into ``out/subset/<song>/<stem>.wav``.

    The output has the layout ``bsr evaluate --estimates OUT --data DATA --subset SUBSET``
    reads. With ``progress``, one line per song as it is done. Returns the song names.
    """
    import soundfile as sf

    songs = sorted(p for p in (Path(data) / subset).iterdir() if p.is_dir())
    if not songs:
        raise BsrError(f"no song folders in {Path(data) / subset}: give a MUSDB18HQ-layout folder")
    for number, song in enumerate(songs, 1):
        audio, rate = read_audio(song / "mixture.wav")
        stems = separate(audio, rate, model, **options)
        folder = Path(out) / subset / song.name
        folder.mkdir(parents=True, exist_ok=True)
        for stem, estimate in stems.items():
            sf.write(folder / f"{stem}.wav", estimate.T, rate, subtype="FLOAT")
        if progress:
            print(f"  separated {number}/{len(songs)}: {subset}/{song.name}", flush=True)
    return [song.name for song in songs]
