"""Multi-head self-attention with RoPE on queries and keys.

Two paths compute the same thing:

* the fused path, ``F.scaled_dot_product_attention``, which picks a flash / memory
  efficient kernel when one exists: this is what training and separation use;
* the explicit path, :func:`explicit_attention`, which spells out
  ``softmax(q k^T / sqrt(d)) v`` and returns the weights: this is what the course and the
  attention explorer use to look inside. A test checks the two agree.

Set ``Attention.keep_weights = True`` and the layer takes the explicit path and stores
its last weights in ``Attention.last_weights`` (``(batch, heads, seq, seq)``).
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
        self.keep_weights = False
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None = None) -> torch.Tensor:
        batch, seq, _ = x.shape
        x = self.norm(x)
        # (batch, seq, 3*heads*dim_head) -> (3, batch, heads, seq, dim_head): q, k, v
        qkv = self.to_qkv(x).view(batch, seq, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv
        if rope is not None:
            q, k = rope(qkv[:2])  # queries and keys turn with their position; values do not
        dropout_p = self.dropout if self.training else 0.0
        if self.keep_weights:
            out, weights = explicit_attention(q, k, v, dropout_p)
            self.last_weights = weights.detach()
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        if self.to_gates is not None:
            gates = self.to_gates(x).sigmoid()  # (batch, seq, heads)
            out = out * gates.transpose(1, 2).unsqueeze(-1)
        out = out.transpose(1, 2).reshape(batch, seq, self.heads * self.dim_head)
        return self.out_dropout(self.to_out(out))
