"""Many small per-band layers, run as a few batched matrix products.

The band split and the mask estimator hold one small Linear layer per band (62 of them in
the paper, times the number of stems in the mask estimator). Written as a Python loop,
each is a separate small matrix product: easy to read, slow to run, since every call
pays a fixed overhead and keeps the hardware mostly idle.

Bands of equal width have weights of equal shape, so a *run* of consecutive equal bands
can stack its weights into one ``(n, out, in)`` tensor and do all ``n`` products in one
batched call (``torch.einsum`` -> ``bmm``). The paper layout has 7 such runs instead of 62
bands. The parameters stay where they are, in the per-band modules, so checkpoints look
the same either way; stacking them each forward is a cheap copy next to the products.

Batching pays where each kernel launch costs more than its arithmetic: on a GPU. On a CPU
the loop measured faster (the small preset's four mask estimators on a 2-core Xeon, batch
4 x 3 s: 66-71 ms per forward against 80-100 ms batched, 230 ms forward and backward
against 251 ms), since one band's activations stay in cache while a run's do not, and the
einsum's permutes are extra copies. So the modules choose by device unless told
(:func:`use_batched`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def equal_runs(sizes: Sequence[int]) -> list[tuple[int, int, int]]:
    """Consecutive bands of equal size: ``[(first band, count, size), ...]``.

    >>> equal_runs([2, 2, 4, 4, 4, 2])
    [(0, 2, 2), (2, 3, 4), (5, 1, 2)]
    """
    runs: list[tuple[int, int, int]] = []
    for b, size in enumerate(sizes):
        if runs and runs[-1][2] == size:
            first, count, _ = runs[-1]
            runs[-1] = (first, count + 1, size)
        else:
            runs.append((b, 1, size))
    return runs


def use_batched(batched: bool | None, x: torch.Tensor) -> bool:
    """Whether to run the batched form: ``batched`` if set, else whether ``x`` is on a GPU."""
    return x.is_cuda if batched is None else batched


def stacked_linear(x: torch.Tensor, layers: Sequence[nn.Linear]) -> torch.Tensor:
    """Apply ``layers[k]`` to ``x[..., k, :]``: ``(..., n, in)`` -> ``(..., n, out)``."""
    weight = torch.stack([layer.weight for layer in layers])  # (n, out, in)
    y = torch.einsum("...ki,koi->...ko", x, weight)
    if layers[0].bias is not None:
        y = y + torch.stack([layer.bias for layer in layers])  # (n, out)
    return y


def stacked_rms_norm(x: torch.Tensor, norms: Sequence[nn.Module]) -> torch.Tensor:
    """RMSNorm ``norms[k]`` on ``x[..., k, :]``; identity norms pass ``x`` through."""
    if not hasattr(norms[0], "gamma"):
        return x
    gamma = torch.stack([norm.gamma for norm in norms])  # (n, dim)
    return F.normalize(x, dim=-1) * (gamma * norms[0].scale)
