"""The RoFormer block: a Transformer over time, then a Transformer over bands.

The band-split features are a grid ``(batch, frames T, bands N, dim D)``. Attending over
all T*N positions at once would cost (T*N)^2; BS-RoFormer instead alternates two cheap
axial passes:

1. time transformer: every band is a sequence of T frames  -> ``(batch*N, T, D)``
2. band transformer: every frame is a sequence of N bands  -> ``(batch*T, N, D)``

Each Transformer layer is pre-norm: ``x + Attention(x)`` then ``x + FeedForward(x)``.

Two community options, off in the paper's model:

* ``output_norm``: an RMSNorm at the end of every Transformer. The Mel-Band RoFormer code
  (lucidrains, ZFTurbo) has it, and in exchange no final norm before the mask estimators.
* ``linear_depth``: a third Transformer, run first in each block, whose layers use
  :class:`~bsr.attention.LinearAttention` over all ``T*N`` positions at once.
"""

from __future__ import annotations

import torch
from torch import nn

from bsr.attention import Attention, LinearAttention
from bsr.norm import RMSNorm
from bsr.rope import RotaryEmbedding


class FeedForward(nn.Module):
    """RMSNorm -> Linear(D, mult*D) -> GELU -> Dropout -> Linear(mult*D, D) -> Dropout."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            RMSNorm(dim),
            nn.Linear(dim, dim * mult),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim * mult, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerLayer(nn.Module):
    """One pre-norm layer: attention and feed-forward, each with a residual connection."""

    def __init__(
        self, dim, heads, dim_head, attn_dropout, ff_dropout, ff_mult, gates, linear=False
    ):
        super().__init__()
        if linear:
            self.attention = LinearAttention(dim, heads, dim_head, attn_dropout)
        else:
            self.attention = Attention(dim, heads, dim_head, attn_dropout, gates)
        self.feed_forward = FeedForward(dim, ff_mult, ff_dropout)

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        x = x + self.attention(x, rope)
        return x + self.feed_forward(x)


class Transformer(nn.Module):
    """``depth`` Transformer layers over ``(batch, seq, dim)``; same shape out.

    ``output_norm`` closes it with an RMSNorm; ``linear`` uses linear attention.
    """

    def __init__(self, depth: int, output_norm: bool = False, linear: bool = False, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(linear=linear, **layer_kwargs) for _ in range(depth)
        )
        # Identity holds no parameters: the paper's model keeps its state-dict keys.
        self.norm = RMSNorm(layer_kwargs["dim"]) if output_norm else nn.Identity()

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, rope)
        return self.norm(x)


class RoFormerBlock(nn.Module):
    """Time transformer then band transformer on ``(batch, T, N, D)``; same shape out.

    With ``linear_depth > 0`` a linear-attention transformer over all ``T*N`` positions
    runs first. ``forward(..., earlier=[...])`` adds the outputs of earlier blocks before
    the time transformer (ZFTurbo's ``skip_connection``).
    """

    def __init__(
        self,
        time_depth: int,
        band_depth: int,
        linear_depth: int = 0,
        output_norm: bool = False,
        **layer_kwargs,
    ):
        super().__init__()
        if linear_depth > 0:  # only then: existing checkpoints keep their keys
            self.linear_transformer = Transformer(
                linear_depth, output_norm, linear=True, **layer_kwargs
            )
        else:
            self.linear_transformer = None
        self.time_transformer = Transformer(time_depth, output_norm, **layer_kwargs)
        self.band_transformer = Transformer(band_depth, output_norm, **layer_kwargs)

    def forward(
        self,
        x: torch.Tensor,
        time_rope: RotaryEmbedding | None = None,
        band_rope: RotaryEmbedding | None = None,
        earlier: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        batch, frames, bands, dim = x.shape
        if self.linear_transformer is not None:
            # One sequence of all T*N positions per example (its order does not matter).
            x = self.linear_transformer(x.reshape(batch, frames * bands, dim))
            x = x.reshape(batch, frames, bands, dim)
        for previous in earlier or ():  # one at a time, in order, as ZFTurbo's code adds them
            x = x + previous
        # Over time: each (example, band) is one sequence of frames.
        x = x.transpose(1, 2).reshape(batch * bands, frames, dim)
        x = self.time_transformer(x, time_rope)
        # Over bands: each (example, frame) is one sequence of bands.
        x = x.reshape(batch, bands, frames, dim).transpose(1, 2).reshape(batch * frames, bands, dim)
        x = self.band_transformer(x, band_rope)
        return x.reshape(batch, frames, bands, dim)
