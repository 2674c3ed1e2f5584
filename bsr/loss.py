"""The training loss: L1 on the waveform plus a multi-resolution STFT L1.

The waveform term cares about exact samples; the spectral terms, at five window sizes
(4096 down to 256, hop 147), care about the time-frequency content at several
trade-offs between time and frequency resolution. Each spectral term is the mean
absolute value of the complex difference |Y_est - Y_ref| (torch's L1 on complex tensors).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

STFT_LOSS_WINDOWS = (4096, 2048, 1024, 512, 256)
"""Window sizes of the spectral terms, in samples (the paper's; ``train.stft_loss_windows``)."""
STFT_LOSS_HOP = 147
"""Hop of every spectral term, in samples (the paper's; ``train.stft_loss_hop``)."""


def multi_resolution_stft_loss(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    windows: tuple[int, ...] = STFT_LOSS_WINDOWS,
    hop_length: int = STFT_LOSS_HOP,
    min_n_fft: int = 2048,
) -> torch.Tensor:
    """Sum over window sizes of the mean ``|STFT(est) - STFT(ref)|``; inputs ``(..., samples)``.

    As in the community code, ``n_fft = max(window, min_n_fft)`` (short windows are
    zero-padded to a finer frequency grid).
    """
    est = estimate.reshape(-1, estimate.shape[-1]).float()
    ref = reference.reshape(-1, reference.shape[-1]).float()
    total = est.new_zeros(())
    for window in windows:
        kwargs = dict(
            n_fft=max(window, min_n_fft),
            hop_length=hop_length,
            win_length=window,
            window=torch.hann_window(window, device=est.device),
            return_complex=True,
        )
        total = total + F.l1_loss(torch.stft(est, **kwargs), torch.stft(ref, **kwargs))
    return total


def separation_loss(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    stft_weight: float = 1.0,
    hop_length: int = STFT_LOSS_HOP,
    windows: tuple[int, ...] = STFT_LOSS_WINDOWS,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Paper loss for ``(batch, stems, channels, samples)`` tensors; returns (loss, parts).

    A larger ``hop_length`` than the paper's 147 makes the spectral terms much cheaper
    (the CPU presets use 512), at the price of coarser time steps in the comparison.
    """
    with torch.autocast(estimate.device.type, enabled=False):
        waveform = F.l1_loss(estimate.float(), reference.float())
        spectral = multi_resolution_stft_loss(estimate, reference, tuple(windows), hop_length)
    loss = waveform + stft_weight * spectral
    # The parts are detached 0-d tensors, not floats: reading a value forces the GPU to finish,
    # so the training loop reads them once per optimizer step, not once per micro-batch.
    return loss, {"waveform_l1": waveform.detach(), "stft_l1": spectral.detach()}
