"""Checks for notebook 04 (attention and the RoFormer block).

* 04.1 ``attention(q, k, v)``: the learner derives the scale of the scores from a stated
  property (scores of q, k with unit-variance components have unit variance); checked
  against :func:`bsr.attention.explicit_attention` and PyTorch's fused kernel, and a wrong
  scale is measured from the learner's weights and reported as the variance it gives.
* 04.2 ``multi_head_attention(x, layer, rope)``: the forward pass of a
  :class:`bsr.attention.Attention` layer written out, against the layer itself.
* 04.3 ``roformer_block(x, time_transformer, band_transformer, time_rope, band_rope)``: the
  time-then-band reshapes, first with probes that record what each pass sees, then against
  :class:`bsr.roformer.RoFormerBlock`.
* 04.P (the prediction): the sizes of the attention weights at the paper's T = 801, N = 62,
  8 heads; the truth is computed here, and each answer must be within 10 %.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bsr.attention import Attention, explicit_attention
from bsr.check import (
    CheckFailed,
    expect,
    expect_close,
    expect_shape,
    register,
    wrong_prediction,
)
from bsr.roformer import RoFormerBlock
from bsr.rope import RotaryEmbedding


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


def _pair(result, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise CheckFailed(f"{what} should return two tensors, (output, weights)")
    return torch.as_tensor(result[0]), torch.as_tensor(result[1])


def _scale_of(weights: torch.Tensor, raw: torch.Tensor) -> float:
    """The factor ``c`` with ``weights = softmax(c * raw)``, fitted by least squares.

    Within a row the softmax's divisor cancels from differences of log-weights:
    ``log w_ij - log w_i0 = c * (raw_ij - raw_i0)``.
    """
    log_w = weights.clamp_min(1e-300).log()
    dy = (log_w - log_w[..., :1]).flatten()
    dx = (raw - raw[..., :1]).flatten()
    return float((dx * dy).sum() / (dx * dx).sum())


def _check_scale(weights: torch.Tensor, raw: torch.Tensor, d: int) -> None:
    """The scores must have unit variance for unit-variance q, k: report the variance if not."""
    scale = _scale_of(weights, raw)
    variance = d * scale**2  # Var(c q.k) = c^2 d for independent unit-variance components
    if abs(variance - 1.0) < 1e-3 or not _close(weights, (scale * raw).softmax(-1)):
        return  # right, or not a scaled softmax of q.k at all: the comparisons say more
    if abs(scale - 1.0) < 1e-6:
        raise CheckFailed(
            f"the scores are not scaled: for q and k with independent unit-variance "
            f"components, q.k has variance d = {d}, not 1. Which factor brings it to 1?"
        )
    raise CheckFailed(
        f"your scores are q.k times {scale:.4g} (d = {d}): for q and k with independent "
        f"unit-variance components that gives them variance {variance:.4g}, not 1. The "
        "variance of c * q.k is c^2 times the variance of q.k"
    )


@register(
    "04.1",
    library=(
        "bsr.attention.explicit_attention",
        "bsr.attention.Attention",
        "torch.nn.functional.scaled_dot_product_attention",
    ),
)
def check_attention(attention) -> None:
    torch.manual_seed(4)
    # Queries and keys of different lengths, so that a transposed score matrix shows.
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 8)
    out, weights = _pair(attention(q, k, v), "attention(q, k, v)")
    expect_shape(weights, (2, 3, 5, 9), "the weights for 5 queries and 9 keys (batch 2, 3 heads)")
    expect_shape(out, (2, 3, 5, 8), "the output for 5 queries of width 8")
    weights, out = weights.double(), out.double()
    expect(
        bool((weights >= 0).all()),
        "some attention weights are negative: did you forget the softmax?",
    )
    rows = weights.sum(-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-5):
        raise CheckFailed(
            "the weights of a query do not sum to one: take the softmax over the keys "
            "(the last axis, dim=-1)"
        )
    q64, k64 = q.double(), k.double()
    _check_scale(weights, q64 @ k64.transpose(-2, -1), q.shape[-1])
    ref_out, ref_weights = explicit_attention(q64, k64, v.double())
    expect_close(weights, ref_weights, "the attention weights", atol=1e-5)
    expect_close(out, ref_out, "the attention output", atol=1e-5)
    # ... and the fused kernel computes the same, for a longer self-attention.
    x = torch.randn(1, 4, 40, 16)
    fused = F.scaled_dot_product_attention(x, x, x)
    out, weights = _pair(attention(x, x, x), "attention(x, x, x)")
    x64 = x.double()
    _check_scale(weights.double(), x64 @ x64.transpose(-2, -1), 16)  # a scale fixed for d = 8?
    expect_close(out, fused, "attention(x, x, x) against F.scaled_dot_product_attention", 1e-4)


def reference_layer(
    x: torch.Tensor,
    layer: Attention,
    rope: RotaryEmbedding | None,
    norm: bool = True,
    rope_on_v: bool = False,
) -> torch.Tensor:
    """The Attention layer's forward pass, spelled out (``norm`` / ``rope_on_v``: variants)."""
    batch, seq, _ = x.shape
    h, d = layer.heads, layer.dim_head
    if norm:
        x = layer.norm(x)
    qkv = x @ layer.to_qkv.weight.T  # (batch, seq, 3*h*d)
    q, k, v = qkv.view(batch, seq, 3, h, d).permute(2, 0, 3, 1, 4)  # 3 x (batch, h, seq, d)
    if rope is not None:
        q, k = rope(q), rope(k)
        if rope_on_v:
            v = rope(v)
    out, _ = explicit_attention(q, k, v)
    out = out.transpose(1, 2).reshape(batch, seq, h * d)
    return out @ layer.to_out.weight.T


@register("04.2", library=("bsr.attention.Attention.forward", "bsr.attention.Attention.explicit"))
def check_multi_head_attention(multi_head_attention) -> None:
    torch.manual_seed(42)
    layer = Attention(dim=24, heads=3, dim_head=8).eval()
    with torch.no_grad():
        layer.norm.gamma.uniform_(0.5, 1.5)  # not all ones: a forgotten norm shows
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 11, 24) * 3
    with torch.no_grad():
        got = torch.as_tensor(multi_head_attention(x.clone(), layer, rope))
        expected = layer(x, rope)
        expect_shape(got, (2, 11, 24), "multi_head_attention(x) for x of shape (2, 11, 24)")
        if _close(got, reference_layer(x, layer, None)):
            raise CheckFailed(
                "your output matches attention WITHOUT positions: rotate q and k with "
                "rope(q), rope(k) after splitting the heads"
            )
        if _close(got, reference_layer(x, layer, rope, rope_on_v=True)):
            raise CheckFailed("you rotated the values too: RoPE goes on queries and keys only")
        if _close(got, reference_layer(x, layer, rope, norm=False)):
            raise CheckFailed(
                "the layer is pre-norm: apply layer.norm (RMSNorm) to x before the projections"
            )
        try:
            expect_close(got, expected, "multi_head_attention(x, layer, rope)", atol=1e-4)
        except CheckFailed as failure:
            raise CheckFailed(
                f"{failure}. Check the head split: to_qkv's output is laid out as "
                "(batch, seq, 3, heads, dim_head), and the heads are merged back as "
                "(batch, seq, heads * dim_head)"
            ) from None


class _Probe(nn.Module):
    """Stands in for a Transformer: records what it is given and returns it unchanged."""

    def __init__(self):
        super().__init__()
        self.seen: torch.Tensor | None = None
        self.rope: RotaryEmbedding | None = None

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None = None) -> torch.Tensor:
        self.seen, self.rope = x.detach().clone(), rope
        return x


def _check_sequences(seen, expected: torch.Tensor, what: str, hint: str) -> None:
    """``seen`` must hold the sequences of ``expected`` ``(count, seq, D)``, in any order."""
    expect(seen is not None, f"the {what} was never called")
    expect_shape(seen, tuple(expected.shape), f"the input of the {what}")
    if torch.equal(seen, expected):
        return
    # Any order of the sequences is fine (each is processed on its own) if each is genuine.
    flat_seen, flat_expected = seen.flatten(1), expected.flatten(1)
    genuine = (torch.cdist(flat_seen, flat_expected).min(dim=1).values < 1e-6).all()
    if not genuine:
        raise CheckFailed(f"the sequences the {what} sees are mixed up: {hint}")


@register("04.3", library=("bsr.roformer.RoFormerBlock.forward",))
def check_roformer_block(roformer_block) -> None:
    torch.manual_seed(7)
    batch, frames, bands, dim = 2, 6, 4, 16
    x = torch.randn(batch, frames, bands, dim)
    time_rope, band_rope = RotaryEmbedding(8), RotaryEmbedding(8)

    # 1. Probes: what does each pass get to see?
    time_probe, band_probe = _Probe(), _Probe()
    out = roformer_block(x.clone(), time_probe, band_probe, time_rope, band_rope)
    expect_shape(out, (batch, frames, bands, dim), "the block's output")
    _check_sequences(
        time_probe.seen,
        x.transpose(1, 2).reshape(batch * bands, frames, dim),
        "time transformer",
        "each sequence should be the T frames of ONE band of one example, (batch*N, T, D); "
        "move the band axis next to the batch (x.transpose(1, 2)) before reshaping",
    )
    expect(
        time_probe.rope is time_rope,
        "the time transformer should get time_rope (positions are frames)",
    )
    _check_sequences(
        band_probe.seen,
        x.reshape(batch * frames, bands, dim),
        "band transformer",
        "each sequence should be the N bands of ONE frame of one example, (batch*T, N, D); "
        "undo the time pass's transpose before reshaping",
    )
    expect(
        band_probe.rope is band_rope,
        "the band transformer should get band_rope (positions are bands)",
    )
    expect(
        torch.equal(torch.as_tensor(out), x),
        "with passes that change nothing, the block should give back its input: the final "
        "reshape does not put the values back in (batch, T, N, D) order",
    )

    # 2. The real thing: a random block, same weights.
    block = RoFormerBlock(
        1,
        1,
        dim=dim,
        heads=2,
        dim_head=8,
        attn_dropout=0.0,
        ff_dropout=0.0,
        ff_mult=2,
        gates=False,
    ).eval()
    with torch.no_grad():
        expected = block(x, time_rope, band_rope)
        got = roformer_block(
            x.clone(), block.time_transformer, block.band_transformer, time_rope, band_rope
        )
    if _close(got, expected.detach(), atol=1e-4):
        return
    with torch.no_grad():  # bands first, then time: the wrong order
        y = block.band_transformer(x.reshape(batch * frames, bands, dim), band_rope)
        y = y.reshape(batch, frames, bands, dim).transpose(1, 2).reshape(-1, frames, dim)
        y = block.time_transformer(y, time_rope)
        swapped = y.reshape(batch, bands, frames, dim).transpose(1, 2)
    if _close(got, swapped, atol=1e-4):
        raise CheckFailed("the order is time first, then bands; you attended over bands first")
    expect_close(got, expected, "roformer_block(x, ...) against RoFormerBlock", atol=1e-4)


@register("04.P")
def check_prediction(answer: dict, observed: dict | None = None) -> None:
    """``answer``: ``{"one matrix": x, "one pass": y, "GiB": z}`` at T = 801, N = 62, 8 heads.

    ``"one matrix"``: how many times larger one time-attention matrix is than one
    band-attention matrix; ``"one pass"``: the same for all the scores of a pass;
    ``"GiB"``: one time layer's weights for one example, 8 heads in float32. Each within 10 %.
    ``observed`` (optional) holds the run's numbers under the same keys, quoted in the message.
    """
    frames, bands, heads = 801, 62, 8
    truth = {
        "one matrix": frames**2 / bands**2,
        "one pass": (bands * frames**2) / (frames * bands**2),
        "GiB": heads * bands * frames**2 * 4 / 2**30,
    }
    if not isinstance(answer, dict) or set(answer) != set(truth):
        raise wrong_prediction("04.P", f"PREDICTION should be a dict with the keys {sorted(truth)}")
    for key, true in truth.items():
        said = answer[key]
        if not isinstance(said, (int, float)) or not said > 0:
            raise wrong_prediction("04.P", f"{key!r}: write a positive number, not {said!r}")
        if abs(said - true) > 0.1 * true:
            run = f" (the run printed {observed[key]:.3g})" if observed and key in observed else ""
            raise wrong_prediction(
                "04.P", f"you said {key!r} is {said:g}, but it is {true:.3g}{run}"
            )
