"""RMSNorm, the only normalisation in BS-RoFormer.

RMSNorm(x) = x / RMS(x) * gamma, with RMS(x) = ||x||_2 / sqrt(dim). Unlike LayerNorm it
neither subtracts the mean nor adds a bias. The community checkpoints were trained with
``F.normalize(x) * sqrt(dim) * gamma``: the same thing, written so that an all-zero input
(a silent band) gives zeros instead of a division by zero. We call PyTorch's fused
``F.rms_norm`` (one pass forward and backward, fewer than normalize's four) with an eps so
small that it only matters for such all-zero rows, where it too gives zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# F.normalize divides by max(||x||, 1e-12), that is by max(RMS, 1e-12 / sqrt(dim)); rms_norm
# divides by sqrt(mean(x^2) + eps). A tiny eps makes the two agree to float32 rounding.
EPS = 1e-30


class RMSNorm(nn.Module):
    """Normalise the last axis of ``(..., dim)`` to unit RMS, then scale by ``gamma``."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gamma in x's dtype: under mixed precision the fused kernel wants the two to match.
        return F.rms_norm(x, self.gamma.shape, self.gamma.to(x.dtype), EPS)
