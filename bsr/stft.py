"""Step 1 of the signal path: waveform <-> complex spectrogram <-> real features.

BS-RoFormer works on the complex STFT of each channel. The network itself wants real
numbers, so real and imaginary parts become features. We follow the order the community
checkpoints use: for every frame the features run frequency-major, then channel, then
(real, imag):

    feature index = 2 * (channels * f + c) + {0: real, 1: imag}

so each frequency bin's features for all channels sit next to each other, and a band
of consecutive bins is a contiguous slice of the feature vector.

torch.stft / torch.istft do the transform; they always run in float32 (also under
mixed precision), because phase is fragile in half precision.
"""

from __future__ import annotations

import torch
from torch import nn


class STFT(nn.Module):
    """Hann-windowed STFT and its inverse, over the last axis of any tensor.

    ``center=True`` pads ``n_fft // 2`` on both sides, so frame ``t`` is centred on
    sample ``t * hop_length`` and there are ``samples // hop_length + 1`` frames.
    """

    def __init__(self, n_fft: int = 2048, hop_length: int = 441, win_length: int | None = None):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length or n_fft
        # The window is derived state, not a parameter: keep it out of checkpoints.
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    @property
    def n_bins(self) -> int:
        """Frequency bins of a one-sided spectrum: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def frames(self, samples: int) -> int:
        """Number of STFT frames for a signal of ``samples`` samples."""
        return samples // self.hop_length + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` real -> ``(..., n_bins, frames)`` complex64."""
        lead, samples = audio.shape[:-1], audio.shape[-1]
        with torch.autocast(audio.device.type, enabled=False):
            spec = torch.stft(
                audio.reshape(-1, samples).float(),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=True,
                return_complex=True,
            )
        return spec.reshape(*lead, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(..., n_bins, frames)`` complex -> ``(..., length)`` real float32."""
        lead = spec.shape[:-2]
        with torch.autocast(spec.device.type, enabled=False):
            audio = torch.istft(
                spec.reshape(-1, *spec.shape[-2:]).to(torch.complex64),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=True,
                length=length,
            )
        return audio.reshape(*lead, length)


def complex_to_features(spec: torch.Tensor) -> torch.Tensor:
    """``(batch, channels, bins, frames)`` complex -> ``(batch, frames, bins*channels*2)`` real."""
    batch, channels, bins, frames = spec.shape
    x = torch.view_as_real(spec)  # (batch, channels, bins, frames, 2)
    x = x.permute(0, 3, 2, 1, 4)  # (batch, frames, bins, channels, 2): frequency-major
    return x.reshape(batch, frames, bins * channels * 2)


def features_to_complex(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`complex_to_features`: ``(..., frames, bins*channels*2)`` ->
    ``(..., channels, bins, frames)`` complex.

    The result is laid out in memory frames-major, ``(..., channels, frames, bins)``, as
    torch.stft returns its output: torch.istft reads that layout without a copy, and a
    mask in it multiplies the mixture's STFT element by element in order.
    """
    *lead, frames, width = x.shape
    bins = width // (2 * channels)
    pairs = x.float().contiguous().reshape(*lead, frames, bins, channels, 2)
    spec = torch.view_as_complex(pairs)  # (..., frames, bins, channels)
    return spec.movedim(-1, -3).contiguous().transpose(-1, -2)
