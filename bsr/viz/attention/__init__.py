"""Looking inside a BS-RoFormer: the attention weights of its time and band transformers.

Every RoFormer block attends twice (see :mod:`bsr.roformer`):

* over **time**: each band of each example is one sequence of T frames, so a layer's
  weights are ``(B*N, heads, T, T)``: for every band, which frames each frame looks at;
* over **bands**: each frame of each example is one sequence of N bands, so the weights are
  ``(B*T, heads, N, N)``: for every frame, which bands each band looks at.

Rows are queries and columns keys; every row sums to one. The sequences are ordered
example-major (sequence ``b*N + n`` is band ``n`` of example ``b``), so for one example,
the usual case here, the first axis is simply the band (time axis) or the frame (band axis).

* :func:`recording` hooks the attention layers of a model for the length of a ``with``
  block and collects their weights; :func:`record_attention` runs the model once under it
  and returns the weights of one layer. Both leave the model as they found it;
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

One module per job: :mod:`~bsr.viz.attention.record` (hooks and weights),
:mod:`~bsr.viz.attention.labels` (Hz and onsets), :mod:`~bsr.viz.attention.measures`
(distances and similarities), :mod:`~bsr.viz.attention.figures` (the maps) and
:mod:`~bsr.viz.attention.explorer` (the widgets); every public name is importable from here.
This package reads the model; nothing in the model imports it.
"""

from bsr.viz.attention.explorer import attention_explorer
from bsr.viz.attention.figures import (
    MAP_GID,
    ONSET_COLOUR,
    PANEL_GID,
    QUERY_GID,
    attention_figure,
    attention_panels,
    head_map,
    panel_maps,
    query_line,
    shown_map,
)
from bsr.viz.attention.labels import band_edges_hz, band_labels, onset_frames
from bsr.viz.attention.measures import (
    distance_table,
    frame_similarity,
    layer_attention_distances,
    mean_attention_distance,
    mean_by_offset,
    uniform_attention_distance,
)
from bsr.viz.attention.record import (
    AXES,
    attention_module,
    band_spectrogram,
    record_attention,
    recording,
)

__all__ = [
    "AXES",
    "MAP_GID",
    "ONSET_COLOUR",
    "PANEL_GID",
    "QUERY_GID",
    "attention_explorer",
    "attention_figure",
    "attention_module",
    "attention_panels",
    "band_edges_hz",
    "band_labels",
    "band_spectrogram",
    "distance_table",
    "frame_similarity",
    "head_map",
    "layer_attention_distances",
    "mean_attention_distance",
    "mean_by_offset",
    "onset_frames",
    "panel_maps",
    "query_line",
    "record_attention",
    "recording",
    "shown_map",
    "uniform_attention_distance",
]
