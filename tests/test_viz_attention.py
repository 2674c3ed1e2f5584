"""The attention explorer (driven through its widgets' values), the recording of attention
weights it rests on, and the checks of notebook 08 (wrong answers must say what is wrong)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from conftest import tiny_config

matplotlib.use("Agg")

import bsr.check  # noqa: E402
from bsr.check import CheckFailed  # noqa: E402
from bsr.model import BSRoformer  # noqa: E402
from bsr.viz.attention import (  # noqa: E402
    attention_explorer,
    attention_figure,
    attention_module,
    band_spectrogram,
    mean_attention_distance,
    query_line,
    record_attention,
    shown_map,
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


def _attention_modules(model):
    return [m for m in model.modules() if hasattr(m, "keep_weights")]


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
    assert all(not m.keep_weights and m.last_weights is None for m in _attention_modules(model))
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


# -- the figure ---------------------------------------------------------------------------------


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


def test_explorer_static_fallback(model, audio):
    fig = attention_explorer(model, audio, interactive=False)
    loudest = int(band_spectrogram(model, audio).mean(axis=1).argmax())
    expected = record_attention(model, audio, 0, "time")[loudest].double().mean(0)
    np.testing.assert_allclose(shown_map(fig), expected.numpy(), rtol=1e-6)


# -- checks of notebook 08: right answers pass, wrong ones say why --------------------------------


def _fails(exercise_id: str, answer, match: str) -> None:
    with pytest.raises(CheckFailed, match=match):
        bsr.check.exercise(exercise_id, answer)


def _recorder(axis="time", layer_shift=0, reset=True, unhook=True, use_rope=True):
    def time_attention(model, audio, layer):
        module = attention_module(model, layer + layer_shift, axis)
        caught = []
        handle = module.register_forward_hook(lambda m, i, o: caught.append(m.last_weights))
        module.keep_weights = True
        rope = model.use_rope
        model.use_rope = use_rope
        with torch.no_grad():
            model(audio)
        model.use_rope = rope
        if reset:
            module.keep_weights = False
        if unhook:
            handle.remove()
        return caught[-1]

    return time_attention


def test_nb08_1_check():
    bsr.check.exercise("08.1", _recorder())
    bsr.check.exercise("08.1", lambda model, audio, layer: record_attention(model, audio, layer))
    _fails("08.1", _recorder(axis="band"), "band transformer")
    _fails("08.1", _recorder(layer_shift=-1), "block 0")
    _fails("08.1", _recorder(use_rope=False), "RoPE switched off")
    _fails("08.1", _recorder(reset=False), "keep_weights is still True")
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
    return per_query.mean(dim=(0, 2)) if heads else per_query.mean()


def test_nb08_2_check():
    bsr.check.exercise("08.2", _distance)
    bsr.check.exercise("08.2", mean_attention_distance)
    _fails("08.2", lambda w: _distance(w, signed=True), "signed")
    _fails("08.2", lambda w: _distance(w, key_position=True), "key position")
    _fails("08.2", lambda w: _distance(w, over_keys=True), "averaged")
    _fails("08.2", lambda w: _distance(w, heads=False), "one number")
    _fails("08.2", lambda w: _distance(w) + 0.01, "itself")
