"""Step 3: the band split, from one long feature vector per frame to N band embeddings.

Band ``b`` owns ``F_b`` bins; with ``C`` channels and (real, imag) parts its slice of the
feature vector has ``2 * C * F_b`` numbers. Each band gets its own RMSNorm (bands differ
wildly in loudness) and its own Linear layer to the common width D, so that the
Transformer sees N tokens of equal size per frame:

    (batch, T, sum_b 2*C*F_b)  ->  (batch, T, N, D)
"""

from __future__ import annotations

import torch
from torch import nn

from bsr.norm import RMSNorm
from bsr.stacked import equal_runs, stacked_linear, stacked_rms_norm, use_batched


class BandProjection(nn.Module):
    """One band: RMSNorm then Linear, ``(..., 2*C*F_b)`` -> ``(..., D)``."""

    def __init__(self, dim_in: int, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim_in)
        self.linear = nn.Linear(dim_in, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class BandSplit(nn.Module):
    """Per-band RMSNorm + Linear; ``feature_sizes[b] = 2 * C * F_b``.

    Two forms of the same computation: ``forward_per_band``, the textbook loop over bands,
    and ``forward_batched``, which runs equal-width bands together (see :mod:`bsr.stacked`).
    ``forward`` picks one by ``batched``: True or False force it; None (the default) takes
    the batched form on a GPU, where 62 small kernels would leave it idle, and the loop on
    a CPU, where it measured faster (``bsr bench model``).
    """

    def __init__(self, feature_sizes: tuple[int, ...], dim: int):
        super().__init__()
        self.feature_sizes = tuple(feature_sizes)
        self.bands = nn.ModuleList(BandProjection(size, dim) for size in self.feature_sizes)
        self.runs = equal_runs(self.feature_sizes)
        self.batched: bool | None = None

    def forward_per_band(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, T, sum(feature_sizes))`` -> ``(batch, T, N, D)``, one band at a time."""
        pieces = x.split(self.feature_sizes, dim=-1)
        return torch.stack([band(piece) for band, piece in zip(self.bands, pieces)], dim=-2)

    def forward_batched(self, x: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`forward_per_band`, one batched product per run of equal bands."""
        outs, start = [], 0
        for first, count, size in self.runs:
            # A run of `count` bands of equal width is a contiguous (count * size) slice.
            piece = x[..., start : start + count * size].unflatten(-1, (count, size))
            bands = self.bands[first : first + count]
            piece = stacked_rms_norm(piece, [band.norm for band in bands])
            outs.append(stacked_linear(piece, [band.linear for band in bands]))
            start += count * size
        return torch.cat(outs, dim=-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_batched(self.batched, x):
            return self.forward_batched(x)
        return self.forward_per_band(x)
