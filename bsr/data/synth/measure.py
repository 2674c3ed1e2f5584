"""Measuring the practice songs: how fast they are made, and how hard they are to separate.

A separator that only knew *where in frequency* each stem lives would be a fixed
equaliser. :func:`oracle_sdr` measures the best such equaliser against an ideal
time-frequency mask: on these songs the mask is some 5 dB better, as on real music, so a
model has to learn to follow the music in time.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bsr.data.synth.mix import STEMS, compose_song, mixture_of


def benchmark(seconds: float = 20.0, songs: int = 3) -> float:
    """How many times faster than real time :func:`compose_song` runs (songs 0..songs-1)."""
    started = time.perf_counter()
    for seed in range(songs):
        compose_song(seed, seconds)
    return songs * seconds / (time.perf_counter() - started)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-distortion ratio in dB: 10 log10(sum s^2 / sum (s - estimate)^2)."""
    reference = np.asarray(reference, dtype=np.float64)
    error = np.sum((reference - estimate) ** 2)
    return float(10.0 * np.log10(np.sum(reference**2) / max(error, 1e-20)))


def oracle_sdr(stems: dict[str, np.ndarray], n_fft: int = 4096) -> dict[str, dict[str, float]]:
    """Two yardsticks for how separable a song is, per stem: {"irm": dB, "eq": dB}.

    * ``irm``: the *ideal ratio mask*, ``|S_j| / sum_k |S_k|`` for every STFT bin, applied
      to the mixture. It knows the answer bin by bin, so it is near the best any mask can
      do; a good separator approaches it.
    * ``eq``: the best *fixed equaliser*, one real gain per stem and frequency,
      ``g_f = sum_t Re(S_j conj(X)) / sum_t |X|^2`` over the whole song. If the stems sat in
      separate frequency bands this would be as good as the mask. When it is far worse,
      separating needs what a mask can do and an EQ cannot: follow the music in time.

    ``stems`` maps names to (samples, channels) arrays; the STFT has ``n_fft`` points and
    hop ``n_fft // 4`` (torch.stft, Hann window).
    """

    names = [name for name in STEMS if name in stems]
    audio = {name: torch.from_numpy(np.ascontiguousarray(stems[name].T)) for name in names}
    mixture = torch.from_numpy(np.ascontiguousarray(mixture_of(stems).T))  # (channels, samples)
    window = torch.hann_window(n_fft)
    length = mixture.shape[-1]

    def stft(x: torch.Tensor) -> torch.Tensor:  # (channels, freqs, frames), complex64
        return torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True)

    def istft(spec: torch.Tensor) -> np.ndarray:
        return torch.istft(spec, n_fft, n_fft // 4, window=window, length=length).numpy()

    spectra = {name: stft(audio[name]) for name in names}
    mix_spec = stft(mixture)
    magnitude_sum = sum(s.abs() for s in spectra.values()) + 1e-12
    mix_power = mix_spec.abs().square().sum(dim=-1, keepdim=True) + 1e-12
    result = {}
    for name in names:
        mask = spectra[name].abs() / magnitude_sum
        gain = (spectra[name] * mix_spec.conj()).real.sum(dim=-1, keepdim=True) / mix_power
        reference = audio[name].numpy().astype(np.float64)
        result[name] = {
            "irm": sdr(reference, istft(mask * mix_spec)),
            "eq": sdr(reference, istft(gain * mix_spec)),
        }
    return result
