import math

import torch
import torch.nn.functional as F

from bsr.attention import Attention, explicit_attention
from bsr.rope import RotaryEmbedding


def test_explicit_matches_fused_kernel_and_float64():
    q, k, v = (torch.randn(2, 4, 30, 16) for _ in range(3))
    out, weights = explicit_attention(q, k, v)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 30), atol=1e-5)
    q64, k64, v64 = q.double(), k.double(), v.double()
    reference = torch.softmax(q64 @ k64.transpose(-1, -2) / math.sqrt(16), -1) @ v64
    assert torch.allclose(out.double(), reference, atol=1e-5)


def test_attention_layer_paths_agree_and_record_weights():
    for gates in (False, True):
        layer = Attention(dim=32, heads=4, dim_head=8, gates=gates).eval()
        rope = RotaryEmbedding(8)
        x = torch.randn(3, 20, 32)
        fused = layer(x, rope)
        explicit, weights = layer.explicit(x, rope)
        assert torch.allclose(fused, explicit, atol=1e-5)
        assert weights.shape == (3, 4, 20, 20)


def test_rope_changes_attention():
    layer = Attention(dim=32, heads=4, dim_head=8).eval()
    x = torch.randn(1, 20, 32)
    assert not torch.allclose(layer(x, RotaryEmbedding(8)), layer(x, None), atol=1e-4)
