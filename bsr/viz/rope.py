"""Seeing rotary position embeddings: angles by position and frequency, rotated pairs.

RoPE turns the feature pair ``i`` of a query or key at position ``m`` by the angle
``m * w_i``, with ``w_i = theta^(-2i/d)`` (see :mod:`bsr.rope`). Three pictures make that
concrete:

* the angle ``m * w_i`` (wrapped to one turn) for every position and every pair: early
  pairs spin fast, late pairs hardly move;
* one pair's unit vector, turned once per position: an arrow going round a circle;
* the score of a query and a key that are the same vector, against their offset: it
  depends on the offset only, and wobbles less the further apart they are.

:func:`rope_figure` draws them; :func:`rope_explorer` wraps it in ipywidgets (position,
pair and theta sliders). Like :func:`bsr.viz.bands.band_explorer` it returns the static
figure when ``interactive=False`` or ipywidgets cannot be imported.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure

CURRENT_GID = "rope-current"
"""``gid`` of the line from the origin to the current rotated pair on the circle panel."""


def rope_frequencies(dim_head: int, theta: float = 10000.0) -> np.ndarray:
    """``w_i = theta^(-2i/d)`` for the ``dim_head // 2`` pairs, float64."""
    if dim_head % 2 or dim_head < 2:
        raise ValueError(f"RoPE needs an even head dimension, got {dim_head}")
    return theta ** (-np.arange(0, dim_head, 2, dtype=np.float64) / dim_head)


def rope_angles(dim_head: int, positions: Iterable[int], theta: float = 10000.0) -> np.ndarray:
    """``(len(positions), dim_head // 2)`` angles ``m * w_i`` in radians, float64."""
    positions = np.asarray(list(positions), dtype=np.float64)
    return positions[:, None] * rope_frequencies(dim_head, theta)[None, :]


def offset_scores(dim_head: int, offsets: np.ndarray, theta: float = 10000.0) -> np.ndarray:
    """``<R(m) u, R(m + offset) u> / |u|^2`` for ``u`` all ones: the mean of ``cos(offset w_i)``."""
    w = rope_frequencies(dim_head, theta)
    return np.cos(np.asarray(offsets, dtype=np.float64)[:, None] * w[None, :]).mean(axis=1)


def _positions(positions: int | Iterable[int]) -> list[int]:
    if isinstance(positions, (int, np.integer)):
        return list(range(int(positions)))
    positions = [int(p) for p in positions]
    if not positions or min(positions) < 0:
        raise ValueError("positions must be a non-empty list of positions >= 0")
    return positions


def rope_figure(
    dim_head: int = 32,
    positions: int | Iterable[int] = 8,
    theta: float = 10000.0,
    pair: int = 0,
    span: int | None = None,
) -> Figure:
    """Draw RoPE's angles for ``positions`` (an int ``n`` means ``0 .. n-1``).

    The last position is the *current* one: it is marked on the angle map, drawn bold on
    the circle (a line with ``gid`` :data:`CURRENT_GID` from the origin to
    ``(cos, sin)`` of its angle) and on the score-vs-offset curve. ``span`` fixes the
    number of positions on the horizontal axes (default: up to the largest position).
    """
    positions = _positions(positions)
    pairs = dim_head // 2
    if not 0 <= pair < pairs:
        raise ValueError(f"pair must be in 0..{pairs - 1} for dim_head={dim_head}, got {pair}")
    current = positions[-1]
    span = max(span or 0, max(positions) + 1, 2)
    w = rope_frequencies(dim_head, theta)

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    ax_map, ax_circle, ax_score = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1, 1.3]})

    # 1. Angle of every pair at every position, wrapped to one turn (a cyclic colour map).
    angles = rope_angles(dim_head, range(span), theta)  # (span, pairs)
    image = ax_map.imshow(
        np.mod(angles, 2 * np.pi).T,
        origin="lower",
        aspect="auto",
        cmap="twilight",
        vmin=0,
        vmax=2 * np.pi,
        extent=(-0.5, span - 0.5, -0.5, pairs - 0.5),
        interpolation="nearest",
    )
    ax_map.plot([current], [pair], marker="s", markersize=9, fillstyle="none", color="red")
    ax_map.set(xlabel="position m", ylabel="pair i", title=r"angle $m\,w_i$ (mod $2\pi$)")
    fig.colorbar(image, ax=ax_map, label="radians", ticks=[0, np.pi, 2 * np.pi])

    # 2. One pair's unit vector (1, 0), turned by m * w_i for each position.
    circle = np.linspace(0, 2 * np.pi, 200)
    ax_circle.plot(np.cos(circle), np.sin(circle), color="0.8", linewidth=1)
    for k, m in enumerate(positions[:-1]):
        angle = m * w[pair]
        alpha = 0.15 + 0.5 * (k + 1) / len(positions)
        ax_circle.plot([0, np.cos(angle)], [0, np.sin(angle)], color="tab:blue", alpha=alpha)
    angle = current * w[pair]
    ax_circle.plot(
        [0, np.cos(angle)], [0, np.sin(angle)], color="red", linewidth=2.5, gid=CURRENT_GID
    )
    ax_circle.plot([0, 1], [0, 0], color="black", linestyle=":", linewidth=1)
    ax_circle.set(
        xlim=(-1.15, 1.15),
        ylim=(-1.15, 1.15),
        aspect="equal",
        xlabel=f"feature {2 * pair}",
        ylabel=f"feature {2 * pair + 1}",
        title=f"pair {pair}: w = {w[pair]:.3g} rad/step\nm = {current}: angle {angle:.3g} rad",
    )

    # 3. Score of a vector with itself, `offset` positions apart.
    offsets = np.arange(span)
    ax_score.plot(offsets, offset_scores(dim_head, offsets, theta), color="tab:blue")
    ax_score.axvline(current, color="red", linewidth=1)
    ax_score.axhline(0, color="0.7", linewidth=0.8)
    ax_score.set(
        xlabel="offset n - m",
        ylabel="normalised score",
        ylim=(-1.05, 1.05),
        title=f"<R(m) u, R(n) u> depends on n - m only\n(d = {dim_head}, theta = {theta:g})",
    )
    return fig


def current_angle(fig: Figure) -> float:
    """The angle (radians, in ``(-pi, pi]``) of the current pair on a :func:`rope_figure`."""
    (line,) = [ln for ln in fig.axes[1].lines if ln.get_gid() == CURRENT_GID]
    x, y = line.get_xdata()[-1], line.get_ydata()[-1]
    return float(np.arctan2(y, x))


def rope_explorer(dim_head: int = 32, max_position: int = 64, interactive: bool = True):
    """Sliders for the position, the pair and theta, over :func:`rope_figure`.

    Returns an ``ipywidgets.VBox`` (or, without widgets, the static figure) carrying
    ``.controls`` (``position``, ``pair``, ``theta``), ``.figure`` (the current figure),
    ``.angle`` (the current angle ``m * w_i`` in radians, not wrapped), ``.frequency``
    (the current ``w_i``), ``.readout`` (a Label) and ``.image`` (the figure as PNG).
    """
    if not interactive:
        return rope_figure(dim_head, 6, pair=1, span=max_position)
    try:
        import ipywidgets as widgets
    except ImportError:
        return rope_figure(dim_head, 6, pair=1, span=max_position)

    from bsr.viz.static import figure_png

    controls = {
        "position": widgets.IntSlider(
            value=5, min=0, max=max_position - 1, description="position m"
        ),
        "pair": widgets.IntSlider(value=1, min=0, max=dim_head // 2 - 1, description="pair i"),
        "theta": widgets.FloatLogSlider(
            value=10000.0, base=10, min=0, max=6, step=0.25, description="theta"
        ),
    }
    readout = widgets.Label()
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([widgets.HBox(list(controls.values())), readout, image])
    box.controls, box.readout, box.image = controls, readout, image

    def update(_change=None):
        m, i, theta = (controls[k].value for k in ("position", "pair", "theta"))
        box.frequency = float(rope_frequencies(dim_head, theta)[i])
        box.angle = m * box.frequency
        box.figure = rope_figure(dim_head, range(m + 1), theta, i, span=max_position)
        readout.value = (
            f"w_{i} = {theta:g}^(-2*{i}/{dim_head}) = {box.frequency:.4g} rad per position; "
            f"angle at m = {m}: {box.angle:.4g} rad ({np.degrees(box.angle) % 360:.1f} deg)"
        )
        image.value = figure_png(box.figure)

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box
