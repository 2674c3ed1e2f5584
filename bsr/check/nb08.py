"""Checks for notebook 08 (the attention explorer).

* 08.1 ``time_attention(model, audio, layer)``: the time-attention weights of one RoFormer
  block, recorded during a forward pass, against :func:`bsr.viz.attention.record_attention`;
  the model must be left as it was (no hooks left behind).
* 08.2 ``mean_attention_distance(weights)``: how far a query looks on average, per head,
  against a float64 reference, with the usual slips (signed offsets, key positions, a mean
  over the keys) named.
"""

from __future__ import annotations

import torch

from bsr.check import CheckFailed, expect, expect_close, expect_shape, register, small_model
from bsr.model import BSRoformer
from bsr.viz.attention import mean_attention_distance, record_attention


def _close(a, b, atol: float = 1e-5) -> bool:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


def two_block_model(seed: int = 8) -> BSRoformer:
    """A random two-block model, small enough for a check (n_fft 256: 36 bands)."""
    torch.manual_seed(seed)
    return small_model(n_fft=256, hop_length=64, depth=2, stems=["vocals"])


@register(
    "08.1",
    library=(
        "bsr.viz.attention.record.record_attention",
        "bsr.viz.attention.record.recording",
    ),
)
def check_time_attention(time_attention) -> None:
    model = two_block_model()
    torch.manual_seed(80)
    audio = torch.randn(1, 2, 64 * 30) * 0.3  # 31 frames, 36 bands: the axes cannot be confused
    bands, frames, heads = model.layout.num_bands, 31, model.config.heads
    got = time_attention(model, audio.clone(), 1)
    expect(got is not None, "time_attention returned None: return the recorded weights")
    got = torch.as_tensor(got).detach()
    if tuple(got.shape) == (frames, heads, bands, bands):
        raise CheckFailed(
            "these are the band transformer's weights (frames, heads, bands, bands): record "
            "model.layers[layer].time_transformer.layers[0].attention instead"
        )
    expect_shape(got, (bands, heads, frames, frames), "the time-attention weights of one example")
    hooked = [name for name, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    expect(
        not hooked,
        f"a forward hook is still attached to {hooked[0] if hooked else ''}: remove it with "
        "the handle that register_forward_hook (or _pre_hook) returned (handle.remove())",
    )
    rows = got.double().sum(-1)
    expect(
        torch.allclose(rows, torch.ones_like(rows), atol=1e-4),
        "the rows of your weights do not sum to one: return the softmax weights "
        "(explicit(x, rope)[1]), not the scores or the layer's output",
    )
    expected = record_attention(model, audio, layer=1, axis="time")
    if not _close(got, expected, atol=1e-5):
        if _close(got, record_attention(model, audio, layer=0, axis="time"), atol=1e-5):
            raise CheckFailed("these are the weights of block 0: record model.layers[layer]")
        if _close(got, record_attention(model, audio, 1, "time", use_rope=False), atol=1e-5):
            raise CheckFailed("these weights were recorded with RoPE switched off")
    expect_close(got, expected, "time_attention(model, audio, 1)", atol=1e-5)


def _signed(weights: torch.Tensor) -> torch.Tensor:
    position = torch.arange(weights.shape[-1], dtype=torch.float64)
    return (weights.double() * (position[None, :] - position[:, None])).sum(-1).mean(dim=(0, 2))


def _key_position(weights: torch.Tensor) -> torch.Tensor:
    position = torch.arange(weights.shape[-1], dtype=torch.float64)
    return (weights.double() * position).sum(-1).mean(dim=(0, 2))


@register(
    "08.2",
    library=(
        "bsr.viz.attention.measures.mean_attention_distance",
        "bsr.viz.attention.measures.layer_attention_distances",
    ),
)
def check_mean_attention_distance(mean_attention_distance_fn) -> None:
    torch.manual_seed(82)
    seq, heads = 12, 3
    weights = (torch.randn(5, heads, seq, seq) * 2).softmax(-1)  # (sequences, heads, seq, seq)
    got = torch.as_tensor(mean_attention_distance_fn(weights.clone()))
    if got.numel() == 1 and heads > 1:
        raise CheckFailed(
            "you returned one number: keep the heads apart, one distance per head (shape "
            f"({heads},)), and average over the sequences and the queries only"
        )
    expect_shape(got, (heads,), f"the mean distance of {heads} heads")
    expected = mean_attention_distance(weights)
    if _close(got, _signed(weights)):
        raise CheckFailed(
            "your distances are signed (keys before the query count as negative): use the "
            "absolute offset |i - j|"
        )
    if _close(got, _key_position(weights)):
        raise CheckFailed(
            "you computed the mean *key position* sum_j w_ij * j: the distance from the "
            "query is |i - j|"
        )
    if _close(got, expected / seq):
        raise CheckFailed(
            "you averaged w_ij * |i - j| over the keys: the weights already sum to one, so "
            "sum over the keys and average over the queries"
        )
    # Two properties worth knowing by heart, then the values.
    eye = torch.eye(seq).expand(2, heads, seq, seq)
    expect(
        _close(mean_attention_distance_fn(eye.clone()), torch.zeros(heads)),
        "a query that attends only to itself looks 0 positions away; yours does not give 0",
    )
    uniform = torch.full((2, heads, seq, seq), 1.0 / seq)
    expect_close(
        mean_attention_distance_fn(uniform.clone()),
        torch.full((heads,), (seq * seq - 1) / (3 * seq), dtype=torch.float64),
        "the mean distance of uniform attention, (n^2 - 1) / (3n)",
        atol=1e-5,
    )
    expect_close(got, expected, "mean_attention_distance(weights)", atol=1e-5)
