"""Step 5: from band embeddings back to a complex mask over every bin.

For each band, a small MLP maps the D-dimensional embedding to ``2 * (2 * C * F_b)``
numbers; a GLU halves that (one half gates the other) into the band's ``2 * C * F_b``
features: real and imaginary mask values for each of its bins and channels, in the same
frequency-major order as the input features. The mask is unbounded and complex: it can
change phase as well as level.

Paper: RMSNorm -> Linear(D, 4D) -> Tanh -> Linear(4D, 2 * 2*C*F_b) -> GLU per band.
The community variant drops the per-band RMSNorm in favour of one shared norm after the
last RoFormer block (``norm=False`` here, ``final_norm`` in the model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bsr.norm import RMSNorm
from bsr.stacked import equal_runs, stacked_linear, stacked_rms_norm, use_batched


def mlp(dim_in: int, dim_hidden: int, dim_out: int, depth: int) -> nn.Sequential:
    """``depth`` Linear layers with Tanh between them (``depth=2``: Linear, Tanh, Linear)."""
    dims = [dim_in] + [dim_hidden] * (depth - 1) + [dim_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        if i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class BandMask(nn.Module):
    """One band's head: ``(..., D)`` -> ``(..., 2*C*F_b)`` mask features."""

    def __init__(self, dim: int, dim_out: int, depth: int, expansion: int, norm: bool):
        super().__init__()
        self.norm = RMSNorm(dim) if norm else nn.Identity()
        self.mlp = mlp(dim, dim * expansion, 2 * dim_out, depth)
        self.glu = nn.GLU(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.glu(self.mlp(self.norm(x)))


class MaskEstimator(nn.Module):
    """One stem's mask head: ``(batch, T, N, D)`` -> ``(batch, T, sum_b 2*C*F_b)``."""

    def __init__(
        self,
        dim: int,
        feature_sizes: tuple[int, ...],
        depth: int = 2,
        expansion: int = 4,
        norm: bool = True,
    ):
        super().__init__()
        self.bands = nn.ModuleList(
            BandMask(dim, size, depth, expansion, norm) for size in feature_sizes
        )
        self.runs = equal_runs(feature_sizes)
        self.batched: bool | None = None  # None: batched on a GPU, per band on a CPU

    def forward_per_band(self, x: torch.Tensor) -> torch.Tensor:
        """The textbook form: one head per band, in a loop."""
        per_band = x.unbind(dim=-2)
        return torch.cat([head(band) for head, band in zip(self.bands, per_band)], dim=-1)

    def forward_batched(self, x: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`forward_per_band`, one batched product per run of equal bands."""
        outs = []
        for first, count, _ in self.runs:
            heads = self.bands[first : first + count]
            y = stacked_rms_norm(x[..., first : first + count, :], [h.norm for h in heads])
            for i, layer in enumerate(heads[0].mlp):
                if isinstance(layer, nn.Linear):
                    y = stacked_linear(y, [h.mlp[i] for h in heads])
                else:
                    y = layer(y)  # Tanh: elementwise, the same for every band
            outs.append(F.glu(y, dim=-1).flatten(-2))  # (..., count * 2*C*F_b)
        return torch.cat(outs, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_batched(self.batched, x):
            return self.forward_batched(x)
        return self.forward_per_band(x)
