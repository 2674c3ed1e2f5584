import numpy as np
import torch

from bsr.rope import RotaryEmbedding


def reference_rope(x: np.ndarray, theta: float = 10000.0) -> np.ndarray:
    """float64 RoPE via complex numbers: pair (x[2i], x[2i+1]) times exp(1j * m * w_i)."""
    seq, dim = x.shape[-2:]
    w = theta ** (-np.arange(0, dim, 2) / dim)
    z = x[..., 0::2] + 1j * x[..., 1::2]
    z = z * np.exp(1j * np.arange(seq)[:, None] * w[None, :])
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


def test_matches_float64_reference():
    x = torch.randn(2, 3, 50, 16)
    ours = RotaryEmbedding(16)(x).double().numpy()
    assert np.allclose(ours, reference_rope(x.double().numpy()), atol=1e-4)


def test_matches_rotary_embedding_torch():
    """The package the community code uses (a test dependency through bs-roformer)."""
    from rotary_embedding_torch import RotaryEmbedding as PeerRotary

    x = torch.randn(2, 4, 33, 48)
    peer = PeerRotary(dim=48)
    assert torch.allclose(RotaryEmbedding(48)(x), peer.rotate_queries_or_keys(x), atol=1e-5)


def test_scores_depend_only_on_the_offset():
    """<R(m) q, R(n) k> is the same for every (m, n) with the same m - n."""
    rope = RotaryEmbedding(32)
    q, k = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    seq = 40
    rq = rope(q.expand(seq, 32).float()).double()  # the same q placed at every position
    rk = rope(k.expand(seq, 32).float()).double()
    scores = rq @ rk.T  # scores[m, n]
    for offset in (-7, 0, 3, 20):
        diagonal = torch.diagonal(scores, offset=offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4)
    # ... and it really does depend on the offset.
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, 5)[0])


def test_rotation_keeps_norms_and_dtype():
    x = torch.randn(5, 64, 8, dtype=torch.bfloat16)
    y = RotaryEmbedding(8)(x)
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float().norm(dim=-1), x.float().norm(dim=-1), rtol=2e-2)


def test_any_memory_layout():
    """Views of q and k inside a bigger tensor, with odd strides or offsets, rotate alike."""
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 3, 20, 8)  # (batch, heads, seq, dim_head)
    expected = rope(x.clone())
    wide = torch.randn(2, 3, 20, 9)
    wide[..., 1:] = x  # odd offset and odd row stride: no complex view possible, so a copy
    fused = torch.stack([x, x, x], dim=2).transpose(1, 3)  # (batch, seq, 3, heads, dim_head)
    views = {
        "odd offset": wide[..., 1:],
        "slice of a fused projection": fused[:, :, 0].transpose(1, 2),
        "seq-major memory": x.transpose(1, 2).contiguous().transpose(1, 2),
    }
    for name, view in views.items():
        assert torch.equal(view, x), name
        assert torch.allclose(rope(view), expected, atol=1e-6), name
    # The attention layer rotates q and k in one call: (2, batch, heads, seq, dim_head).
    assert torch.allclose(rope(torch.stack([x, x])), torch.stack([expected, expected]), atol=1e-6)


def test_complex_and_cos_sin_forms_agree():
    rope = RotaryEmbedding(16)
    x = torch.randn(3, 2, 40, 16)
    assert torch.allclose(rope(x), rope.rotate_pairs(x), atol=1e-6)
    half = x.to(torch.bfloat16)  # both rotate in float32 and return the input's dtype
    assert rope(half).dtype == rope.rotate_pairs(half).dtype == torch.bfloat16
