"""Reading the maps against the music: band edges in Hz, and note onsets in frames."""

from __future__ import annotations

import numpy as np
import torch


def band_edges_hz(layout, sample_rate: int, n_fft: int) -> np.ndarray:
    """``(N, 2)`` lower and upper edge in Hz of every band of ``layout`` (a BandLayout).

    Bin ``k`` is centred on ``k * sample_rate / n_fft`` and reaches half a bin either side,
    so a band holding bins ``a..b`` covers ``(a - 1/2, b + 1/2)`` bins, cut to 0 and the
    Nyquist frequency. Neighbouring bands of a non-overlapping layout share their edge.
    """
    hz = sample_rate / n_fft
    nyquist = sample_rate / 2
    return np.array(
        [(max(0.0, (min(b) - 0.5) * hz), min(nyquist, (max(b) + 0.5) * hz)) for b in layout.bins]
    )


def _hz_text(low: float, high: float) -> str:
    if high < 1000:
        return f"{low:.0f}-{high:.0f} Hz"
    digits = 2 if high - low < 150 else 1  # narrow bands: enough digits to tell the edges apart
    if low >= 1000:
        return f"{low / 1000:.{digits}f}-{high / 1000:.{digits}f} kHz"
    return f"{low:.0f} Hz-{high / 1000:.{digits}f} kHz"


def band_labels(model) -> list[str]:
    """One Hz range per band of ``model`` ("108-237 Hz", "1.4-2.2 kHz"), for axis labels."""
    cfg = model.config
    edges = band_edges_hz(model.layout, cfg.sample_rate, cfg.n_fft)
    return [_hz_text(low, high) for low, high in edges]


def onset_frames(audio, sample_rate: int, hop_length: int, frames: int | None = None) -> np.ndarray:
    """Note onsets in ``audio`` as STFT frame indices of hop ``hop_length`` (int ``(onsets,)``).

    ``audio``: ``(samples,)``, numpy ``(samples, C)`` or a tensor ``(C, samples)`` /
    ``(1, C, samples)``; channels are averaged. :func:`librosa.onset.onset_detect` (its
    default detector: spectral flux of a mel spectrogram) finds the onsets in seconds, on
    the model's hop; frame ``t`` of a centred STFT is centred on sample ``t * hop_length``,
    so an onset at ``s`` seconds is frame ``round(s * sample_rate / hop_length)``.
    ``frames`` (if given) drops onsets at or past that frame. The first call in a fresh
    environment is slow (librosa compiles its numba code once, then caches it).
    """
    import librosa  # slow to import: only here

    x = audio.detach().cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:  # (1, C, samples)
        x = x[0]
    if x.ndim == 2:  # (C, samples) from torch, (samples, C) from numpy
        x = x.mean(axis=0) if torch.is_tensor(audio) else x.mean(axis=1)
    seconds = librosa.onset.onset_detect(y=x, sr=sample_rate, hop_length=hop_length, units="time")
    found = np.unique(np.round(np.asarray(seconds) * sample_rate / hop_length).astype(int))
    if frames is not None:
        found = found[found < frames]
    return found
