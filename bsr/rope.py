"""Rotary position embedding (RoPE), written from scratch.

Attention scores are dot products q . k, which know nothing of where q and k sit in the
sequence. RoPE rotates each pair of features ``(x[2i], x[2i+1])`` of a query or key at
position ``m`` by the angle ``m * w_i``, with frequencies ``w_i = theta^(-2i/d)``. Because
a rotation by ``m w`` followed by the inverse rotation by ``n w`` is a rotation by
``(m - n) w``, the score of a rotated query and key depends only on their *offset*
``m - n``:  <R(m) q, R(n) k> = <q, R(n - m) k>.

BS-RoFormer keeps one table for the time axis (positions 0..T-1, frames) and one for the
band axis (positions 0..N-1, bands); every time layer shares the first, every band layer
the second. The rotation is computed in float32 even under mixed precision.
"""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotate interleaved feature pairs of ``(..., seq, dim_head)`` by position."""

    def __init__(self, dim_head: int, theta: float = 10000.0):
        super().__init__()
        if dim_head % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {dim_head}")
        # w_i = theta^(-2i/d), i = 0 .. d/2-1: slow rotations for late pairs, fast for early.
        inv_freq = theta ** (-torch.arange(0, dim_head, 2, dtype=torch.float32) / dim_head)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def angles(self, seq_len: int) -> torch.Tensor:
        """``(seq_len, dim_head // 2)`` angles ``m * w_i`` in float32."""
        positions = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        return torch.outer(positions, self.inv_freq)

    def cos_sin(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached ``cos`` and ``sin`` of :meth:`angles`, each ``(seq_len, dim_head // 2)``."""
        device = self.inv_freq.device
        if self._cache is None or self._cache[0] != seq_len or self._cache[1] != device:
            # A table made under inference_mode could not be used in training later.
            with torch.inference_mode(False), torch.no_grad():
                angles = self.angles(seq_len)
                self._cache = (seq_len, device, angles.cos(), angles.sin())
        return self._cache[2], self._cache[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape ``(..., seq, dim_head)``; returns the same shape and dtype."""
        cos, sin = self.cos_sin(x.shape[-2])
        pairs = x.float().unflatten(-1, (-1, 2))  # (..., seq, dim_head/2, 2)
        x1, x2 = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2).type_as(x)
