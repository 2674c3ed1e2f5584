"""Rotary position embedding (RoPE), written from scratch.

Attention scores are dot products q . k, which know nothing of where q and k sit in the
sequence. RoPE rotates each pair of features ``(x[2i], x[2i+1])`` of a query or key at
position ``m`` by the angle ``m * w_i``, with frequencies ``w_i = theta^(-2i/d)``. Because
a rotation by ``m w`` followed by the inverse rotation by ``n w`` is a rotation by
``(m - n) w``, the score of a rotated query and key depends only on their *offset*
``m - n``:  <R(m) q, R(n) k> = <q, R(n - m) k>.

Written with complex numbers the rotation is one multiplication: the pair is
``z = x[2i] + j x[2i+1]`` and turning it by ``m w_i`` is ``z * exp(j m w_i)``. That is how the
module computes it (one pass over the tensor instead of four multiplies, two adds and a
stack). ``rotate_pairs`` writes out the cos/sin form, as the notebook does; it is what runs
under torch.compile, and a test checks the two agree.

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
        self._cache: tuple[int, torch.device, torch.Tensor] | None = None

    def angles(self, seq_len: int) -> torch.Tensor:
        """``(seq_len, dim_head // 2)`` angles ``m * w_i`` in float32."""
        positions = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        return torch.outer(positions, self.inv_freq)

    def rotations(self, seq_len: int) -> torch.Tensor:
        """Cached unit complex numbers ``exp(j m w_i)``: ``(seq_len, dim_head // 2)`` complex64."""
        device = self.inv_freq.device
        if self._cache is None or self._cache[0] != seq_len or self._cache[1] != device:
            # A table made under inference_mode could not be used in training later.
            with torch.inference_mode(False), torch.no_grad():
                angles = self.angles(seq_len)
                self._cache = (seq_len, device, torch.polar(torch.ones_like(angles), angles))
        return self._cache[2]

    def cos_sin(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos`` and ``sin`` of :meth:`angles`, each ``(seq_len, dim_head // 2)``."""
        rotations = self.rotations(seq_len)
        return rotations.real, rotations.imag

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape ``(..., seq, dim_head)``; returns the same shape and dtype."""
        if torch.compiler.is_compiling():
            # torch.compile handles complex tensors poorly but fuses the real form well.
            return self.rotate_pairs(x)
        pairs = as_complex_pairs(x.float())  # (..., seq, dim_head/2) complex64, a view
        rotated = pairs * self.rotations(x.shape[-2])
        return torch.view_as_real(rotated).flatten(-2).type_as(x)

    def rotate_pairs(self, x: torch.Tensor) -> torch.Tensor:
        """The rotation with cos and sin: ``(x1, x2) -> (x1 c - x2 s, x1 s + x2 c)``."""
        cos, sin = self.cos_sin(x.shape[-2])  # (seq, dim_head/2)
        pairs = x.float().unflatten(-1, (-1, 2))  # (..., seq, dim_head/2, 2)
        x1, x2 = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2).type_as(x)


def as_complex_pairs(x: torch.Tensor) -> torch.Tensor:
    """View float32 ``(..., d)`` as ``(..., d/2)`` complex: ``x[2i] + j x[2i+1]``.

    A view needs each pair next to each other in memory and even strides elsewhere; a
    slice of a bigger tensor (q out of the fused qkv projection) usually is one, anything
    else is copied first.
    """
    pairs = x.unflatten(-1, (-1, 2))
    strides_ok = pairs.stride(-1) == 1 and all(s % 2 == 0 for s in pairs.stride()[:-1])
    if not strides_ok or pairs.storage_offset() % 2:
        pairs = pairs.contiguous()
    return torch.view_as_complex(pairs)
