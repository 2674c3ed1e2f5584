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
* :func:`band_edges_hz` / :func:`band_labels` turn band indices into Hz ranges, and
  :func:`onset_frames` finds note onsets (librosa) in STFT frames of the model's hop, so
  that the axes of the maps can be read against the music;
* :func:`attention_figure` draws one sequence's map (per head or averaged over heads), one
  query's row of it, and the excerpt's band spectrogram with the sequence marked;
  :func:`attention_panels` draws maps side by side on one shared colour scale;
* :func:`mean_attention_distance`: how far, in positions, a query looks on average;
  :func:`layer_attention_distances` measures it for every block of a model,
  :func:`uniform_attention_distance` gives the value of flat attention and
  :func:`distance_table` prints them side by side;
* :func:`frame_similarity`: how alike the frames of the excerpt are, before any model, and
  :func:`mean_by_offset`: the mean of such a map (or of attention) at each frame offset;
* :func:`attention_explorer` wraps the figure in ipywidgets (layer, axis, band or frame,
  head or mean, query, RoPE on/off) with an audio player; like the other explorers it
  returns the static figure when ``interactive=False`` or ipywidgets cannot be imported,
  and its widgets carry a PNG of the first view for front ends without widgets.

This module reads the model; nothing in the model imports it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from bsr.viz.masks import as_model_input
from bsr.viz.mixer import ShownFigure

AXES = ("time", "band")
MAP_GID, QUERY_GID = "attention-map", "attention-query"
"""``gid`` of the attention image and of the current query's line in :func:`attention_figure`."""
PANEL_GID = "attention-panel"
"""``gid`` of every map drawn by :func:`attention_panels`."""
ONSET_COLOUR = "tab:green"


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


def band_edges_hz(layout, sample_rate: int, n_fft: int) -> np.ndarray:
    """``(N, 2)`` lower and upper edge in Hz of every band of ``layout`` (a BandLayout).

    Bin ``k`` is centred on ``k * sample_rate / n_fft`` and reaches half a bin either side,
    so a band holding bins ``a..b`` covers ``(a - 1/2, b + 1/2)`` bins, cut to 0 and the
    Nyquist frequency. Neighbouring bands of a non-overlapping layout share their edge.
    """
    hz = sample_rate / n_fft
    nyquist = sample_rate / 2
    return np.array(
        [(max(0.0, (min(b) - 0.5) * hz), min(nyquist, (max(b) + 0.5) * hz)) for b in layout.bins]
    )


def _hz_text(low: float, high: float) -> str:
    if high < 1000:
        return f"{low:.0f}-{high:.0f} Hz"
    digits = 2 if high - low < 150 else 1  # narrow bands: enough digits to tell the edges apart
    if low >= 1000:
        return f"{low / 1000:.{digits}f}-{high / 1000:.{digits}f} kHz"
    return f"{low:.0f} Hz-{high / 1000:.{digits}f} kHz"


def band_labels(model) -> list[str]:
    """One Hz range per band of ``model`` ("108-237 Hz", "1.4-2.2 kHz"), for axis labels."""
    cfg = model.config
    edges = band_edges_hz(model.layout, cfg.sample_rate, cfg.n_fft)
    return [_hz_text(low, high) for low, high in edges]


def onset_frames(audio, sample_rate: int, hop_length: int, frames: int | None = None) -> np.ndarray:
    """Note onsets in ``audio`` as STFT frame indices of hop ``hop_length`` (int ``(onsets,)``).

    ``audio``: ``(samples,)``, numpy ``(samples, C)`` or a tensor ``(C, samples)`` /
    ``(1, C, samples)``; channels are averaged. :func:`librosa.onset.onset_detect` (its
    default detector: spectral flux of a mel spectrogram) finds the onsets in seconds, on
    the model's hop; frame ``t`` of a centred STFT is centred on sample ``t * hop_length``,
    so an onset at ``s`` seconds is frame ``round(s * sample_rate / hop_length)``.
    ``frames`` (if given) drops onsets at or past that frame. The first call in a fresh
    environment is slow (librosa compiles its numba code once, then caches it).
    """
    import librosa  # slow to import: only here

    x = audio.detach().cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:  # (1, C, samples)
        x = x[0]
    if x.ndim == 2:  # (C, samples) from torch, (samples, C) from numpy
        x = x.mean(axis=0) if torch.is_tensor(audio) else x.mean(axis=1)
    seconds = librosa.onset.onset_detect(y=x, sr=sample_rate, hop_length=hop_length, units="time")
    found = np.unique(np.round(np.asarray(seconds) * sample_rate / hop_length).astype(int))
    if frames is not None:
        found = found[found < frames]
    return found


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
    spec = model.stft(_model_batch(model, audio)[:1].to(device))[0].abs().double().cpu()
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
    _check_axis(axis)
    shown = head_map(weights, index, head)
    size = shown.shape[0]
    if query is not None and not 0 <= query < size:
        raise ValueError(f"query must be in 0..{size - 1}, got {query}")
    if band_labels is not None and axis == "band" and len(band_labels) != size:
        raise ValueError(f"band_labels has {len(band_labels)} labels for {size} bands")
    unit, other = ("frame", "band") if axis == "time" else ("band", "frame")
    panels = 1 + (query is not None) + (spectrogram is not None)
    fig = ShownFigure(figsize=(4.6 * panels + 0.8, 4.4), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, panels)))

    ax = axes.pop(0)
    image = ax.imshow(
        shown,
        cmap="magma",
        norm=_map_norm(shown.max() if vmax is None else vmax),
        interpolation="nearest",
        aspect="auto",
    )
    image.set_gid(MAP_GID)
    fig.colorbar(image, ax=ax, label="weight (square-root scale)")
    which = "mean over heads" if head is None or head == "mean" else f"head {int(head)}"
    if axis == "time" and band_labels is not None:
        name = f"band {index} ({band_labels[index]})"
    else:
        name = f"{other} {index}"
    ax.set_title(f"{axis} attention of {name}\n{which}", fontsize=10, pad=8)
    _map_axes(ax, axis, band_labels, onsets)
    if query is not None:
        ax.axhline(query, color="cyan", linewidth=0.8)
        ax = axes.pop(0)
        row = shown[query]
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

    if spectrogram is not None:
        ax = axes.pop(0)
        spectrogram = np.asarray(spectrogram)
        top = float(spectrogram.max())
        energy = ax.imshow(
            spectrogram,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            vmin=top - 80.0,
            vmax=top,
            interpolation="nearest",
        )
        fig.colorbar(energy, ax=ax, label="dB")
        band, frame = (index, query) if axis == "time" else (query, index)
        if band is not None:
            ax.axhline(band, color="red", linewidth=1)
        if frame is not None:
            ax.axvline(frame, color="red" if axis == "band" else "cyan", linewidth=1)
        ax.set(xlabel="frame", ylabel="band")
        ax.set_title("band energy of the excerpt", fontsize=10, pad=8)
        _label_bands(ax, band_labels, "y")
        _mark_onsets(ax, onsets, "x")
    if title:
        fig.suptitle(title)
    return fig


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
    _check_axis(axis)
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


def _defaults(spectrogram: np.ndarray) -> tuple[int, int]:
    """The loudest band and the middle frame: a sensible first view."""
    return int(spectrogram.mean(axis=1).argmax()), spectrogram.shape[1] // 2


def _with_static_png(box_class):
    """A subclass of an ipywidgets box whose display also carries a PNG of its figure.

    Jupyter front ends that render widgets show the widgets; anything else (nbviewer, a
    notebook executed headless and converted, a front end without the widget manager)
    falls back to the ``image/png`` of the figure the box showed when it was displayed.
    """

    class StaticPngBox(box_class):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            png = getattr(self, "png", b"")
            if png and isinstance(bundle, dict):
                bundle["image/png"] = base64.b64encode(png).decode("ascii")
            return bundle

    return StaticPngBox


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
    ``model.use_rope`` for the recording only. Band axes are labelled in Hz and
    ``onsets`` (frames, from :func:`onset_frames`) are marked on the frame axes.

    The box's display carries, besides the widgets, a PNG of the figure it shows at that
    moment: without a widget front end that static figure is what one sees.
    """
    spectrogram = band_spectrogram(model, audio)
    bands, frames = spectrogram.shape
    loudest, middle = _defaults(spectrogram)
    labels = band_labels(model)
    onsets = None if onsets is None else [int(t) for t in onsets if 0 <= int(t) < frames]

    def static():
        weights = record_attention(model, audio, 0, "time")
        return attention_figure(
            weights,
            "time",
            loudest,
            spectrogram=spectrogram,
            query=middle,
            title="layer 0",
            band_labels=labels,
            onsets=onsets,
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
    box = _with_static_png(widgets.VBox)([*rows, player, readout, image])
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
            band_labels=labels,
            onsets=onsets,
        )
        offsets = np.abs(np.arange(box.shown.shape[0]) - query)  # |key - query|
        distance = float(offsets @ box.shown[query])
        unit = "frames" if axis == "time" else "bands"
        readout.value = (
            f"query {query} puts weight {box.shown[query, query]:.3f} on itself (uniform: "
            f"{1 / len(box.shown):.3f}) and looks {distance:.1f} {unit} away on average "
            f"(uniform: {offsets.mean():.1f})"
        )
        box.png = figure_png(box.figure)
        image.value = box.png

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box
