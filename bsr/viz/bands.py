"""Seeing band layouts: which frequency bins each band owns, over a spectrogram.

* :func:`layout_for` builds the layout to look at: ``"paper"`` (the 62-band Hz rule),
  ``"mel"`` (overlapping bands from a mel filterbank) or ``"custom"`` (the paper's bands
  merged ``merge`` at a time, so fewer and wider bands), for any ``n_fft``.
* :func:`band_layout_figure` draws a layout: one rectangle per band (band index across,
  frequency up), and, given a spectrogram, the band edges over it.
* :func:`band_explorer` wraps both in ipywidgets to switch layout, merge factor, number of
  mel bands and ``n_fft``; like :func:`bsr.viz.mixer.stem_mixer` it returns the static
  figure when ``interactive=False`` or ipywidgets cannot be imported, and its display
  carries a PNG of the figure for front ends without widgets.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bsr.bands import BandLayout, make_layout, paper_band_sizes
from bsr.errors import BsrError
from bsr.viz.static import ShownFigure, figure_png

BAND_GID = "band"
"""``gid`` of the band rectangles, so code can find them: ``[p for p in ax.patches if
p.get_gid() == BAND_GID]``."""


def layout_for(
    kind: str = "paper",
    sample_rate: int = 44100,
    n_fft: int = 2048,
    merge: int = 1,
    n_mels: int = 60,
) -> BandLayout:
    """A validated band layout: ``"paper"``, ``"mel"`` or ``"custom"`` (paper merged)."""
    if kind == "custom":
        if merge < 1:
            raise BsrError(f"merge must be >= 1, got {merge}")
        sizes = paper_band_sizes(sample_rate, n_fft)
        merged = [sum(sizes[i : i + merge]) for i in range(0, len(sizes), merge)]
        return make_layout(merged, sample_rate, n_fft)
    if kind == "mel":
        return make_layout("mel", sample_rate, n_fft, n_mels)
    if kind == "paper":
        return make_layout("paper", sample_rate, n_fft)
    raise BsrError(f"unknown layout kind {kind!r}: use 'paper', 'mel' or 'custom'")


def spectrogram_db(audio: np.ndarray, n_fft: int, hop: int | None = None) -> np.ndarray:
    """Log-magnitude (dB) spectrogram of mono audio ``(samples,)``: ``(n_fft//2+1, frames)``."""
    x = torch.as_tensor(np.asarray(audio, np.float32))
    spec = torch.stft(
        x, n_fft, hop or n_fft // 4, window=torch.hann_window(n_fft), return_complex=True
    )
    return (20 * torch.log10(spec.abs() + 1e-6)).numpy()


def band_layout_figure(
    layout: BandLayout,
    spectrogram: np.ndarray | None = None,
    sample_rate: int = 44100,
    hop: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw ``layout``: one rectangle per band, and the band edges over ``spectrogram``.

    ``spectrogram`` is ``(n_bins, frames)`` in dB (e.g. :func:`spectrogram_db`) with
    ``n_bins == layout.n_bins``; ``hop`` (samples) only labels its time axis. Frequencies
    are drawn on a square-root axis, which spreads out the narrow low bands without the
    trouble a log axis has with the 0 Hz bin. The band panel is the figure's last axes;
    its band rectangles have ``gid`` :data:`BAND_GID`.
    """
    n_bins = layout.n_bins
    n_fft = 2 * (n_bins - 1)
    hz = sample_rate / n_fft  # width of one bin
    top = n_bins * hz
    panels = 1 if spectrogram is None else 2
    widths = [1] if spectrogram is None else [1.4, 1]
    fig = ShownFigure(figsize=(5.5 * panels, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels, gridspec_kw={"width_ratios": widths}))
    sqrt_axis = {"functions": (lambda f: np.sqrt(np.maximum(f, 0)), np.square)}
    ticks = [f for f in (0, 250, 1000, 2500, 5000, 10000, 15000, 20000, 40000) if f <= top]

    if spectrogram is not None:
        if spectrogram.shape[0] != n_bins:
            raise BsrError(
                f"the spectrogram has {spectrogram.shape[0]} bins but the layout {n_bins}: "
                "compute it with the layout's n_fft"
            )
        ax = axes[0]
        frames = spectrogram.shape[1]
        seconds = frames * (hop or n_fft // 4) / sample_rate
        peak = float(np.max(spectrogram))
        ax.imshow(
            spectrogram,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, seconds, -hz / 2, top - hz / 2),
            vmin=peak - 80,
            vmax=peak,
        )
        ax.set_yscale("function", **sqrt_axis)
        ax.set_yticks(ticks)
        starts = sorted({band[0] for band in layout.bins})
        for start in starts[1:]:
            ax.axhline((start - 0.5) * hz, color="white", linewidth=0.5, alpha=0.6)
        ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title="band edges over the spectrogram")
        ax.set_ylim(0, top)

    ax = axes[-1]
    colours = ("tab:blue", "tab:orange")
    for b, band in enumerate(layout.bins):
        low, high = (band[0] - 0.5) * hz, (band[-1] + 0.5) * hz
        rect = Rectangle(
            (b - 0.4, max(low, 0)),
            0.8,
            high - max(low, 0),
            gid=BAND_GID,
            facecolor=colours[b % 2],
            edgecolor="black",
            linewidth=0.3,
        )
        ax.add_patch(rect)
    ax.set_xlim(-1, layout.num_bands)
    ax.set_ylim(0, top)
    ax.set_yscale("function", **sqrt_axis)
    ax.set_yticks(ticks)
    kind = "overlapping" if layout.overlapping else "non-overlapping"
    ax.set(
        xlabel="band",
        ylabel="frequency (Hz)",
        title=f"{layout.num_bands} {kind} bands, {n_bins} bins",
    )
    if title:
        fig.suptitle(title)
    return fig


def band_patches(fig: Figure) -> list[Rectangle]:
    """The band rectangles of a :func:`band_layout_figure`."""
    return [p for p in fig.axes[-1].patches if p.get_gid() == BAND_GID]


def band_explorer(
    audio: np.ndarray | None = None, sample_rate: int = 44100, interactive: bool = True
):
    """Switch between band layouts and FFT sizes, over the spectrogram of mono ``audio``.

    Returns an ``ipywidgets.VBox`` (or, without widgets, the paper layout's static figure)
    with ``.controls`` (``kind``, ``merge``, ``n_mels``, ``n_fft``), ``.band_layout()``
    (the current :class:`BandLayout`; ``.layout`` is the widget's own CSS layout),
    ``.figure`` (the current figure), ``.png`` and ``.image`` (the figure as PNG bytes and
    the image widget showing them) and ``.summary`` (a Label with the band count).

    The box's display carries, besides the widgets, a PNG of the figure it shows at that
    moment: without a widget front end that static figure is what one sees.
    """

    def draw(kind: str, merge: int, n_mels: int, n_fft: int) -> tuple[BandLayout, Figure]:
        layout = layout_for(kind, sample_rate, n_fft, merge, n_mels)
        spec = None if audio is None else spectrogram_db(audio, n_fft)
        return layout, band_layout_figure(layout, spec, sample_rate, title=f"n_fft = {n_fft}")

    if not interactive:
        return draw("paper", 1, 60, 2048)[1]
    try:
        import ipywidgets as widgets
    except ImportError:
        return draw("paper", 1, 60, 2048)[1]

    controls = {
        "kind": widgets.Dropdown(
            options=["paper", "mel", "custom"], value="paper", description="layout"
        ),
        "merge": widgets.IntSlider(value=2, min=1, max=8, description="merge (custom)"),
        "n_mels": widgets.IntSlider(value=60, min=8, max=128, step=4, description="mel bands"),
        "n_fft": widgets.Dropdown(options=[1024, 2048, 4096], value=2048, description="n_fft"),
    }
    from bsr.viz.static import with_static_png

    summary = widgets.Label()
    image = widgets.Image(value=b"", format="png")
    box = with_static_png(widgets.VBox)(
        [
            widgets.HBox(list(controls.values())[:2]),
            widgets.HBox(list(controls.values())[2:]),
            summary,
            image,
        ]
    )
    box.controls, box.summary, box.image = controls, summary, image

    def update(_change=None):
        values = {name: c.value for name, c in controls.items()}
        box.current, box.figure = draw(**values)
        layout = box.current
        summary.value = (
            f"{layout.num_bands} bands, sizes {min(layout.sizes)}..{max(layout.sizes)} bins, "
            f"{'overlapping' if layout.overlapping else 'non-overlapping'}"
        )
        box.png = figure_png(box.figure)
        image.value = box.png

    box.band_layout = lambda: box.current
    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box
