"""Measures of attention: how far a query looks, and how alike the frames are to begin with.

:func:`mean_attention_distance` sums ``w_ij * |i - j|`` over the keys and averages over the
queries; :func:`layer_attention_distances` does it for every block, :func:`distance_table`
prints models side by side. :func:`frame_similarity` needs no model at all: overlapping STFT
frames are alike, so a diagonal in a map is not by itself proof of positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from bsr.viz.attention.record import model_batch, record_attention


@torch.no_grad()
def frame_similarity(model, audio) -> torch.Tensor:
    """``(N, T, T)`` float64: how alike the frames of every band are, before any model.

    Entry ``[n, i, j]`` is the correlation of band ``n``'s magnitudes (its bins, both
    channels) in frames ``i`` and ``j``: the cosine similarity once the excerpt's mean
    magnitude of every bin is subtracted, so that a steady background does not make every
    pair alike. With hop ``n_fft / 2`` neighbouring frames share half their samples, so
    this map has a bright diagonal from the audio alone: no attention, no positions.
    """
    device = next(model.parameters()).device
    spec = model.stft(model_batch(model, audio)[:1].to(device))[0].abs().double().cpu()
    rows = []
    for bins in model.layout.bins:
        x = spec[:, list(bins)].reshape(-1, spec.shape[-1]).T  # (T, C * bins)
        x = x - x.mean(dim=0)
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        rows.append(x @ x.T)
    return torch.stack(rows)


def mean_by_offset(maps, offsets: Sequence[int]) -> torch.Tensor:
    """The mean of square maps ``(..., seq, seq)`` along the diagonals ``j - i = +-d``.

    Returns float64 ``(len(offsets),)``: for every ``d`` the average of ``maps[..., i, i + d]``
    and ``maps[..., i, i - d]`` over every valid ``i`` and all leading dimensions. For
    attention weights ``d = 0`` is the weight on oneself (``1 / seq`` when uniform).
    """
    m = torch.as_tensor(maps).double()
    seq = m.shape[-1]
    out = []
    for d in offsets:
        if not 0 <= d < seq:
            raise ValueError(f"offsets must be in 0..{seq - 1}, got {d}")
        parts = [torch.diagonal(m, d, -2, -1), torch.diagonal(m, -d, -2, -1)]
        out.append(torch.cat([p.reshape(-1) for p in parts]).mean())
    return torch.stack(out)


def mean_attention_distance(weights) -> torch.Tensor:
    """How far a query looks on average, per head, in positions (float64 ``(heads,)``).

    For weights ``(sequences, heads, seq, seq)`` this is ``sum_j w[s, h, i, j] * |i - j|``,
    averaged over the queries ``i`` and the sequences ``s``. Uniform attention gives
    :func:`uniform_attention_distance` (about ``seq / 3``); attending only to oneself gives 0.
    """
    w = torch.as_tensor(weights).double()
    if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"expected weights (sequences, heads, seq, seq), got {tuple(w.shape)}")
    position = torch.arange(w.shape[-1], dtype=torch.float64)
    distance = (position[:, None] - position[None, :]).abs()  # (query, key)
    return (w * distance).sum(-1).mean(dim=(0, 2))


def uniform_attention_distance(seq: int) -> float:
    """The mean attention distance of flat attention over ``seq`` positions.

    ``sum_j |i - j| / seq`` averaged over the queries ``i``: ``(seq^2 - 1) / (3 seq)``,
    about ``seq / 3`` for a long sequence.
    """
    if seq < 1:
        raise ValueError(f"seq must be at least 1, got {seq}")
    return (seq * seq - 1) / (3 * seq)


def layer_attention_distances(
    model, audio, axis: str = "time", use_rope: bool | None = None
) -> torch.Tensor:
    """The mean attention distance of every block of ``model``: float64 ``(depth, heads)``.

    Block ``l``'s weights are recorded with :func:`record_attention` (``(B*N, heads, T, T)``
    for ``axis="time"``, ``(B*T, heads, N, N)`` for ``axis="band"``) and reduced with
    :func:`mean_attention_distance`; ``[l, h]`` is in frames (time) or bands (band).
    ``.mean(-1)`` gives the distance of each layer averaged over its heads. ``use_rope``
    as in :func:`record_attention`.
    """
    rows = [
        mean_attention_distance(record_attention(model, audio, layer, axis, use_rope=use_rope))
        for layer in range(len(model.layers))
    ]
    return torch.stack(rows)


def distance_table(
    columns: Mapping[str, torch.Tensor], uniform: float, unit: str = "frames"
) -> str:
    """A text table of mean attention distances: one row per layer, one column per model.

    ``columns`` maps a name to ``(depth, heads)`` distances (averaged over the heads here)
    or ``(depth,)``; ``uniform`` (see :func:`uniform_attention_distance`) is the last
    column, the value of flat attention over the same number of positions.
    """
    names = list(columns) + ["uniform"]
    means = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in columns.items()}
    means = {k: v.mean(-1) if v.dim() == 2 else v for k, v in means.items()}
    depths = {len(v) for v in means.values()}
    if len(depths) != 1:
        raise ValueError(f"every column needs the same number of layers, got {sorted(depths)}")
    depth = depths.pop()
    means["uniform"] = torch.full((depth,), float(uniform), dtype=torch.float64)
    widths = [max(7, len(n)) for n in names]
    lines = [
        f"mean attention distance in {unit} (mean over queries and heads)",
        "layer  " + "  ".join(f"{n:>{w}s}" for n, w in zip(names, widths)),
    ]
    for layer in range(depth):
        cells = "  ".join(f"{means[n][layer].item():>{w}.2f}" for n, w in zip(names, widths))
        lines.append(f"{layer:>5d}  {cells}")
    return "\n".join(lines)
