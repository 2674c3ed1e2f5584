"""The course widgets: the stem mixer and the band-layout explorer, driven from Python.

Setting a control's ``.value`` runs the same callbacks a click in Jupyter would, so the
tests change controls and check that the mix, the audio and the figures follow.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from bsr.bands import paper_band_sizes
from bsr.errors import BsrError
from bsr.viz.bands import band_explorer, band_layout_figure, band_patches, layout_for
from bsr.viz.mixer import mix, mixer_figure, stem_mixer

RATE = 8000
STEMS = ("vocals", "drums", "bass", "other")


@pytest.fixture
def stems() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: 0.1 * rng.standard_normal((RATE, 2)).astype(np.float32) for name in STEMS}


# --------------------------------------------------------------------------- mix


def test_mix_without_changes_is_the_sum(stems):
    assert np.allclose(mix(stems), sum(stems.values()), atol=1e-6)


def test_muting_removes_exactly_that_stem(stems):
    difference = mix(stems) - mix(stems, mute={"vocals"})
    assert np.allclose(difference, stems["vocals"], atol=1e-6)


def test_solo_keeps_only_soloed_stems_and_mute_wins(stems):
    assert np.allclose(mix(stems, solo={"bass"}), stems["bass"], atol=1e-7)
    both = mix(stems, solo={"bass", "drums"}, mute={"drums"})
    assert np.allclose(both, stems["bass"], atol=1e-7)


def test_gain_is_in_db(stems):
    louder = mix(stems, gains={"bass": 6.0}, solo={"bass"})
    assert np.allclose(louder, 10 ** (6 / 20) * stems["bass"], rtol=1e-5, atol=1e-7)


def test_unknown_stem_is_refused(stems):
    with pytest.raises(KeyError, match="guitar"):
        mix(stems, mute={"guitar"})


def test_mixer_figure_has_a_row_per_stem_and_the_mix(stems):
    fig = mixer_figure(stems, RATE, mute={"vocals"})
    assert isinstance(fig, Figure) and len(fig.axes) == len(STEMS) + 1
    assert fig._repr_png_().startswith(b"\x89PNG")  # shows itself in Jupyter


# --------------------------------------------------------------------------- stem mixer


def test_mixer_widget_follows_its_controls(stems):
    box = stem_mixer(stems, RATE)
    full, audio, image = box.mixed.copy(), bytes(box.audio.value), bytes(box.image.value)
    assert np.allclose(full, sum(stems.values()), atol=1e-6)
    assert audio.startswith(b"RIFF") and image.startswith(b"\x89PNG")

    box.controls["vocals"]["mute"].value = True
    assert np.allclose(full - box.mixed, stems["vocals"], atol=1e-6)
    assert bytes(box.audio.value) != audio and bytes(box.image.value) != image
    assert box.settings()[1] == {"vocals"}

    box.controls["vocals"]["mute"].value = False
    box.controls["bass"]["solo"].value = True
    assert np.allclose(box.mixed, stems["bass"], atol=1e-7)

    box.controls["bass"]["gain"].value = -6.0
    assert np.allclose(box.mixed, 10 ** (-6 / 20) * stems["bass"], rtol=1e-5, atol=1e-7)


def test_mixer_falls_back_to_a_figure(stems, monkeypatch):
    assert isinstance(stem_mixer(stems, RATE, interactive=False), Figure)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    assert isinstance(stem_mixer(stems, RATE), Figure)


# --------------------------------------------------------------------------- band layouts


def test_layout_for_each_kind():
    assert layout_for("paper").sizes == paper_band_sizes()
    merged = layout_for("custom", merge=2)
    assert merged.num_bands == 31 and sum(merged.sizes) == 1025
    mel = layout_for("mel", n_mels=40)
    assert mel.num_bands == 40 and mel.overlapping
    with pytest.raises(BsrError, match="unknown layout"):
        layout_for("triangles")


def test_band_figure_has_one_patch_per_band():
    layout = layout_for("paper")
    assert len(band_patches(band_layout_figure(layout))) == 62
    spectrogram = np.zeros((1025, 30))
    fig = band_layout_figure(layout, spectrogram)
    assert len(fig.axes) == 2 and len(band_patches(fig)) == 62
    with pytest.raises(BsrError, match="bins"):
        band_layout_figure(layout, np.zeros((513, 30)))


def test_band_explorer_follows_its_controls():
    audio = np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    box = band_explorer(audio, sample_rate=44100)
    assert len(band_patches(box.figure)) == 62 and box.summary.value.startswith("62 bands")
    image = bytes(box.image.value)

    box.controls["kind"].value = "mel"
    assert len(band_patches(box.figure)) == 60 and "overlapping" in box.summary.value
    assert bytes(box.image.value) != image
    box.controls["n_mels"].value = 40
    assert len(band_patches(box.figure)) == box.band_layout().num_bands == 40

    box.controls["kind"].value = "custom"
    box.controls["merge"].value = 4
    assert len(band_patches(box.figure)) == 16  # ceil(62 / 4)

    box.controls["n_fft"].value = 4096
    assert box.band_layout().n_bins == 2049 and sum(box.band_layout().sizes) == 2049


def test_band_explorer_falls_back_to_a_figure(monkeypatch):
    fig = band_explorer(interactive=False)
    assert isinstance(fig, Figure) and len(band_patches(fig)) == 62
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert isinstance(band_explorer(), Figure)


# --------------------------------------------------------------------------- song upload


def test_upload_keeps_the_name_and_never_replaces_a_file(tmp_path):
    from bsr.viz.upload import save_upload

    first = save_upload(tmp_path / "uploads", "Café — ünï.mp3", b"one")
    assert first == tmp_path / "uploads" / "Café — ünï.mp3" and first.read_bytes() == b"one"
    second = save_upload(tmp_path / "uploads", "Café — ünï.mp3", b"two")
    assert second.name == "Café — ünï (2).mp3" and second.read_bytes() == b"two"
    assert first.read_bytes() == b"one"
    away = save_upload(tmp_path / "uploads", "../../etc/passwd", b"x")  # only the name is kept
    assert away.parent == tmp_path / "uploads" and away.name == "passwd"


def test_upload_widget_saves_the_chosen_file(tmp_path):
    import datetime

    from bsr.viz.upload import NO_FRONT_END, song_upload

    picker = song_upload(tmp_path, interactive=True)
    assert picker.path is None
    button, status = picker.children
    chosen = {"name": "my song.m4a", "type": "audio/mp4", "size": 3}
    chosen["last_modified"] = datetime.datetime.now(datetime.timezone.utc)
    button.value = ({**chosen, "content": memoryview(b"abc")},)
    assert picker.path == tmp_path / "my song.m4a" and picker.path.read_bytes() == b"abc"
    assert str(picker.path) in status.value
    assert picker._repr_mimebundle_()["text/plain"] == NO_FRONT_END  # no widget front end
    static = song_upload(tmp_path, interactive=False)
    assert static.path is None and static._repr_mimebundle_() == {"text/plain": NO_FRONT_END}
