"""Checks for notebook 03 (rotary position embeddings).

* 03.1 ``(rope_frequencies, slowest_turn)``: the rotation speeds ``w_i = theta^(-2i/d)``,
  which the learner derives from three design goals (the check names the goal a wrong
  answer misses), and the positions ``2 pi / w_(d/2-1)`` one turn of the slowest pair takes.
* 03.2 ``rope_rotate(x, theta)``: rotate interleaved pairs of ``(..., seq, dim_head)`` by
  ``m * w_i``; checked against a float64 reference, with named properties first (lengths
  kept, position 0 untouched, scores a function of the offset alone).
* 03.P (the prediction): which ``(query position, key position)`` pairs score the same as
  ``(3, 7)``; the truth is computed here in float64, where rounding cannot blur it.
"""

from __future__ import annotations

import math

import torch

from bsr.check import (
    CheckFailed,
    expect,
    expect_close,
    expect_shape,
    register,
    wrong_prediction,
)


def reference_frequencies(dim_head: int, theta: float = 10000.0) -> torch.Tensor:
    """float64 ``w_i = theta^(-2i/d)`` for ``i = 0 .. d/2 - 1``."""
    i = torch.arange(dim_head // 2, dtype=torch.float64)
    return theta ** (-2 * i / dim_head)


def reference_rotate(x: torch.Tensor, theta: float = 10000.0, sign: float = 1.0) -> torch.Tensor:
    """float64 RoPE on interleaved pairs ``(x[2i], x[2i+1])``; ``sign=-1`` turns the other way."""
    seq, dim = x.shape[-2:]
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * reference_frequencies(dim, theta)
    angles = sign * angles  # (seq, dim/2)
    x1, x2 = x.double()[..., 0::2], x.double()[..., 1::2]
    out = torch.empty(x.shape, dtype=torch.float64)
    out[..., 0::2] = x1 * angles.cos() - x2 * angles.sin()
    out[..., 1::2] = x1 * angles.sin() + x2 * angles.cos()
    return out


def _rotate_half_layout(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """The GPT-NeoX layout: pair ``x[i]`` with ``x[i + d/2]`` (not the one used here)."""
    seq, dim = x.shape[-2:]
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * reference_frequencies(dim, theta)
    x1, x2 = x.double()[..., : dim // 2], x.double()[..., dim // 2 :]
    return torch.cat(
        (x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()), dim=-1
    )


def _pair_lengths(t: torch.Tensor) -> torch.Tensor:
    """Squared length of every pair ``(t[2i], t[2i+1])``."""
    return t.unflatten(-1, (-1, 2)).square().sum(-1)


def _matches(value: torch.Tensor, reference: torch.Tensor, atol: float = 1e-4) -> bool:
    return value.shape == reference.shape and torch.allclose(
        value.double(), reference.double(), atol=atol, rtol=1e-4
    )


def reference_slowest_turn(dim_head: int, theta: float = 10000.0) -> float:
    """Positions the slowest pair, ``i = d/2 - 1``, needs for one full turn: ``2 pi / w``."""
    return 2 * math.pi / float(reference_frequencies(dim_head, theta)[-1])


SETTINGS = ((8, 10000.0), (48, 10000.0), (16, 100.0))  # (dim_head, theta) the check tries


def _check_speeds(rope_frequencies) -> None:
    """The speeds against the three design goals, then against the float64 reference."""
    for dim_head, theta in SETTINGS:
        w = torch.as_tensor(rope_frequencies(dim_head, theta)).double()
        what = f"rope_frequencies({dim_head}, {theta:g})"
        expect_shape(w, (dim_head // 2,), what + " (one speed per pair)")
        expect(bool(torch.isfinite(w).all() and (w > 0).all()), f"{what}: speeds must be > 0")
        reference = reference_frequencies(dim_head, theta)
        if _matches(w.flip(0), reference, atol=1e-7):
            raise CheckFailed(
                f"{what} is in reverse order: pair 0 should turn fastest (1 radian per "
                "position) and the last pair slowest"
            )
        expect(
            abs(float(w[0]) - 1.0) < 1e-6,
            f"{what}[0] is {float(w[0]):.6g}; goal 1: the first pair turns by exactly 1 radian "
            "per position",
        )
        ratios = w[1:] / w[:-1]  # (d/2 - 1,): each pair's speed over its predecessor's
        expect(
            bool((ratios - ratios[0]).abs().max() < 1e-5 * ratios[0]),
            f"{what}: the ratio of neighbouring speeds runs from {float(ratios.min()):.4g} to "
            f"{float(ratios.max()):.4g}; goal 2: every pair is slower than the one before by "
            "the same factor",
        )
        reached = float(w[-1] * ratios[0])  # the sequence continued one step, to pair d/2
        expect(
            abs(reached * theta - 1.0) < 1e-4,
            f"{what}: continued one step past the last pair, your speeds reach "
            f"{reached:.4g} radians per position; goal 3 says 1 / theta = {1 / theta:.4g}. "
            "How many factors of r lie between pair 0 and pair d/2?",
        )
        expect_close(w, reference, what, atol=1e-7, rtol=1e-5)


def _check_slowest_turn(slowest_turn) -> None:
    """The positions one full turn of the slowest pair takes, for the same settings."""
    for dim_head, theta in SETTINGS:
        what = f"slowest_turn({dim_head}, {theta:g})"
        got = float(slowest_turn(dim_head, theta))
        truth = reference_slowest_turn(dim_head, theta)
        if math.isclose(got, truth, rel_tol=1e-4):
            continue
        w_last = float(reference_frequencies(dim_head, theta)[-1])
        if math.isclose(got, 1 / w_last, rel_tol=1e-4):
            raise CheckFailed(
                f"{what} = {got:.6g} is the positions per radian; a full turn is 2 pi radians"
            )
        if math.isclose(got, 2 * math.pi * theta, rel_tol=1e-4):
            raise CheckFailed(
                f"{what} = {got:.6g} is the turn of pair d/2, the one the sequence would reach "
                "next; the slowest pair is the last one, i = d/2 - 1"
            )
        if math.isclose(got, 2 * math.pi, rel_tol=1e-4):
            raise CheckFailed(f"{what} = {got:.6g} is the fastest pair's turn, not the slowest")
        raise CheckFailed(f"{what} = {got:.6g}, but the slowest pair needs {truth:.6g} positions")


@register("03.1", library=("bsr.rope.RotaryEmbedding",))
def check_frequencies(answer) -> None:
    """``answer`` is ``(rope_frequencies, slowest_turn)``, as the notebook hands it in, or
    ``rope_frequencies`` alone (the speeds, which are what a library version could give)."""
    rope_frequencies, slowest_turn = answer if isinstance(answer, tuple) else (answer, None)
    _check_speeds(rope_frequencies)
    if slowest_turn is not None:
        _check_slowest_turn(slowest_turn)


@register("03.2", library=("bsr.rope.RotaryEmbedding", "bsr.rope.as_complex_pairs"))
def check_rotate(rope_rotate) -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 3, 12, 8)  # (batch, heads, seq, dim_head)
    y = rope_rotate(x.clone(), 10000.0)
    expect_shape(y, tuple(x.shape), "rope_rotate(x) for x of shape (2, 3, 12, 8)")
    y = torch.as_tensor(y).double()
    expect(torch.isfinite(y).all().item(), "rope_rotate(x) contains NaN or inf values")
    if _matches(y, _rotate_half_layout(x)):
        raise CheckFailed(
            "you paired x[i] with x[i + d/2] (the 'rotate half' layout of GPT-NeoX); this "
            "course, like BS-RoFormer's community code, rotates interleaved pairs "
            "(x[0], x[1]), (x[2], x[3]), ..."
        )
    if _matches(y, reference_rotate(x, sign=-1.0)):
        raise CheckFailed(
            "your rotation turns the wrong way (by -m * w_i): the rotated pair is "
            "(x1 cos - x2 sin, x1 sin + x2 cos)"
        )
    expect(
        not torch.allclose(y, x.double(), atol=1e-6),
        "rope_rotate(x) returned x unchanged: rotate every pair by the angle m * w_i",
    )
    expect(
        torch.allclose(y[..., 0, :], x[..., 0, :].double(), atol=1e-5),
        "position 0 changed: the angle there is 0 * w_i = 0, so the first row should stay as "
        "it is (are positions counted from 0?)",
    )
    expect(
        torch.allclose(_pair_lengths(y), _pair_lengths(x.double()), atol=1e-4, rtol=1e-4),
        "the length of a pair (x[2i], x[2i+1]) changed: a rotation keeps lengths; use "
        "(x1 cos - x2 sin, x1 sin + x2 cos) with one angle for both features of a pair",
    )
    # The property RoPE is for: one query and one key copied to every position.
    q, k = torch.randn(16), torch.randn(16)
    seq = 20
    rq = torch.as_tensor(rope_rotate(q.expand(seq, 16).clone(), 10000.0)).double()
    rk = torch.as_tensor(rope_rotate(k.expand(seq, 16).clone(), 10000.0)).double()
    scores = rq @ rk.T  # scores[m, n] = <R(m) q, R(n) k>
    for offset in (-5, 0, 3):
        diagonal = torch.diagonal(scores, offset)
        expect(
            torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-3),
            f"scores are not a function of the offset alone: <R(m) q, R(n) k> changes along "
            f"the diagonal n - m = {offset} (from {diagonal.min():.4g} to {diagonal.max():.4g})",
        )
    expect_close(y, reference_rotate(x), "rope_rotate(x)", atol=1e-4)
    # theta must be used, not hard-wired.
    x = torch.randn(5, 30, 16)
    if _matches(torch.as_tensor(rope_rotate(x.clone(), 500.0)), reference_rotate(x, 10000.0)):
        raise CheckFailed("rope_rotate(x, theta=500) ignores theta: it rotates as if theta=10000")
    expect_close(
        torch.as_tensor(rope_rotate(x.clone(), 500.0)).double(),
        reference_rotate(x, 500.0),
        "rope_rotate(x, theta=500)",
        atol=1e-4,
    )


@register("03.P")
def check_prediction(answer: dict, observed: dict | None = None) -> None:
    """``answer`` maps ``(m, n)`` to True where its score equals that of ``(3, 7)``.

    ``observed`` (optional) maps the same pairs to the run's score minus the (3, 7) score,
    quoted in the message.
    """
    torch.manual_seed(0)
    q, k = torch.randn(1, 32), torch.randn(1, 32)
    last = 1 + max(max(pair) for pair in answer)

    def score(m: int, n: int) -> float:
        rq = reference_rotate(q.expand(last, 32))[m]
        rk = reference_rotate(k.expand(last, 32))[n]
        return float(rq @ rk)

    first = score(3, 7)
    for (m, n), said in answer.items():
        same = abs(score(m, n) - first) < 1e-9 * max(1.0, abs(first))
        if bool(said) != same:
            run = f" (the run: {observed[(m, n)]:+.1e})" if observed else ""
            raise wrong_prediction(
                "03.P",
                f"you said ({m}, {n}) scores {'the same as' if said else 'differently from'} "
                f"(3, 7), but it scores {'the same' if same else 'differently'}{run}",
            )
