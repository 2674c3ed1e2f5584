"""The widget explorers keep a static figure where widgets are not drawn (fast, no notebooks).

Like the attention explorer (tests/test_viz_attention.py), the stem mixer, the band-layout
explorer and the mask explorer display a box whose bundle holds the widget view and a PNG
of the figure it shows: nbconvert, GitHub and a book drop the widget view and keep the PNG.
Executing the notebooks is tested in tests/test_notebooks.py (``-m notebooks``).
"""

from __future__ import annotations

import base64

import matplotlib
import numpy as np
import pytest
import torch
from conftest import tiny_config

matplotlib.use("Agg")

from bsr.model import BSRoformer  # noqa: E402
from bsr.viz.bands import band_explorer  # noqa: E402
from bsr.viz.masks import mask_explorer  # noqa: E402
from bsr.viz.mixer import stem_mixer  # noqa: E402

pytest.importorskip("ipywidgets")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG = b"\x89PNG\r\n\x1a\n"


def _shown_png(box) -> bytes:
    """The PNG in the bundle Jupyter gets when ``box`` is displayed (after the widget view)."""
    bundle = box._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    return base64.b64decode(bundle["image/png"])


def _keeps_its_figure(box, control, value) -> None:
    """The displayed PNG is the figure's, and after ``control`` moves, the new figure's."""
    first = _shown_png(box)
    assert first.startswith(PNG) and first == box.png == box.image.value
    control.value = value
    assert box.png == box.image.value != first
    assert _shown_png(box) == box.png  # displayed again: the new view


def _stems() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: 0.1 * rng.standard_normal((8000, 2)).astype(np.float32) for name in ("a", "b")}


def test_stem_mixer_carries_a_static_png():
    box = stem_mixer(_stems(), 8000)
    _keeps_its_figure(box, box.controls["a"]["mute"], True)


def test_band_explorer_carries_a_static_png():
    audio = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    box = band_explorer(audio, sample_rate=44100)
    _keeps_its_figure(box, box.controls["kind"], "mel")


def test_mask_explorer_carries_a_static_png():
    torch.manual_seed(0)
    model = BSRoformer(tiny_config(stems=["vocals", "drums"])).eval()
    box = mask_explorer(model, torch.randn(2, 4000))
    _keeps_its_figure(box, box.controls["stem"], "drums")
