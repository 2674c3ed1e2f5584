"""Separation: run a trained model over songs of any length.

A song is longer than anything the model was trained on, so it is cut into windows
(the paper: 8 s every 4 s), each window is separated, and the outputs are laid back on top
of each other, each weighted by a smooth window and divided by the summed weights
("overlap-add"). The weighting matters: simply concatenating non-overlapping windows leaves
an audible click wherever two windows meet, because the model sees no context across a
border. Padding by one window overlap at both ends gives every sample the same number of
windows, edges included.

``separate(audio, sample_rate, model)`` handles any sample rate (resampled to the model's
and back) and any channel count (mono, stereo, 5.1, ...: see :func:`channel_groups`), and
returns one array per stem, shaped like the input. Files are read by :mod:`bsr.audio`
(``read_audio`` is importable from here too).
A model loaded with a community YAML brings its own windows (``model.separation_defaults``:
``audio.chunk_size`` every ``chunk_size // inference.num_overlap`` samples), the length it
was trained on; those replace the 8 s / 4 s default unless you give others.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from bsr.audio import check_audio, probe_audio, read_audio, write_stems  # read_audio: re-export
from bsr.errors import BsrError
from bsr.stems import check_stems, pick_stems

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
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(channels, samples)`` at the model's rate -> ``(stems, channels, samples)``.

    Input no longer than one window is separated in a single pass. Memory: the output,
    one weight sum ``(samples,)`` and one batch of windows; the padding at both ends is
    never materialised (a window reaching past the song is zero-filled as it is cut).
    ``out``, zeros of the result's shape (possibly a view into a larger tensor), receives
    the result in place.
    """
    device = next(model.parameters()).device
    channels, length = audio.shape
    if length <= window:
        estimate = model(audio[None].to(device)).float().cpu()[0]
        if progress is not None:
            progress(length)
        return estimate if out is None else out.copy_(estimate)
    if not 0 < hop <= window:
        raise BsrError(f"hop ({hop} samples) must be between 1 and the window ({window})")
    pad = window - hop  # the song sits at [pad, pad + length) of the padded signal
    steps = math.ceil((length + pad) / hop)  # windows needed to cover the padded signal
    starts = [step * hop - pad for step in range(steps)]  # window starts in song samples
    weights = chunk_weights(window, shape)
    if out is None:
        out = torch.zeros(len(model.stems), channels, length)
    norm = torch.zeros(length)
    done = 0  # input samples reported to ``progress`` so far
    for i in range(0, steps, batch_size):
        group = starts[i : i + batch_size]
        chunks = torch.zeros(len(group), channels, window)
        for chunk, s in zip(chunks, group):
            a, b = max(s, 0), min(s + window, length)
            chunk[:, a - s : b - s] = audio[:, a:b]
        estimates = model(chunks.to(device)).float().cpu()  # (batch, stems, channels, window)
        for s, estimate in zip(group, estimates):
            a, b = max(s, 0), min(s + window, length)
            out[..., a:b] += estimate[..., a - s : b - s] * weights[a - s : b - s]
            norm[a:b] += weights[a - s : b - s]
        reached = min(max(group[-1] + window, 0), length)  # input covered so far
        if progress is not None and reached > done:
            progress(reached - done)
        done = max(done, reached)
    return out.div_(norm)


MAX_CHANNELS = 64
"""More channels than this in a 2-D array is taken for a mistake (a spectrogram, a batch)."""


def as_channels_first(audio, channels_hint: int | None = None) -> np.ndarray:
    """Accept ``(samples,)``, ``(channels, samples)`` or ``(samples, channels)``; return
    float32 ``(channels, samples)`` (no copy when it already is).

    The shorter axis is the channels (a song has more samples than channels), unless
    ``channels_hint`` names the channel count.
    """
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    elif array.ndim == 2:
        rows, cols = array.shape
        if channels_hint is not None:
            if cols == channels_hint != rows:
                array = array.T
        elif 0 < cols < rows:
            array = array.T  # (samples, channels), as soundfile returns it
    if array.ndim != 2 or array.shape[0] > MAX_CHANNELS:
        raise BsrError(
            f"audio of shape {np.shape(audio)} is not (channels, samples) with at most "
            f"{MAX_CHANNELS} channels: give (channels, samples) or (samples,)"
        )
    return np.ascontiguousarray(array)


def channel_groups(channels: int, model_channels: int) -> list[list[int]]:
    """The input channels of each model pass: consecutive groups of ``model_channels``.

    A shorter last group repeats its channels to fill the model's (a mono song through a
    stereo model: the one channel twice); their estimates are averaged back.
    ``channel_groups(6, 2) == [[0, 1], [2, 3], [4, 5]]``,
    ``channel_groups(3, 2) == [[0, 1], [2, 2]]``, ``channel_groups(2, 1) == [[0], [1]]``.
    """
    groups = []
    for first in range(0, channels, model_channels):
        group = list(range(first, min(first + model_channels, channels)))
        groups.append([group[i % len(group)] for i in range(model_channels)])
    return groups


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
    shape: str = "hann",
    batch_size: int = 4,
    progress: bool = False,
    stems: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Separate one song; returns ``{stem: (channels, samples)}`` at ``sample_rate``.

    ``audio`` is ``(channels, samples)``, ``(samples, channels)`` or ``(samples,)``, with
    any number of channels: they go through the model in groups of its channel count
    (:func:`channel_groups`: a 6-channel 5.1 song through a stereo model as the pairs
    (0, 1), (2, 3), (4, 5); a mono song, or a last odd channel, duplicated into both and
    averaged back; a stereo song through a mono model one channel at a time).
    ``window_seconds`` / ``hop_seconds`` default to the model's own windows (see
    :func:`window_and_hop`); ``shape`` is how overlap-add weights each window (one of
    :data:`WINDOW_SHAPES`). ``stems`` picks and orders the stems returned (default: the
    model's), ``"accompaniment"`` among them (:func:`bsr.stems.pick_stems`). Memory: the
    input, the stems (views of one ``(stems, channels, samples)`` array when no resampling
    is needed), a weight sum and one batch of windows.
    """
    audio = as_channels_first(audio)
    check_audio(audio)
    check_stems(stems, model.stems)
    if shape not in WINDOW_SHAPES:
        raise BsrError(f"unknown window shape {shape!r}: use one of {', '.join(WINDOW_SHAPES)}")
    if sample_rate <= 0:
        raise BsrError(f"sample rate must be positive, got {sample_rate}")
    model_rate = model.config.sample_rate
    check_long_enough(audio.shape[-1], sample_rate, model)
    x = np.ascontiguousarray(resample(audio, sample_rate, model_rate), dtype=np.float32)
    x = torch.from_numpy(x)  # (channels, samples) at the model's rate
    window, hop = window_and_hop(model, window_seconds, hop_seconds)
    groups = channel_groups(audio.shape[0], model.channels)
    bar = _ProgressBar(x.shape[-1] * len(groups), model_rate) if progress else None
    was_training = model.training
    model.eval()
    try:
        out = torch.zeros(len(model.stems), *x.shape)  # (stems, channels, samples)
        for group in groups:
            _separate_group(model, x, group, out, window, hop, shape, batch_size, bar)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    result = {}
    for name, estimate in zip(model.stems, out.numpy()):
        if sample_rate != model_rate:
            estimate = resample(estimate, model_rate, sample_rate)
            estimate = fit_length(estimate, audio.shape[-1])
        result[name] = estimate.astype(np.float32, copy=False)
    return result if stems is None else pick_stems(result, stems, audio)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``(..., samples)`` at ``rate`` -> at ``target`` (the same array when they agree)."""
    if rate == target:
        return audio
    import librosa

    return librosa.resample(audio, orig_sr=rate, target_sr=target, axis=-1)


class _ProgressBar:
    """A tqdm bar in seconds of audio, fed in samples by :func:`separate_tensor`.

    The bar moves by the rounded total so far, so it never overshoots its end.
    """

    def __init__(self, samples: int, rate: int):
        from tqdm.auto import tqdm

        self.rate, self.sent = rate, 0
        self.bar = tqdm(total=round(samples / rate, 1), unit="s audio")

    def __call__(self, samples: int) -> None:
        self.sent += samples
        self.bar.update(round(self.sent / self.rate, 1) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _separate_group(model, x: torch.Tensor, group: list[int], out: torch.Tensor, *options) -> None:
    """Separate the channels ``group`` of ``x`` ``(channels, samples)`` into ``out``
    ``(stems, channels, samples)``; a channel listed twice gets the mean of its estimates."""
    first = group[0]
    if group == list(range(first, first + len(group))):  # distinct: straight into out
        separate_tensor(model, x[first : first + len(group)], *options,
                        out=out[:, first : first + len(group)])  # fmt: skip
        return
    unique = sorted(set(group))
    part = x[first : first + 1].expand(len(group), -1) if len(unique) == 1 else x[group]
    estimate = separate_tensor(model, part, *options)  # (stems, len(group), samples)
    for channel in unique:
        copies = [i for i, c in enumerate(group) if c == channel]
        out[:, channel] = estimate[:, copies].mean(dim=1)


def check_long_enough(samples: int, sample_rate: int, model: torch.nn.Module) -> None:
    """Refuse audio shorter than the model's STFT needs once resampled to its rate."""
    model_rate = model.config.sample_rate
    resampled = math.ceil(samples * model_rate / sample_rate)  # librosa.resample's length
    shortest = model.config.n_fft // 2 + 1  # the STFT's centre padding needs this much
    if resampled < shortest:
        raise BsrError(
            f"the audio is {samples} samples ({1000 * samples / sample_rate:.1f}"
            f" ms) long; the model's STFT needs at least {shortest} samples at "
            f"{model_rate} Hz ({1000 * shortest / model_rate:.1f} ms): give a longer file"
        )


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to ``length`` (resampling can be off by a sample)."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


def output_folder(path: str | Path, out: str | Path) -> Path:
    """Where the stems of ``path`` go: named after the song, in the layout evaluation reads.

    ``.../<subset>/<track>/mixture.wav`` (MUSDB18HQ) -> ``out/<subset>/<track>/``, so that
    ``bsr evaluate --estimates OUT --data ROOT --subset SUBSET`` finds every song; a MUSDB18
    ``<track>.stem.mp4`` -> ``out/<track>/`` (its track name, which evaluation matches); any
    other file -> ``out/<file name without extension>/``.
    """
    path, out = Path(path), Path(out)
    if path.stem == "mixture" and path.parent.parent != path.parent:
        return out / path.parent.parent.name / path.parent.name
    if path.name.lower().endswith(".stem.mp4") and len(path.name) > len(".stem.mp4"):
        # Imported here: bsr.data.musdb needs soundfile, which the GPU check must not.
        from bsr.data.musdb import track_name

        return out / track_name(path)
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
    folder, stems that exist already (replaced only with ``force``; an input file never),
    the stem names (``stems=``), every file's header (:func:`bsr.audio.probe_audio`: not
    audio, damaged, empty, too short) and, with several files, every file's samples (NaN,
    infinite), decoded once to check and again to separate. The songs are separated one at
    a time, so memory holds one song, not all of them.
    """
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
    inputs = {path.resolve() for path, _ in songs}
    check_stems(options.get("stems"), model.stems)
    for _, folder in songs:
        targets = [folder / f"{stem}.wav" for stem in options.get("stems") or model.stems]
        mine = [t for t in targets if t.resolve() in inputs]
        if mine:
            raise BsrError(f"{mine[0]} is one of the inputs: give another --out")
        clash = [t for t in targets if t.exists()]
        if clash and not force:
            raise BsrError(
                f"{clash[0]} already exists: pass --force to overwrite, or another --out"
            )
    for path, _ in songs:
        info = probe_audio(path)
        if info.frames == 0:
            raise BsrError(f"{path} is empty (0 samples): give a file with audio in it")
        if info.frames is not None and info.reader == "soundfile":  # exact lengths only
            check_long_enough(info.frames, info.sample_rate, model)
    if len(songs) > 1:  # a bad sample in the last song must not stop the run half-written
        for path, _ in songs:
            audio, rate = read_audio(path)  # refuses NaN and infinite samples
            check_long_enough(audio.shape[-1], rate, model)
            del audio  # read again when its turn comes: memory holds one song
    written = []
    for path, folder in songs:
        audio, rate = read_audio(path)
        stems = separate(audio, rate, model, **options)
        del audio  # not needed while the stems are written
        written += write_stems(stems, rate, folder, force=True)  # clashes checked above
        del stems
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
    songs = sorted(p for p in (Path(data) / subset).iterdir() if p.is_dir())
    if not songs:
        raise BsrError(f"no song folders in {Path(data) / subset}: give a MUSDB18HQ-layout folder")
    for number, song in enumerate(songs, 1):
        audio, rate = read_audio(song / "mixture.wav")
        stems = separate(audio, rate, model, **options)
        write_stems(stems, rate, Path(out) / subset / song.name, force=True)
        if progress:
            print(f"  separated {number}/{len(songs)}: {subset}/{song.name}", flush=True)
    return [song.name for song in songs]
