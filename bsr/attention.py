"""Multi-head self-attention with RoPE on queries and keys.

Two paths compute the same thing:

* the fused path, ``F.scaled_dot_product_attention``, which picks a flash / memory
  efficient kernel when one exists: this is what training and separation use;
* the explicit path, :func:`explicit_attention`, which spells out
  ``softmax(q k^T / sqrt(d)) v`` and returns the weights: this is what the course and the
  attention explorer use to look inside. A test checks the two agree.

``Attention.forward`` takes the fused path; :meth:`Attention.explicit` runs the same layer
on the explicit path and returns its weights too. Neither keeps any state: to record the
weights of the layers inside a whole model, :func:`bsr.viz.attention.recording` hooks them
for the length of a ``with`` block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bsr.norm import RMSNorm
from bsr.rope import RotaryEmbedding


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T / sqrt(d)) v`` for ``(batch, heads, seq, dim_head)`` inputs.

    Returns the output ``(batch, heads, seq, dim_head)`` and the attention weights
    ``(batch, heads, seq, seq)`` (rows sum to one; before dropout).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = scores.softmax(dim=-1)
    return F.dropout(weights, dropout_p) @ v, weights


class Attention(nn.Module):
    """Pre-norm multi-head attention: RMSNorm -> q, k, v -> RoPE -> attention -> out.

    Input and output ``(batch, seq, dim)``. ``gates=True`` adds the community's per-head
    sigmoid output gates (not in the paper).
    """

    def __init__(
        self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, gates: bool = False
    ):
        super().__init__()
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads) if gates else None
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.out_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None = None) -> torch.Tensor:
        """``(batch, seq, dim)`` -> ``(batch, seq, dim)``, on the fused kernel."""
        normed, q, k, v = self._heads(x, rope)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self._dropout_p())
        return self._merge_heads(normed, out)

    def explicit(
        self, x: torch.Tensor, rope: RotaryEmbedding | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same layer on the explicit path: the output ``(batch, seq, dim)`` and the
        weights ``(batch, heads, seq, seq)`` (rows sum to one)."""
        normed, q, k, v = self._heads(x, rope)
        out, weights = explicit_attention(q, k, v, self._dropout_p())
        return self._merge_heads(normed, out), weights

    def _heads(self, x: torch.Tensor, rope: RotaryEmbedding | None):
        """RMSNorm, then queries, keys and values ``(batch, heads, seq, dim_head)``, RoPE on
        the queries and keys; also returns the normed input (the gates read it)."""
        batch, seq, _ = x.shape
        x = self.norm(x)
        # (batch, seq, 3*heads*dim_head) -> (3, batch, heads, seq, dim_head): q, k, v
        qkv = self.to_qkv(x).view(batch, seq, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv
        if rope is not None:
            q, k = rope(qkv[:2])  # queries and keys turn with their position; values do not
        return x, q, k, v

    def _merge_heads(self, normed: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Gate each head (if gated), concatenate the heads, project: -> ``(batch, seq, dim)``."""
        batch, _, seq, _ = out.shape
        if self.to_gates is not None:
            gates = self.to_gates(normed).sigmoid()  # (batch, seq, heads)
            out = out * gates.transpose(1, 2).unsqueeze(-1)
        out = out.transpose(1, 2).reshape(batch, seq, self.heads * self.dim_head)
        return self.out_dropout(self.to_out(out))

    def _dropout_p(self) -> float:
        return self.dropout if self.training else 0.0


class LinearAttention(nn.Module):
    """Cross-covariance ("linear") attention over a whole ``(batch, seq, dim)`` sequence.

    The community code adds it as an optional third transformer in each block, run over all
    ``T*N`` time-band positions at once (El-Nouby et al., "XCiT", 2021). Softmax attention
    would cost ``(T*N)^2`` there; this one swaps the roles of positions and features: each
    head's ``dim_head`` feature channels attend to one another, with the positions as the
    vectors being compared. The attention map is ``(dim_head, dim_head)``, so the cost grows
    only linearly with the sequence:

        q, k, v: (batch, heads, dim_head, seq)    one row per feature channel
        q, k <- unit length along seq;  q <- q * exp(temperature)   (learned, per head)
        out = softmax(q k^T * scale) v            (batch, heads, dim_head, seq)

    The fixed ``scale`` (8) stands in for ``1/sqrt(d)``: unit vectors have dot products in
    [-1, 1], too flat for a softmax without it. No RoPE: order plays no part here.
    """

    def __init__(
        self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, scale: float = 8.0
    ):
        super().__init__()
        self.heads, self.dim_head, self.dropout, self.scale = heads, dim_head, dropout, scale
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.temperature = nn.Parameter(torch.zeros(heads, 1, 1))  # exp(0) = 1 at the start
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None = None) -> torch.Tensor:
        """``(batch, seq, dim)`` -> ``(batch, seq, dim)``; ``rope`` is ignored (no positions)."""
        batch, seq, _ = x.shape
        x = self.norm(x)
        # (batch, seq, 3*heads*dim_head) -> (3, batch, heads, dim_head, seq)
        q, k, v = (
            self.to_qkv(x).view(batch, seq, 3, self.heads, self.dim_head).permute(2, 0, 3, 4, 1)
        )
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # unit length over positions
        q = q * self.temperature.exp()
        dropout_p = self.dropout if self.training else 0.0
        # Feature channels are SDPA's "sequence" here, positions its embedding.
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=self.scale)
        out = out.permute(0, 3, 1, 2).reshape(batch, seq, self.heads * self.dim_head)
        return self.to_out(out)
