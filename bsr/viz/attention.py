"""Looking inside a BS-RoFormer: the attention weights of its time and band transformers.

Every RoFormer block attends twice (see :mod:`bsr.roformer`):

* over **time**: each band of each example is one sequence of T frames, so a layer's
  weights are ``(B*N, heads, T, T)``: for every band, which frames each frame looks at;
* over **bands**: each frame of each example is one sequence of N bands, so the weights are
  ``(B*T, heads, N, N)``: for every frame, which bands each band looks at.

Rows are queries and columns keys; every row sums to one. The sequences are ordered
example-major (sequence ``b*N + n`` is band ``n`` of example ``b``), so for one example,
the usual case here, the first axis is simply the band (time axis) or the frame (band axis).

* :func:`record_attention` runs the model once with ``Attention.keep_weights`` switched on
  for one attention module and returns its weights; the model is left as it was found;
* :func:`attention_figure` draws one sequence's map (per head or averaged over heads), one
  query's row of it, and the excerpt's band spectrogram with the sequence marked;
* :func:`mean_attention_distance`: how far, in positions, a query looks on average;
* :func:`attention_explorer` wraps the figure in ipywidgets (layer, axis, band or frame,
  head or mean, query, RoPE on/off) with an audio player; like the other explorers it
  returns the static figure when ``interactive=False`` or ipywidgets cannot be imported.

This module reads the model; nothing in the model imports it.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from bsr.viz.masks import as_model_input
from bsr.viz.mixer import ShownFigure

AXES = ("time", "band")
MAP_GID, QUERY_GID = "attention-map", "attention-query"
"""``gid`` of the attention image and of the current query's line in :func:`attention_figure`."""


def _check_axis(axis: str) -> str:
    if axis not in AXES:
        raise ValueError(f"axis must be 'time' or 'band', got {axis!r}")
    return axis


def attention_module(model, layer: int = 0, axis: str = "time", sublayer: int = 0):
    """The :class:`bsr.attention.Attention` of block ``layer``'s time or band transformer.

    ``sublayer`` picks the Transformer layer inside that transformer (the paper has one).
    """
    _check_axis(axis)
    if not 0 <= layer < len(model.layers):
        raise ValueError(f"layer must be in 0..{len(model.layers) - 1}, got {layer}")
    block = model.layers[layer]
    transformer = block.time_transformer if axis == "time" else block.band_transformer
    if not 0 <= sublayer < len(transformer.layers):
        raise ValueError(f"sublayer must be in 0..{len(transformer.layers) - 1}, got {sublayer}")
    return transformer.layers[sublayer].attention


def _model_batch(model, audio) -> torch.Tensor:
    """``(B, C, samples)`` float32: a batch as it is, one example as :func:`as_model_input`."""
    if torch.is_tensor(audio) and audio.dim() == 3 and audio.shape[1] == model.channels:
        return audio.float()
    return as_model_input(model, audio)


@torch.no_grad()
def record_attention(
    model,
    audio,
    layer: int = 0,
    axis: str = "time",
    sublayer: int = 0,
    use_rope: bool | None = None,
) -> torch.Tensor:
    """The attention weights of one attention module for ``audio``, float32 on the CPU.

    ``audio`` is one example (``(C, samples)``, ``(1, C, samples)`` or numpy ``(samples,
    C)``) or a batch ``(B, C, samples)``. Returns, with N bands and T frames,

    * ``axis="time"``: ``(B*N, heads, T, T)``, i.e. ``(bands, heads, frames, frames)`` for
      one example: ``w[n, h, i, j]`` is how much frame ``i`` of band ``n`` attends to frame ``j``;
    * ``axis="band"``: ``(B*T, heads, N, N)``, i.e. ``(frames, heads, bands, bands)``.

    The model runs once, in eval mode and without gradients, with ``keep_weights`` switched
    on for the chosen module only (the explicit attention path). ``use_rope`` (if not None)
    overrides ``model.use_rope`` for this run. The module's ``keep_weights`` and
    ``last_weights``, ``model.use_rope`` and the training mode are restored afterwards.
    """
    module = attention_module(model, layer, axis, sublayer)
    device = next(model.parameters()).device
    x = _model_batch(model, audio).to(device)
    saved = module.keep_weights, module.last_weights, model.use_rope, model.training
    model.eval()
    if use_rope is not None:
        model.use_rope = bool(use_rope)
    module.keep_weights = True
    try:
        model.estimate_masks(model.stft(x))
        weights = module.last_weights
    finally:
        module.keep_weights, module.last_weights, model.use_rope = saved[:3]
        model.train(saved[3])
    return weights.float().cpu()


@torch.no_grad()
def band_spectrogram(model, audio) -> np.ndarray:
    """``(N, T)`` energy of every band in every frame, in dB (channels averaged).

    The same frames and bands the attention works on, so it lines up with the maps.
    """
    device = next(model.parameters()).device
    spec = model.stft(_model_batch(model, audio)[:1].to(device))[0]  # (C, F, T) complex
    power = spec.abs().square().mean(0)  # (F, T)
    rows = [power[list(bins)].mean(0) for bins in model.layout.bins]
    return (10 * torch.log10(torch.stack(rows) + 1e-10)).cpu().numpy()


def mean_attention_distance(weights) -> torch.Tensor:
    """How far a query looks on average, per head, in positions (float64 ``(heads,)``).

    For weights ``(sequences, heads, seq, seq)`` this is ``sum_j w[s, h, i, j] * |i - j|``,
    averaged over the queries ``i`` and the sequences ``s``. Uniform attention over a long
    sequence gives about ``seq / 3``; attending only to oneself gives 0.
    """
    w = torch.as_tensor(weights).double()
    if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"expected weights (sequences, heads, seq, seq), got {tuple(w.shape)}")
    position = torch.arange(w.shape[-1], dtype=torch.float64)
    distance = (position[:, None] - position[None, :]).abs()  # (query, key)
    return (w * distance).sum(-1).mean(dim=(0, 2))


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


def attention_figure(
    weights,
    axis: str,
    index: int,
    head: int | str | None = None,
    spectrogram: np.ndarray | None = None,
    query: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the attention of sequence ``index`` of ``weights`` (from :func:`record_attention`).

    ``axis="time"``: ``index`` is a band and the map is frames x frames; ``axis="band"``:
    ``index`` is a frame and the map is bands x bands. Rows are queries, columns keys.
    ``head``: one head, or None / ``"mean"`` for the mean over heads. The colour scale is
    a square root, so that small weights stay visible; the image (gid :data:`MAP_GID`)
    holds the weights themselves.

    ``query`` adds a panel with that query's row (a line with gid :data:`QUERY_GID`):
    where that frame (or band) looks. ``spectrogram`` (``(N, T)``, from
    :func:`band_spectrogram`) adds the excerpt's band energies with the sequence and the
    query marked.
    """
    _check_axis(axis)
    shown = head_map(weights, index, head)
    size = shown.shape[0]
    if query is not None and not 0 <= query < size:
        raise ValueError(f"query must be in 0..{size - 1}, got {query}")
    unit, other = ("frame", "band") if axis == "time" else ("band", "frame")
    panels = 1 + (query is not None) + (spectrogram is not None)
    fig = ShownFigure(figsize=(4.6 * panels + 0.8, 4.2), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, panels)))

    ax = axes.pop(0)
    image = ax.imshow(
        shown,
        cmap="magma",
        norm=PowerNorm(0.5, vmin=0.0, vmax=max(float(shown.max()), 1e-6)),
        interpolation="nearest",
        aspect="auto",
    )
    image.set_gid(MAP_GID)
    fig.colorbar(image, ax=ax, label="weight")
    which = "mean over heads" if head is None or head == "mean" else f"head {int(head)}"
    ax.set(
        xlabel=f"key {unit}",
        ylabel=f"query {unit}",
        title=f"{axis} attention of {other} {index} ({which})",
    )
    if query is not None:
        ax.axhline(query, color="cyan", linewidth=0.8)
        ax = axes.pop(0)
        row = shown[query]
        ax.plot(np.arange(size), row, color="tab:purple", gid=QUERY_GID)
        ax.axvline(query, color="cyan", linewidth=0.8)
        ax.axhline(1.0 / size, color="0.6", linestyle=":", linewidth=1, label="uniform")
        ax.set(
            xlabel=f"key {unit}",
            ylabel="weight",
            xlim=(-0.5, size - 0.5),
            title=f"where {unit} {query} looks",
        )
        ax.legend(loc="upper right")

    if spectrogram is not None:
        ax = axes.pop(0)
        spectrogram = np.asarray(spectrogram)
        top = float(spectrogram.max())
        ax.imshow(
            spectrogram,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            vmin=top - 80.0,
            vmax=top,
            interpolation="nearest",
        )
        band, frame = (index, query) if axis == "time" else (query, index)
        if band is not None:
            ax.axhline(band, color="red", linewidth=1)
        if frame is not None:
            ax.axvline(frame, color="red" if axis == "band" else "cyan", linewidth=1)
        ax.set(xlabel="frame", ylabel="band", title="band energy (dB) of the excerpt")
    if title:
        fig.suptitle(title)
    return fig


def shown_map(fig: Figure) -> np.ndarray:
    """The weights drawn as the attention image of an :func:`attention_figure`."""
    (image,) = [im for ax in fig.axes for im in ax.images if im.get_gid() == MAP_GID]
    return np.asarray(image.get_array())


def query_line(fig: Figure) -> np.ndarray:
    """The query row drawn on an :func:`attention_figure` made with ``query``."""
    (line,) = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == QUERY_GID]
    return np.asarray(line.get_ydata())


def _defaults(spectrogram: np.ndarray) -> tuple[int, int]:
    """The loudest band and the middle frame: a sensible first view."""
    return int(spectrogram.mean(axis=1).argmax()), spectrogram.shape[1] // 2


def attention_explorer(model, audio, rate: int | None = None, interactive: bool = True):
    """Controls for the layer, the axis, the band or frame, the head, the query and RoPE.

    Weights are recorded with :func:`record_attention` the first time a (layer, axis, RoPE)
    combination is shown and kept; moving the band, frame, head or query only redraws.
    Returns an ``ipywidgets.VBox`` (or, without widgets, the static figure of the first
    layer's time attention in the loudest band) carrying ``.controls`` (``layer``,
    ``axis``, ``index``, ``head``, ``query``, ``rope``), ``.weights`` (the recorded weights
    now shown), ``.shown`` (the map drawn), ``.figure``, ``.image`` (PNG), ``.readout`` and
    ``.audio`` (a player of the excerpt at ``rate``, default the model's sample rate).
    ``rope`` switches ``model.use_rope`` for the recording only.
    """
    spectrogram = band_spectrogram(model, audio)
    bands, frames = spectrogram.shape
    loudest, middle = _defaults(spectrogram)

    def static():
        weights = record_attention(model, audio, 0, "time")
        return attention_figure(
            weights, "time", loudest, spectrogram=spectrogram, query=middle, title="layer 0"
        )

    if not interactive:
        return static()
    try:
        import ipywidgets as widgets
    except ImportError:
        return static()

    from bsr.viz.mixer import figure_png, wav_bytes

    rate = rate or model.config.sample_rate
    heads = model.config.heads
    controls = {
        "layer": widgets.IntSlider(value=0, min=0, max=len(model.layers) - 1, description="layer"),
        "axis": widgets.ToggleButtons(options=list(AXES), value="time", description="axis"),
        "index": widgets.IntSlider(value=loudest, min=0, max=bands - 1, description="band"),
        "head": widgets.Dropdown(
            options=[("mean", "mean")] + [(f"head {h}", h) for h in range(heads)],
            value="mean",
            description="head",
        ),
        "query": widgets.IntSlider(value=middle, min=0, max=frames - 1, description="query frame"),
        "rope": widgets.Checkbox(value=bool(model.use_rope), description="RoPE", indent=False),
    }
    excerpt = _model_batch(model, audio)[0].T.cpu().numpy()  # (samples, C)
    player = widgets.Audio(value=wav_bytes(excerpt, rate), format="wav", autoplay=False)
    readout = widgets.Label()
    image = widgets.Image(value=b"", format="png")
    rows = [
        widgets.HBox([controls["layer"], controls["axis"], controls["rope"]]),
        widgets.HBox([controls["index"], controls["query"], controls["head"]]),
    ]
    box = widgets.VBox([*rows, player, readout, image])
    box.controls, box.audio, box.readout, box.image = controls, player, readout, image
    cache: dict[tuple, torch.Tensor] = {}
    state = {"axis": "time", "busy": False}

    def weights_for(layer: int, axis: str, rope: bool) -> torch.Tensor:
        key = (layer, axis, rope)
        if key not in cache:
            if len(cache) >= 4:  # time maps are large: keep only a few
                cache.pop(next(iter(cache)))
            cache[key] = record_attention(model, audio, layer, axis, use_rope=rope)
        return cache[key]

    def set_range(slider, top: int, value: int, description: str) -> None:
        slider.max = max(top, slider.value)
        slider.value = value
        slider.max = top
        slider.description = description

    def update(_change=None):
        if state["busy"]:
            return
        state["busy"] = True
        try:
            axis = controls["axis"].value
            if axis != state["axis"]:  # the band and frame controls swap roles
                state["axis"] = axis
                index, query = controls["index"], controls["query"]
                if axis == "time":
                    set_range(index, bands - 1, loudest, "band")
                    set_range(query, frames - 1, middle, "query frame")
                else:
                    set_range(index, frames - 1, middle, "frame")
                    set_range(query, bands - 1, loudest, "query band")
        finally:
            state["busy"] = False
        layer, index, head, query, rope = (
            controls[k].value for k in ("layer", "index", "head", "query", "rope")
        )
        box.weights = weights_for(layer, axis, rope)
        box.shown = head_map(box.weights, index, head)
        state_text = "on" if rope else "off"
        box.figure = attention_figure(
            box.weights,
            axis,
            index,
            head,
            spectrogram=spectrogram,
            query=query,
            title=f"layer {layer}, {axis} attention, RoPE {state_text}",
        )
        distance = float(np.abs(np.arange(box.shown.shape[0]) - query) @ box.shown[query])
        unit = "frames" if axis == "time" else "bands"
        readout.value = (
            f"query {query} puts weight {box.shown[query, query]:.3f} on itself and looks "
            f"{distance:.1f} {unit} away on average (uniform would be {1 / len(box.shown):.3f})"
        )
        image.value = figure_png(box.figure)

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box
