"""The attention explorer (driven through its widgets' values), the recording of attention
weights it rests on, the mean attention distance (against a float64 reference and its
properties), the Hz labels, onsets and shared colour scales of the figures, and the checks of
notebook 08 (wrong answers must say what is wrong)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from conftest import tiny_config

matplotlib.use("Agg")

import bsr.check  # noqa: E402
from bsr.bands import BandLayout  # noqa: E402
from bsr.check import CheckFailed  # noqa: E402
from bsr.model import BSRoformer  # noqa: E402
from bsr.viz.attention import (  # noqa: E402
    MAP_GID,
    ONSET_COLOUR,
    attention_explorer,
    attention_figure,
    attention_module,
    attention_panels,
    band_edges_hz,
    band_labels,
    band_spectrogram,
    distance_table,
    frame_similarity,
    layer_attention_distances,
    mean_attention_distance,
    mean_by_offset,
    onset_frames,
    panel_maps,
    query_line,
    record_attention,
    shown_map,
    uniform_attention_distance,
)

HOP, FRAMES = 64, 25


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = tiny_config(hop_length=HOP, depth=2, stems=["vocals"])
    return BSRoformer(config).eval()


@pytest.fixture(scope="module")
def audio():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, HOP * (FRAMES - 1), generator=generator) * 0.3  # (C, samples)


def _hooked(model):
    return [m for m in model.modules() if m._forward_hooks or m._forward_pre_hooks]


# -- recording --------------------------------------------------------------------------------


def test_record_attention_shapes_and_leaves_the_model_alone(model, audio):
    bands, heads = model.layout.num_bands, model.config.heads
    model.train()
    try:
        time_weights = record_attention(model, audio, layer=1, axis="time")
        band_weights = record_attention(model, audio, layer=1, axis="band")
        assert model.training  # the mode is restored
    finally:
        model.eval()
    assert time_weights.shape == (bands, heads, FRAMES, FRAMES)
    assert band_weights.shape == (FRAMES, heads, bands, bands)
    for weights in (time_weights, band_weights):
        assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
        assert weights.dtype == torch.float32 and not weights.requires_grad
    assert not _hooked(model)
    assert model.use_rope is True
    # use_rope=False is applied for the run only
    assert not torch.allclose(
        record_attention(model, audio, 1, "time", use_rope=False), time_weights
    )
    assert model.use_rope is True


def test_record_attention_is_softmax_of_rotated_queries_and_keys(model, audio):
    """Recompute the weights from what the module is given: RMSNorm, q/k, RoPE, softmax."""
    module = attention_module(model, layer=1, axis="band")
    seen = {}
    handle = module.register_forward_pre_hook(
        lambda m, inputs: seen.update(x=inputs[0].detach(), rope=inputs[1])
    )
    try:
        with torch.no_grad():
            model(audio[None])
    finally:
        handle.remove()
    x, rope = seen["x"], seen["rope"]
    assert rope is model.band_rope
    batch, seq, _ = x.shape
    qkv = module.to_qkv(module.norm(x)).view(batch, seq, 3, module.heads, module.dim_head)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4)
    q, k = rope(q), rope(k)
    expected = (q @ k.transpose(-2, -1) / math.sqrt(module.dim_head)).softmax(-1)
    got = record_attention(model, audio, layer=1, axis="band")
    assert torch.allclose(got, expected, atol=1e-6)


def test_record_attention_orders_a_batch_example_major(model, audio):
    other = torch.flip(audio, dims=[-1])
    batch = torch.stack([audio, other])  # (2, C, samples)
    bands = model.layout.num_bands
    weights = record_attention(model, batch, layer=0, axis="time")
    assert weights.shape[0] == 2 * bands
    assert torch.allclose(weights[bands:], record_attention(model, other, 0, "time"), atol=1e-6)
    band_weights = record_attention(model, batch, layer=0, axis="band")
    assert band_weights.shape[0] == 2 * FRAMES
    assert torch.allclose(band_weights[:FRAMES], record_attention(model, audio, 0, "band"))


def test_record_attention_rejects_bad_arguments(model, audio):
    with pytest.raises(ValueError, match="axis"):
        record_attention(model, audio, 0, "frequency")
    with pytest.raises(ValueError, match="layer"):
        record_attention(model, audio, 2, "time")


def test_mean_attention_distance_known_values():
    n = 9
    eye = torch.eye(n).expand(3, 2, n, n)
    assert torch.equal(mean_attention_distance(eye), torch.zeros(2, dtype=torch.float64))
    uniform = torch.full((3, 2, n, n), 1.0 / n)
    expected = (n * n - 1) / (3 * n)
    assert torch.allclose(mean_attention_distance(uniform), torch.full((2,), expected).double())
    previous = torch.diag_embed(torch.ones(n - 1), offset=-1)  # query i reads key i - 1
    previous[0, 0] = 1.0
    assert mean_attention_distance(previous[None, None]).item() == pytest.approx((n - 1) / n)


def _distance_float64(weights: np.ndarray) -> np.ndarray:
    """An independent reference: numpy, float64, an explicit sum over (s, i, j) per head."""
    w = np.asarray(weights, dtype=np.float64)
    sequences, heads, seq, _ = w.shape
    out = np.zeros(heads)
    for h in range(heads):
        total = 0.0
        for i in range(seq):
            for j in range(seq):
                total += w[:, h, i, j].sum() * abs(i - j)
        out[h] = total / (sequences * seq)
    return out


def test_mean_attention_distance_matches_a_float64_reference():
    generator = torch.Generator().manual_seed(3)
    weights = (torch.randn(4, 3, 11, 11, generator=generator) * 3).softmax(-1)  # float32
    got = mean_attention_distance(weights)
    assert got.dtype == torch.float64 and got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), _distance_float64(weights.numpy()), rtol=1e-12)


@pytest.mark.parametrize("seq", [1, 2, 3, 10, 64, 173])
@pytest.mark.parametrize("leading", [(1, 1), (5, 4)])
def test_mean_attention_distance_properties(seq, leading):
    """Uniform attention gives the uniform value, identity gives 0, mirroring changes nothing."""
    uniform = torch.full((*leading, seq, seq), 1.0 / seq)
    expected = uniform_attention_distance(seq)
    assert expected == pytest.approx(np.abs(np.subtract.outer(range(seq), range(seq))).mean())
    assert torch.allclose(
        mean_attention_distance(uniform), torch.full(leading[1:], expected, dtype=torch.float64)
    )
    identity = torch.eye(seq).expand(*leading, seq, seq)
    assert torch.equal(mean_attention_distance(identity), torch.zeros(leading[1:]).double())
    generator = torch.Generator().manual_seed(seq)
    weights = torch.randn(*leading, seq, seq, generator=generator).softmax(-1)
    distance = mean_attention_distance(weights)
    assert torch.all(distance >= 0) and torch.all(distance <= seq - 1)
    mirrored = weights.flip(-1).flip(-2)  # position p becomes seq - 1 - p for queries and keys
    assert torch.allclose(mean_attention_distance(mirrored), distance)


def test_uniform_attention_distance_rejects_an_empty_sequence():
    with pytest.raises(ValueError, match="seq"):
        uniform_attention_distance(0)


def test_layer_attention_distances_match_a_float64_reference(model, audio):
    for axis in ("time", "band"):
        got = layer_attention_distances(model, audio, axis)
        assert got.shape == (2, model.config.heads) and got.dtype == torch.float64
        for layer in range(2):
            weights = record_attention(model, audio, layer, axis).numpy()
            np.testing.assert_allclose(got[layer].numpy(), _distance_float64(weights), rtol=1e-9)
    without = layer_attention_distances(model, audio, "time", use_rope=False)
    weights = record_attention(model, audio, 1, "time", use_rope=False).numpy()
    np.testing.assert_allclose(without[1].numpy(), _distance_float64(weights), rtol=1e-9)
    assert model.use_rope is True


def test_distance_table_prints_the_mean_over_heads_per_layer():
    columns = {"trained": torch.tensor([[1.0, 3.0], [5.0, 7.0]]), "flat": torch.tensor([8.0, 8.5])}
    text = distance_table(columns, uniform=8.33, unit="frames")
    lines = text.splitlines()
    assert "frames" in lines[0]
    assert lines[1].split() == ["layer", "trained", "flat", "uniform"]
    assert lines[2].split() == ["0", "2.00", "8.00", "8.33"]
    assert lines[3].split() == ["1", "6.00", "8.50", "8.33"]
    with pytest.raises(ValueError, match="layers"):
        distance_table({"a": torch.ones(2, 2), "b": torch.ones(3)}, 1.0)


def test_mean_by_offset_matches_a_loop():
    generator = torch.Generator().manual_seed(5)
    maps = torch.randn(3, 2, 7, 7, generator=generator)
    got = mean_by_offset(maps, [0, 1, 3, 6])
    for k, d in enumerate([0, 1, 3, 6]):
        values = [maps[a, b, i, j].item() for a in range(3) for b in range(2)
                  for i in range(7) for j in range(7) if abs(i - j) == d]  # fmt: skip
        assert got[k].item() == pytest.approx(np.mean(values))
    uniform = torch.full((4, 9, 9), 1 / 9)
    assert torch.allclose(mean_by_offset(uniform, [0, 4]), torch.full((2,), 1 / 9).double())
    with pytest.raises(ValueError, match="offsets"):
        mean_by_offset(maps, [7])


# -- what the axes mean: Hz and onsets ---------------------------------------------------------


def test_band_edges_hz_follow_the_bins():
    layout = BandLayout.from_sizes([3, 3, 6, 501], 513)  # n_fft 1024
    edges = band_edges_hz(layout, 44100, 1024)
    hz = 44100 / 1024
    np.testing.assert_allclose(edges[:, 0], [0.0, 2.5 * hz, 5.5 * hz, 11.5 * hz])
    np.testing.assert_allclose(edges[:-1, 1], edges[1:, 0])  # neighbours share an edge
    assert edges[-1, 1] == 22050.0  # cut at Nyquist
    np.testing.assert_allclose(edges[1:-1, 1] - edges[1:-1, 0], [3 * hz, 6 * hz])


def test_band_labels_name_every_band_of_the_model(model):
    labels = band_labels(model)
    assert len(labels) == model.layout.num_bands
    assert labels[0].startswith("0-") and labels[0].endswith(" Hz")
    assert labels[-1].endswith("22.1 kHz")
    course = BSRoformer(bsr.load_config("course").model)
    assert band_labels(course)[:2] == ["0-108 Hz", "108-237 Hz"]


def test_onset_frames_finds_clicks_in_frames_of_the_hop():
    pytest.importorskip("librosa")
    rate, hop = 22050, 512
    audio = np.zeros(rate * 2, dtype=np.float32)
    starts = [0.25, 0.75, 1.25, 1.6]
    for t in starts:
        i = int(t * rate)
        audio[i : i + 200] = np.hanning(200) * np.sin(np.arange(200) * 0.7)  # a short click
    stereo = np.stack([audio, audio], axis=1)  # (samples, C), as musdb gives it
    found = onset_frames(stereo, rate, hop)
    expected = np.round(np.array(starts) * rate / hop)
    assert len(found) == len(starts)
    assert np.all(np.abs(found - expected) <= 2), (found, expected)
    np.testing.assert_array_equal(onset_frames(torch.from_numpy(stereo.T.copy()), rate, hop), found)
    assert np.all(onset_frames(stereo, rate, hop, frames=int(expected[2])) < expected[2])


def test_frame_similarity_is_a_correlation(model, audio):
    similarity = frame_similarity(model, audio)
    assert similarity.shape == (model.layout.num_bands, FRAMES, FRAMES)
    assert torch.allclose(similarity, similarity.transpose(-1, -2))
    assert torch.allclose(similarity.diagonal(dim1=-2, dim2=-1), torch.ones(()).double())
    assert similarity.abs().max() <= 1 + 1e-9


# -- the figures ----------------------------------------------------------------------------------


def _labels_in_hz(ax, which: str, labels: list[str]) -> bool:
    """The band axis carries Hz labels: the right band's label at every tick, at most 24."""
    ticks = ax.get_xticks() if which == "x" else ax.get_yticks()
    texts = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    texts = [t.get_text() for t in texts]
    return 2 <= len(texts) <= 24 and texts == [labels[int(t)] for t in ticks] and ticks[0] == 0


def _onset_marks(fig) -> int:
    return sum(len(ln.get_xdata()) for ax in fig.axes for ln in ax.lines
               if ln.get_color() == ONSET_COLOUR and ln.get_marker() in ("v", ">"))  # fmt: skip


def test_attention_figure_draws_the_weights(model, audio):
    weights = record_attention(model, audio, 0, "time")
    spectrogram = band_spectrogram(model, audio)
    assert spectrogram.shape == (model.layout.num_bands, FRAMES)
    fig = attention_figure(weights, "time", 3, head=1, spectrogram=spectrogram, query=7)
    np.testing.assert_allclose(shown_map(fig), weights[3, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(query_line(fig), weights[3, 1, 7].numpy(), rtol=1e-6)
    assert len([ax for ax in fig.axes if ax.images]) >= 2  # map and spectrogram (+ colour bar)
    fig = attention_figure(weights, "time", 3)  # head None: the mean over heads
    np.testing.assert_allclose(shown_map(fig), weights[3].double().mean(0).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="index"):
        attention_figure(weights, "time", weights.shape[0])
    with pytest.raises(ValueError, match="head"):
        attention_figure(weights, "time", 0, head=5)
    with pytest.raises(ValueError, match="query"):
        attention_figure(weights, "time", 0, query=FRAMES)


def test_attention_figure_labels_bands_in_hz_and_marks_onsets(model, audio):
    labels = band_labels(model)
    onsets = [2, 9, 17]
    spectrogram = band_spectrogram(model, audio)
    band_weights = record_attention(model, audio, 0, "band")
    fig = attention_figure(band_weights, "band", 4, spectrogram=spectrogram, query=3,
                           band_labels=labels, onsets=onsets)  # fmt: skip
    (image,) = [im for ax in fig.axes for im in ax.images if im.get_gid() == MAP_GID]
    ax = image.axes
    assert _labels_in_hz(ax, "x", labels) and _labels_in_hz(ax, "y", labels)
    (spectrogram_ax,) = [a for a in fig.axes if a.get_title() == "band energy of the excerpt"]
    assert _labels_in_hz(spectrogram_ax, "y", labels)
    assert _onset_marks(fig) == len(onsets)  # on the spectrogram's frame axis
    time_weights = record_attention(model, audio, 0, "time")
    fig = attention_figure(time_weights, "time", 2, spectrogram=spectrogram, query=5,
                           band_labels=labels, onsets=onsets)  # fmt: skip
    assert _onset_marks(fig) == 3 * len(onsets)  # key and query axes, spectrogram
    assert labels[2] in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="band_labels"):
        attention_figure(band_weights, "band", 4, band_labels=labels[:-1])


def test_attention_panels_share_one_colour_scale(model, audio):
    weights = record_attention(model, audio, 0, "time")
    maps = {f"head {h}": weights[3, h] for h in range(weights.shape[1])}
    maps["flat"] = torch.full((FRAMES, FRAMES), 1.0 / FRAMES)
    fig = attention_panels(maps, "time", onsets=[4, 12], title="heads")
    drawn = panel_maps(fig)
    assert len(drawn) == len(maps)
    for got, expected in zip(drawn, maps.values()):
        np.testing.assert_allclose(got, expected.double().numpy(), rtol=1e-6)
    images = [im for ax in fig.axes for im in ax.images]
    top = max(float(m.max()) for m in maps.values())
    assert all(im.norm.vmin == 0.0 and im.norm.vmax == pytest.approx(top) for im in images)
    assert len({id(im.norm) for im in images}) == 1  # one norm, so one scale
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1
    assert _onset_marks(fig) == 2 * len(maps) + 2  # keys of every panel, queries of the first
    fig = attention_panels(maps, "time", vmax=0.5)
    assert all(im.norm.vmax == 0.5 for ax in fig.axes for im in ax.images)
    band = record_attention(model, audio, 0, "band")
    labels = band_labels(model)
    fig = attention_panels({"a": band[0, 0], "b": band[1, 0]}, "band", band_labels=labels)
    assert _labels_in_hz(fig.axes[0], "y", labels)
    with pytest.raises(ValueError, match="one size"):
        attention_panels({"a": band[0, 0], "b": weights[0, 0]}, "band")


# -- the explorer, driven through its controls ----------------------------------------------------


def test_explorer_shows_the_recorded_weights_of_the_chosen_layer_head_and_index(model, audio):
    pytest.importorskip("ipywidgets")
    box = attention_explorer(model, audio)
    controls = box.controls
    assert set(controls) == {"layer", "axis", "index", "head", "query", "rope"}
    assert box.audio.value[:4] == b"RIFF"  # a wav player of the excerpt
    controls["layer"].value = 1
    controls["index"].value = 4
    controls["head"].value = 1
    controls["query"].value = 6
    expected = record_attention(model, audio, 1, "time")
    assert torch.equal(box.weights, expected)
    np.testing.assert_allclose(shown_map(box.figure), expected[4, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(query_line(box.figure), expected[4, 1, 6].numpy(), rtol=1e-6)
    before = box.image.value
    assert box.png == before
    controls["head"].value = "mean"
    mean = expected[4].double().mean(0).numpy()
    np.testing.assert_allclose(shown_map(box.figure), mean, rtol=1e-6)
    np.testing.assert_allclose(box.shown, mean, rtol=1e-6)
    assert box.image.value != before
    assert "query 6" in box.readout.value


def test_explorer_axis_switch_swaps_the_controls(model, audio):
    pytest.importorskip("ipywidgets")
    box = attention_explorer(model, audio)
    controls = box.controls
    bands = model.layout.num_bands
    assert (controls["index"].max, controls["query"].max) == (bands - 1, FRAMES - 1)
    controls["axis"].value = "band"
    assert (controls["index"].max, controls["query"].max) == (FRAMES - 1, bands - 1)
    assert controls["index"].description == "frame"
    controls["index"].value = FRAMES - 2
    controls["head"].value = 0
    expected = record_attention(model, audio, 0, "band")
    np.testing.assert_allclose(shown_map(box.figure), expected[FRAMES - 2, 0].numpy(), rtol=1e-6)
    controls["axis"].value = "time"
    assert controls["index"].max == bands - 1 and controls["index"].value < bands


def test_explorer_rope_toggle_changes_the_weights_only_while_recording(model, audio):
    pytest.importorskip("ipywidgets")
    box = attention_explorer(model, audio)
    with_rope = box.weights
    box.controls["rope"].value = False
    without = record_attention(model, audio, 0, "time", use_rope=False)
    assert torch.equal(box.weights, without)
    assert not torch.allclose(with_rope, without, atol=1e-4)
    assert model.use_rope is True  # the model itself is left with RoPE on
    box.controls["rope"].value = True
    assert torch.equal(box.weights, with_rope)


def test_explorer_carries_a_static_png_for_front_ends_without_widgets(model, audio):
    """The displayed bundle holds the widget view and, as a fallback, the figure as a PNG."""
    pytest.importorskip("ipywidgets")
    import base64

    box = attention_explorer(model, audio, onsets=[3, 11])
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == box.png == box.image.value
    assert box.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert _onset_marks(box.figure) == 3 * 2
    box.controls["axis"].value = "band"
    assert base64.b64decode(box._repr_mimebundle_()["image/png"]) == box.png  # the new view
    labels = band_labels(model)
    (image,) = [im for ax in box.figure.axes for im in ax.images if im.get_gid() == MAP_GID]
    assert _labels_in_hz(image.axes, "x", labels)


def test_explorer_static_fallback(model, audio):
    fig = attention_explorer(model, audio, interactive=False)
    loudest = int(band_spectrogram(model, audio).mean(axis=1).argmax())
    expected = record_attention(model, audio, 0, "time")[loudest].double().mean(0)
    np.testing.assert_allclose(shown_map(fig), expected.numpy(), rtol=1e-6)


# -- checks of notebook 08: right answers pass, wrong ones say why --------------------------------


def _fails(exercise_id: str, answer, match: str) -> None:
    with pytest.raises(CheckFailed, match=match):
        bsr.check.exercise(exercise_id, answer)


def _recorder(axis="time", layer_shift=0, pre_hook=False, unhook=True, use_rope=True):
    def time_attention(model, audio, layer):
        module = attention_module(model, layer + layer_shift, axis)
        caught = []
        if pre_hook:  # catch the inputs, compute the weights after the run
            handle = module.register_forward_pre_hook(lambda m, i: caught.append(i))
        else:
            handle = module.register_forward_hook(lambda m, i, o: caught.append(m.explicit(*i)))
        try:  # the hook goes even if the forward pass fails (the check tries that too)
            with torch.no_grad():
                model(audio, rope=use_rope)
                if pre_hook:
                    caught.append(module.explicit(*caught[-1]))
        finally:
            if unhook:
                handle.remove()
        return caught[-1][1]

    return time_attention


def test_nb08_1_check():
    bsr.check.exercise("08.1", _recorder())
    _fails("08.1", _recorder(axis="band"), "band transformer")
    _fails("08.1", _recorder(layer_shift=-1), "block 0")
    _fails("08.1", _recorder(use_rope=False), "RoPE switched off")
    bsr.check.exercise("08.1", _recorder(pre_hook=True))
    _fails("08.1", _recorder(pre_hook=True, unhook=False), "hook is still attached")
    _fails("08.1", _recorder(unhook=False), "hook is still attached")

    def scores(model, audio, layer):
        return _recorder()(model, audio, layer).log()

    _fails("08.1", scores, "sum to one")

    def stub(model, audio, layer):
        raise NotImplementedError("exercise 08.1: your code here")

    _fails("08.1", stub, "not answered yet")


def _distance(weights, signed=False, key_position=False, over_keys=False, heads=True):
    seq = weights.shape[-1]
    position = torch.arange(seq, dtype=torch.float64)
    offset = position[None, :] - position[:, None]
    if key_position:
        offset = position[None, :].expand(seq, seq)
    elif not signed:
        offset = offset.abs()
    terms = weights.double() * offset
    per_query = terms.mean(-1) if over_keys else terms.sum(-1)
    uniform = (seq * seq - 1) / (3 * seq)  # 08.2 asks for the distance relative to uniform
    return (per_query.mean(dim=(0, 2)) if heads else per_query.mean()) / uniform


def test_nb08_2_check():
    bsr.check.exercise("08.2", _distance)
    _fails("08.2", lambda w: _distance(w, signed=True), "signed")
    _fails("08.2", lambda w: _distance(w, key_position=True), "key position")
    _fails("08.2", lambda w: _distance(w, over_keys=True), "averaged")
    _fails("08.2", lambda w: _distance(w, heads=False), "one number")
    _fails("08.2", lambda w: _distance(w) + 0.01, "itself")
