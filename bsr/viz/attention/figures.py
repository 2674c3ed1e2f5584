"""Figures of attention: one sequence's map with a query's row and the band energies, and
maps side by side on one colour scale.

Rows are queries, columns keys. Band axes are labelled in Hz, frame axes carry the onsets of
the music; images carry a ``gid`` so tests (and curious readers) can find what was drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from bsr.viz.attention.record import check_axis
from bsr.viz.static import ShownFigure

MAP_GID, QUERY_GID = "attention-map", "attention-query"
"""``gid`` of the attention image and of the current query's line in :func:`attention_figure`."""
PANEL_GID = "attention-panel"
"""``gid`` of every map drawn by :func:`attention_panels`."""
ONSET_COLOUR = "tab:green"
"""Colour of the onset marks on every frame axis."""


def head_map(weights, index: int, head: int | str | None = None) -> np.ndarray:
    """One sequence's ``(seq, seq)`` map: head ``head``, or the mean over heads (None/"mean")."""
    w = torch.as_tensor(weights)
    if not 0 <= index < w.shape[0]:
        raise ValueError(f"index must be in 0..{w.shape[0] - 1}, got {index}")
    if head is None or head == "mean":
        return w[index].double().mean(0).numpy()
    if not 0 <= int(head) < w.shape[1]:
        raise ValueError(f"head must be in 0..{w.shape[1] - 1} or 'mean', got {head}")
    return w[index, int(head)].double().numpy()


def _label_bands(ax, labels: Sequence[str] | None, which: str, most: int = 24) -> None:
    """Put Hz labels on a band axis (``which`` "x" or "y"), at most ``most`` of them."""
    if labels is None:
        return
    step = max(1, -(-len(labels) // most))
    ticks = np.arange(0, len(labels), step)
    texts = [labels[t] for t in ticks]
    if which == "x":
        ax.set_xticks(ticks, texts, rotation=90, fontsize=6.5)
    else:
        ax.set_yticks(ticks, texts, fontsize=6.5)


def _mark_onsets(ax, onsets: Sequence[int] | None, which: str = "x") -> None:
    """Triangles just outside the axes at the onset frames: on top (x) or on the left (y)."""
    if onsets is None or len(onsets) == 0:
        return
    onsets = np.asarray(onsets)
    if which == "x":
        ax.plot(onsets, np.ones(len(onsets)), "v", transform=ax.get_xaxis_transform(),
                color=ONSET_COLOUR, markersize=5, clip_on=False)  # fmt: skip
    else:
        ax.plot(np.zeros(len(onsets)), onsets, ">", transform=ax.get_yaxis_transform(),
                color=ONSET_COLOUR, markersize=5, clip_on=False)  # fmt: skip


def _map_norm(vmax: float) -> PowerNorm:
    """The square-root colour scale of every map: small weights stay visible."""
    return PowerNorm(0.5, vmin=0.0, vmax=max(float(vmax), 1e-6))


def _map_axes(ax, axis: str, band_labels, onsets, queries: bool = True) -> None:
    """Label a map's axes: Hz on band axes, onset marks on frame axes."""
    unit = "frame" if axis == "time" else "band"
    if axis == "band":
        _label_bands(ax, band_labels, "x")
        if queries:
            _label_bands(ax, band_labels, "y")
    else:
        _mark_onsets(ax, onsets, "x")
        if queries:
            _mark_onsets(ax, onsets, "y")
    marks = " (\u25bc onsets)" if axis == "time" and onsets is not None and len(onsets) else ""
    ax.set_xlabel(f"key {unit}{marks}")
    if queries:
        ax.set_ylabel(f"query {unit}")


def attention_figure(
    weights,
    axis: str,
    index: int,
    head: int | str | None = None,
    spectrogram: np.ndarray | None = None,
    query: int | None = None,
    title: str | None = None,
    band_labels: Sequence[str] | None = None,
    onsets: Sequence[int] | None = None,
    vmax: float | None = None,
) -> Figure:
    """Draw the attention of sequence ``index`` of ``weights`` (from :func:`record_attention`).

    ``axis="time"``: ``index`` is a band and the map is frames x frames; ``axis="band"``:
    ``index`` is a frame and the map is bands x bands. Rows are queries, columns keys.
    ``head``: one head, or None / ``"mean"`` for the mean over heads. The colour scale is
    a square root from 0 to ``vmax`` (default: the map's largest weight), so that small
    weights stay visible; the image (gid :data:`MAP_GID`) holds the weights themselves.

    ``query`` adds a panel with that query's row (a line with gid :data:`QUERY_GID`):
    where that frame (or band) looks. ``spectrogram`` (``(N, T)``, from
    :func:`band_spectrogram`) adds the excerpt's band energies with the sequence and the
    query marked. ``band_labels`` (N strings, from :func:`band_labels`) label every band
    axis in Hz; ``onsets`` (frame indices, from :func:`onset_frames`) are marked with
    green triangles on every frame axis.
    """
    check_axis(axis)
    shown = head_map(weights, index, head)
    size = shown.shape[0]
    if query is not None and not 0 <= query < size:
        raise ValueError(f"query must be in 0..{size - 1}, got {query}")
    if band_labels is not None and axis == "band" and len(band_labels) != size:
        raise ValueError(f"band_labels has {len(band_labels)} labels for {size} bands")
    panels = 1 + (query is not None) + (spectrogram is not None)
    fig = ShownFigure(figsize=(4.6 * panels + 0.8, 4.4), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, panels)))
    which = "mean over heads" if head is None or head == "mean" else f"head {int(head)}"
    map_ax = axes.pop(0)
    _draw_map(fig, map_ax, shown, axis, index, which, band_labels, onsets, vmax)
    if query is not None:
        map_ax.axhline(query, color="cyan", linewidth=0.8)
        _draw_query_row(axes.pop(0), shown[query], axis, query, band_labels, onsets)
    if spectrogram is not None:
        band, frame = (index, query) if axis == "time" else (query, index)
        _draw_band_energy(fig, axes.pop(0), spectrogram, axis, band, frame, band_labels, onsets)
    if title:
        fig.suptitle(title)
    return fig


def _draw_map(fig, ax, shown, axis, index, which, band_labels, onsets, vmax) -> None:
    """The ``(seq, seq)`` map itself, on a square-root colour scale (gid :data:`MAP_GID`)."""
    norm = _map_norm(shown.max() if vmax is None else vmax)
    image = ax.imshow(shown, cmap="magma", norm=norm, interpolation="nearest", aspect="auto")
    image.set_gid(MAP_GID)
    fig.colorbar(image, ax=ax, label="weight (square-root scale)")
    if axis == "time" and band_labels is not None:
        name = f"band {index} ({band_labels[index]})"
    else:
        name = f"{'band' if axis == 'time' else 'frame'} {index}"
    ax.set_title(f"{axis} attention of {name}\n{which}", fontsize=10, pad=8)
    _map_axes(ax, axis, band_labels, onsets)


def _draw_query_row(ax, row, axis, query, band_labels, onsets) -> None:
    """One query's row of the map: where that frame (or band) looks (gid :data:`QUERY_GID`)."""
    size = len(row)
    unit = "frame" if axis == "time" else "band"
    if axis == "time" and onsets is not None:
        for i, onset in enumerate(onsets):
            ax.axvline(onset, color=ONSET_COLOUR, linestyle="--", linewidth=0.7, alpha=0.7,
                       label="onset" if i == 0 else None)  # fmt: skip
    ax.plot(np.arange(size), row, color="tab:purple", gid=QUERY_GID)
    ax.axvline(query, color="cyan", linewidth=0.8, label=f"query {unit}")
    ax.axhline(1.0 / size, color="0.6", linestyle=":", linewidth=1, label="uniform")
    query_name = band_labels[query] if axis == "band" and band_labels is not None else query
    ax.set(xlabel=f"key {unit}", ylabel="weight", xlim=(-0.5, size - 0.5))
    ax.set_title(f"where {unit} {query_name} looks", fontsize=10)
    if axis == "band":
        _label_bands(ax, band_labels, "x")
    ax.legend(loc="upper right", fontsize=8)


def _draw_band_energy(fig, ax, spectrogram, axis, band, frame, band_labels, onsets) -> None:
    """The excerpt's ``(N, T)`` band energies in dB, the sequence and the query marked."""
    spectrogram = np.asarray(spectrogram)
    top = float(spectrogram.max())
    energy = ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="viridis",
                       vmin=top - 80.0, vmax=top, interpolation="nearest")  # fmt: skip
    fig.colorbar(energy, ax=ax, label="dB")
    if band is not None:
        ax.axhline(band, color="red", linewidth=1)
    if frame is not None:
        ax.axvline(frame, color="red" if axis == "band" else "cyan", linewidth=1)
    ax.set(xlabel="frame", ylabel="band")
    ax.set_title("band energy of the excerpt", fontsize=10, pad=8)
    _label_bands(ax, band_labels, "y")
    _mark_onsets(ax, onsets, "x")


def attention_panels(
    maps: Mapping[str, np.ndarray],
    axis: str,
    band_labels: Sequence[str] | None = None,
    onsets: Sequence[int] | None = None,
    title: str | None = None,
    vmax: float | None = None,
    size: float = 3.4,
) -> Figure:
    """Maps to compare, side by side on **one** colour scale with one colour bar.

    ``maps``: panel title -> ``(seq, seq)`` weights (queries x keys), e.g. the heads of
    one band, or the same band in two models. Every panel uses the same square-root
    scale from 0 to ``vmax`` (default: the largest weight of all the maps), so equal
    colours mean equal weights across panels. Band axes get ``band_labels`` (Hz), frame
    axes the ``onsets`` marks, as in :func:`attention_figure`. Every image has gid
    :data:`PANEL_GID` (see :func:`panel_maps`).
    """
    check_axis(axis)
    arrays = {k: np.asarray(torch.as_tensor(v).double()) for k, v in maps.items()}
    if not arrays:
        raise ValueError("no maps to draw")
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"the maps must all be (seq, seq) of one size, got {sorted(shapes)}")
    top = max(float(a.max()) for a in arrays.values()) if vmax is None else float(vmax)
    norm = _map_norm(top)
    count = len(arrays)
    fig = ShownFigure(figsize=(size * count + 1.6, size + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, count, sharex=True, sharey=True))
    for i, (ax, (name, array)) in enumerate(zip(axes, arrays.items())):
        image = ax.imshow(array, cmap="magma", norm=norm, interpolation="nearest", aspect="auto")
        image.set_gid(PANEL_GID)
        ax.set_title(name, fontsize=10, pad=8)
        _map_axes(ax, axis, band_labels, onsets, queries=i == 0)
    fig.colorbar(image, ax=list(axes), label="weight (one scale for all panels)", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def panel_maps(fig: Figure) -> list[np.ndarray]:
    """The maps drawn by :func:`attention_panels`, in panel order."""
    return [np.asarray(im.get_array()) for ax in fig.axes for im in ax.images
            if im.get_gid() == PANEL_GID]  # fmt: skip


def shown_map(fig: Figure) -> np.ndarray:
    """The weights drawn as the attention image of an :func:`attention_figure`."""
    (image,) = [im for ax in fig.axes for im in ax.images if im.get_gid() == MAP_GID]
    return np.asarray(image.get_array())


def query_line(fig: Figure) -> np.ndarray:
    """The query row drawn on an :func:`attention_figure` made with ``query``."""
    (line,) = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == QUERY_GID]
    return np.asarray(line.get_ydata())
