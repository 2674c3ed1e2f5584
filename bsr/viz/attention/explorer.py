"""The attention explorer: the figure of :mod:`~bsr.viz.attention.figures` under widgets.

Controls for the layer, the axis, the band or frame, the head, the query and RoPE, with an
audio player of the excerpt. Weights are recorded the first time a (layer, axis, RoPE)
combination is shown; the rest only redraws. Without ipywidgets it returns the static figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from bsr.viz.attention.figures import attention_figure, head_map
from bsr.viz.attention.labels import band_labels
from bsr.viz.attention.record import AXES, band_spectrogram, model_batch, record_attention
from bsr.viz.static import with_static_png


def _defaults(spectrogram: np.ndarray) -> tuple[int, int]:
    """The loudest band and the middle frame: a sensible first view."""
    return int(spectrogram.mean(axis=1).argmax()), spectrogram.shape[1] // 2


def attention_explorer(
    model,
    audio,
    rate: int | None = None,
    interactive: bool = True,
    onsets: Sequence[int] | None = None,
):
    """Controls for the layer, the axis, the band or frame, the head, the query and RoPE.

    Weights are recorded with :func:`record_attention` the first time a (layer, axis, RoPE)
    combination is shown and kept; moving the band, frame, head or query only redraws.
    Returns an ``ipywidgets.VBox`` (or, without widgets, the static figure of the first
    layer's time attention in the loudest band) carrying ``.controls`` (``layer``,
    ``axis``, ``index``, ``head``, ``query``, ``rope``), ``.weights`` (the recorded weights
    now shown), ``.shown`` (the map drawn), ``.figure``, ``.png`` and ``.image`` (the
    figure as PNG bytes and the image widget showing them), ``.readout`` and ``.audio`` (a
    player of the excerpt at ``rate``, default the model's sample rate). ``rope`` switches
    RoPE on or off for the recording only. Band axes are labelled in Hz and
    ``onsets`` (frames, from :func:`onset_frames`) are marked on the frame axes.

    The box's display carries, besides the widgets, a PNG of the figure it shows at that
    moment: without a widget front end that static figure is what one sees.
    """
    excerpt = _Excerpt.of(model, audio, onsets)
    widgets = _ipywidgets() if interactive else None
    if widgets is None:
        weights = record_attention(model, audio, 0, "time")
        return excerpt.figure(weights, "time", excerpt.loudest, None, excerpt.middle, "layer 0")
    controls = _explorer_controls(widgets, model, excerpt)
    box = _explorer_box(widgets, controls, model, audio, rate or model.config.sample_rate)
    redraw = _Redraw(box, controls, model, audio, excerpt)
    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return box


def _ipywidgets():
    """The ipywidgets module, or None where it cannot be imported (the explorers fall back)."""
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


@dataclass(frozen=True)
class _Excerpt:
    """What the explorer shows beside the weights: the excerpt's band energies ``(N, T)``,
    a first view (the loudest band, the middle frame), the Hz labels and the onsets."""

    spectrogram: np.ndarray
    loudest: int
    middle: int
    labels: list[str]
    onsets: list[int] | None

    @classmethod
    def of(cls, model, audio, onsets: Sequence[int] | None) -> _Excerpt:
        spectrogram = band_spectrogram(model, audio)
        frames = spectrogram.shape[1]
        if onsets is not None:
            onsets = [int(t) for t in onsets if 0 <= int(t) < frames]
        loudest, middle = _defaults(spectrogram)
        return cls(spectrogram, loudest, middle, band_labels(model), onsets)

    def figure(self, weights, axis: str, index: int, head, query: int, title: str) -> Figure:
        return attention_figure(
            weights,
            axis,
            index,
            head,
            spectrogram=self.spectrogram,
            query=query,
            title=title,
            band_labels=self.labels,
            onsets=self.onsets,
        )


def _explorer_controls(widgets, model, excerpt: _Excerpt) -> dict:
    """The explorer's widgets, by name: layer, axis, index, head, query, rope."""
    bands, frames = excerpt.spectrogram.shape
    heads = model.config.heads
    return {
        "layer": widgets.IntSlider(value=0, min=0, max=len(model.layers) - 1, description="layer"),
        "axis": widgets.ToggleButtons(options=list(AXES), value="time", description="axis"),
        "index": widgets.IntSlider(value=excerpt.loudest, min=0, max=bands - 1, description="band"),
        "head": widgets.Dropdown(
            options=[("mean", "mean")] + [(f"head {h}", h) for h in range(heads)],
            value="mean",
            description="head",
        ),
        "query": widgets.IntSlider(
            value=excerpt.middle, min=0, max=frames - 1, description="query frame"
        ),
        "rope": widgets.Checkbox(value=bool(model.use_rope), description="RoPE", indent=False),
    }


def _explorer_box(widgets, controls: dict, model, audio, rate: int):
    """The controls in two rows, an audio player of the excerpt, a readout and the figure."""
    from bsr.viz.mixer import wav_bytes

    excerpt = model_batch(model, audio)[0].T.cpu().numpy()  # (samples, C)
    player = widgets.Audio(value=wav_bytes(excerpt, rate), format="wav", autoplay=False)
    readout = widgets.Label()
    image = widgets.Image(value=b"", format="png")
    rows = [
        widgets.HBox([controls["layer"], controls["axis"], controls["rope"]]),
        widgets.HBox([controls["index"], controls["query"], controls["head"]]),
    ]
    box = with_static_png(widgets.VBox)([*rows, player, readout, image])
    box.controls, box.audio, box.readout, box.image = controls, player, readout, image
    return box


class _Redraw:
    """What a change of any control does: follow the axis, record (or reuse) weights, draw.

    Weights are recorded the first time a (layer, axis, RoPE) combination is shown and
    kept (a few of them: time maps are large); the band, frame, head and query only redraw.
    """

    def __init__(self, box, controls: dict, model, audio, excerpt: _Excerpt):
        self.box, self.controls, self.model, self.audio = box, controls, model, audio
        self.excerpt = excerpt
        self.cache: dict[tuple, torch.Tensor] = {}
        self.axis, self.busy = "time", False

    def __call__(self, _change=None) -> None:
        if self.busy:  # a control moved by follow_axis: one redraw at the end is enough
            return
        axis = self.controls["axis"].value
        self.follow_axis(axis)
        layer, index, head, query, rope = (
            self.controls[k].value for k in ("layer", "index", "head", "query", "rope")
        )
        box = self.box
        box.weights = self.weights(layer, axis, rope)
        box.shown = head_map(box.weights, index, head)
        title = f"layer {layer}, {axis} attention, RoPE {'on' if rope else 'off'}"
        box.figure = self.excerpt.figure(box.weights, axis, index, head, query, title)
        box.readout.value = _readout(box.shown, query, axis)
        from bsr.viz.static import figure_png

        box.png = figure_png(box.figure)
        box.image.value = box.png

    def follow_axis(self, axis: str) -> None:
        """On a change of axis, the band and frame controls swap roles and ranges."""
        if axis == self.axis:
            return
        self.axis, self.busy = axis, True
        try:
            bands, frames = self.excerpt.spectrogram.shape
            loudest, middle = self.excerpt.loudest, self.excerpt.middle
            index, query = self.controls["index"], self.controls["query"]
            if axis == "time":
                _set_range(index, bands - 1, loudest, "band")
                _set_range(query, frames - 1, middle, "query frame")
            else:
                _set_range(index, frames - 1, middle, "frame")
                _set_range(query, bands - 1, loudest, "query band")
        finally:
            self.busy = False

    def weights(self, layer: int, axis: str, rope: bool) -> torch.Tensor:
        key = (layer, axis, rope)
        if key not in self.cache:
            if len(self.cache) >= 4:  # time maps are large: keep only a few
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = record_attention(self.model, self.audio, layer, axis, use_rope=rope)
        return self.cache[key]


def _set_range(slider, top: int, value: int, description: str) -> None:
    """Give ``slider`` a new range and value without ever holding an out-of-range value."""
    slider.max = max(top, slider.value)
    slider.value = value
    slider.max = top
    slider.description = description


def _readout(shown: np.ndarray, query: int, axis: str) -> str:
    """One line on the query's row of the ``(seq, seq)`` map ``shown``."""
    offsets = np.abs(np.arange(shown.shape[0]) - query)  # |key - query|
    distance = float(offsets @ shown[query])
    unit = "frames" if axis == "time" else "bands"
    return (
        f"query {query} puts weight {shown[query, query]:.3f} on itself (uniform: "
        f"{1 / len(shown):.3f}) and looks {distance:.1f} {unit} away on average "
        f"(uniform: {offsets.mean():.1f})"
    )
