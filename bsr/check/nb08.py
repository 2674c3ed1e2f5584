"""Checks for notebook 08 (the attention explorer).

* 08.1 ``time_attention(model, audio, layer)``: the time-attention weights of one RoFormer
  block, recorded during a forward pass, against :func:`bsr.viz.attention.record_attention`;
  the model must be left as it was (no hooks left behind).
* 08.2 ``relative_attention_distance(weights)``: how far a query looks on average, per head,
  as a fraction of how far uniform attention over the same positions looks. The learner
  writes the distance from its definition and derives the uniform one, ``(n^2 - 1) / (3n)``,
  which the text does not give: uniform maps of several lengths must give exactly 1, and the
  usual closed forms that are off (``n / 3``, ``(n - 1) / 3``, ``(n + 1) / 3``) are named,
  as are the slips in the distance (signed offsets, key positions, a mean over the keys).
* 08.P (the prediction): how much the time-attention weights change when every frame is
  renumbered from 1000 instead of 0; RoPE only feels offsets, so "not at all" (below 0.001).
"""

from __future__ import annotations

import torch

from bsr.check import (
    CheckFailed,
    expect,
    expect_close,
    expect_shape,
    register,
    small_model,
    wrong_prediction,
)
from bsr.model import BSRoformer
from bsr.viz.attention import mean_attention_distance, record_attention, uniform_attention_distance


def _close(a, b, atol: float = 1e-5) -> bool:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


class _Stop(RuntimeError):
    """The error the check raises inside the forward pass, on purpose."""


def _hooked(model: BSRoformer) -> list[str]:
    """The modules of ``model`` that still carry a forward hook or pre-hook."""
    return [name for name, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]


def _fails_cleanly(time_attention, model: BSRoformer, audio: torch.Tensor) -> None:
    """Run the answer on a forward pass that fails after every block has run (in the first
    mask estimator): the answer's hook must be gone afterwards all the same."""

    def stop(module, inputs):
        raise _Stop("the check stops the forward pass here, to see the hook removed")

    handle = model.mask_estimators[0].register_forward_pre_hook(stop)
    try:
        time_attention(model, audio.clone(), 1)
    except Exception:  # _Stop, or whatever the answer made of it
        pass
    finally:
        handle.remove()
    hooked = _hooked(model)
    expect(
        not hooked,
        "when the forward pass fails (the check made it fail on purpose, after the "
        f"attention had run), your hook stays attached to {hooked[0] if hooked else ''}: "
        "remove it in a `finally:` block (try: model(audio) finally: handle.remove()), so "
        "that the model is left as it was even after an error",
    )


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
    hooked = _hooked(model)
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
    _fails_cleanly(time_attention, model, audio)


def _signed(weights: torch.Tensor) -> torch.Tensor:
    position = torch.arange(weights.shape[-1], dtype=torch.float64)
    return (weights.double() * (position[None, :] - position[:, None])).sum(-1).mean(dim=(0, 2))


def _key_position(weights: torch.Tensor) -> torch.Tensor:
    position = torch.arange(weights.shape[-1], dtype=torch.float64)
    return (weights.double() * position).sum(-1).mean(dim=(0, 2))


WRONG_UNIFORM = {  # closed forms of the uniform distance that are nearly right
    "n / 3": lambda n: n / 3,
    "(n - 1) / 3": lambda n: (n - 1) / 3,
    "(n + 1) / 3": lambda n: (n + 1) / 3,
    "(n^2 - 1) / (3 n^2)": lambda n: (n * n - 1) / (3 * n * n),
}


def _check_uniform(relative_distance, heads: int) -> None:
    """Uniform maps of several lengths must give exactly 1; a slightly wrong closed form for
    the uniform distance is named (the learner derives it; the text does not give it)."""
    for seq in (2, 7, 12, 40):
        uniform = torch.full((2, heads, seq, seq), 1.0 / seq)
        got = torch.as_tensor(relative_distance(uniform.clone())).double()
        if _close(got, torch.ones(heads), atol=1e-6):
            continue
        true = uniform_attention_distance(seq)
        for name, wrong in WRONG_UNIFORM.items():
            if _close(got, torch.full((heads,), true / wrong(seq)), atol=1e-6):
                raise CheckFailed(
                    f"uniform attention over {seq} positions gives {got[0]:.4f}, not 1: you "
                    f"divided by {name}, which is not the mean distance of uniform attention "
                    f"over n positions (it should hold exactly, for every n); count the "
                    f"(query, key) pairs at each offset d and sum"
                )
        raise CheckFailed(
            f"uniform attention over {seq} positions gives {got[0]:.4f}, not 1: divide by the "
            "mean distance of uniform attention over the same n positions, derived for any n "
            "(count the (query, key) pairs at each offset d)"
        )


@register(
    "08.2",
    library=(
        "bsr.viz.attention.measures.mean_attention_distance",
        "bsr.viz.attention.measures.layer_attention_distances",
        "bsr.viz.attention.measures.uniform_attention_distance",
    ),
)
def check_relative_attention_distance(relative_distance) -> None:
    torch.manual_seed(82)
    seq, heads = 12, 3
    weights = (torch.randn(5, heads, seq, seq) * 2).softmax(-1)  # (sequences, heads, seq, seq)
    got = torch.as_tensor(relative_distance(weights.clone()))
    if got.numel() == 1 and heads > 1:
        raise CheckFailed(
            "you returned one number: keep the heads apart, one distance per head (shape "
            f"({heads},)), and average over the sequences and the queries only"
        )
    expect_shape(got, (heads,), f"the relative distance of {heads} heads")
    uniform = uniform_attention_distance(seq)
    distance = mean_attention_distance(weights)  # (heads,) in positions
    if _close(got, distance):
        raise CheckFailed(
            "these are distances in positions: divide them by the mean distance of uniform "
            "attention over the same number of positions, so that 1 means 'as far as flat "
            "attention'"
        )
    slips = (
        (_signed(weights), "your distances are signed (keys before the query count as "
         "negative): use the absolute offset |i - j|"),
        (_key_position(weights), "you computed the mean *key position* sum_j w_ij * j: the "
         "distance from the query is |i - j|"),
        (distance / seq, "you averaged w_ij * |i - j| over the keys: the weights already sum "
         "to one, so sum over the keys and average over the queries"),
    )  # fmt: skip
    for wrong, message in slips:
        if _close(got, wrong / uniform) or _close(got, wrong):
            raise CheckFailed(message)
    eye = torch.eye(seq).expand(2, heads, seq, seq)
    expect(
        _close(relative_distance(eye.clone()), torch.zeros(heads)),
        "a query that attends only to itself looks 0 positions away; yours does not give 0",
    )
    _check_uniform(relative_distance, heads)
    expect_close(got, distance / uniform, "relative_attention_distance(weights)", atol=1e-5)


SHIFT_CHOICES = {  # prediction 08.P: the answer -> the largest change of a weight it means
    "not at all": "below 0.001",
    "a little": "around 0.01",
    "a lot": "around 0.5",
}


@register("08.P")
def check_prediction(answer: str, observed: float | None = None) -> None:
    """``answer``: how much the time-attention weights change when every position is shifted
    by 1000, one of :data:`SHIFT_CHOICES`. RoPE scores depend on ``m - n`` only, so the truth
    is "not at all"; ``observed`` (optional) is the run's largest change of a weight."""
    if answer not in SHIFT_CHOICES:
        raise CheckFailed(
            f"prediction 08.P: PREDICTION should be one of {', '.join(map(repr, SHIFT_CHOICES))}, "
            f"not {answer!r}"
        )
    if observed is not None and not isinstance(observed, (int, float)):
        raise CheckFailed(
            "prediction 08.P: observed should be the largest change of a weight, one number"
        )
    if answer != "not at all":
        run = f" (the run: {observed:.1e})" if observed is not None else ""
        raise wrong_prediction(
            "08.P",
            f"you said {answer!r} ({SHIFT_CHOICES[answer]}), but the weights did not change "
            f"beyond float32 rounding{run}",
        )
