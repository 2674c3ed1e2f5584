"""The RoPE and mask explorers (driven through their widgets' values) and the checks of
notebooks 03-05 (wrong answers must fail with a message that names the mistake)."""

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
from bsr.rope import RotaryEmbedding  # noqa: E402
from bsr.stft import complex_to_features, features_to_complex  # noqa: E402
from bsr.viz.masks import frame_lines, mask_explorer, mask_figure, model_masks  # noqa: E402
from bsr.viz.rope import current_angle, rope_explorer, rope_figure  # noqa: E402

pytest.importorskip("ipywidgets")


def wrapped(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


# -- RoPE explorer --------------------------------------------------------------------------


def test_rope_explorer_angle_moves_by_position_times_frequency():
    box = rope_explorer(dim_head=32, max_position=64)
    controls = box.controls
    controls["pair"].value = 3
    w = RotaryEmbedding(32).inv_freq[3].item()
    controls["position"].value = 5
    first_angle, first_png = box.angle, box.image.value
    controls["position"].value = 12
    assert box.frequency == pytest.approx(w, rel=1e-6)
    assert box.angle - first_angle == pytest.approx(7 * w, rel=1e-6)
    assert box.angle == pytest.approx(12 * w, rel=1e-6)
    assert current_angle(box.figure) == pytest.approx(wrapped(12 * w), abs=1e-6)
    assert box.image.value != first_png  # the picture was redrawn
    assert "m = 12" in box.readout.value


def test_rope_explorer_theta_and_pair_change_the_frequency():
    box = rope_explorer(dim_head=16, max_position=32)
    box.controls["position"].value = 4
    box.controls["pair"].value = 2
    box.controls["theta"].value = 100.0
    expected = 100.0 ** (-2 * 2 / 16)
    assert box.frequency == pytest.approx(expected, rel=1e-9)
    assert current_angle(box.figure) == pytest.approx(wrapped(4 * expected), abs=1e-9)
    box.controls["pair"].value = 0  # pair 0 always turns one radian per position
    assert box.angle == pytest.approx(4.0)


def test_rope_static_fallback_and_figure_checks():
    fig = rope_explorer(dim_head=8, interactive=False)
    assert len(fig.axes) >= 3
    fig = rope_figure(8, positions=[0, 2, 7], theta=10000.0, pair=1)
    assert current_angle(fig) == pytest.approx(wrapped(7 * 10000.0 ** (-2 / 8)), abs=1e-9)
    with pytest.raises(ValueError, match="pair"):
        rope_figure(8, positions=4, pair=4)


# -- mask explorer --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = tiny_config(stems=["vocals", "drums", "bass"])
    return BSRoformer(config).eval()


def test_mask_explorer_shows_the_models_mask(tiny_model):
    audio = torch.randn(2, 4000)
    box = mask_explorer(tiny_model, audio)
    with torch.no_grad():
        masks = tiny_model.estimate_masks(tiny_model.stft(audio[None]))[0]
    assert torch.allclose(box.masks, masks, atol=1e-6)
    box.controls["stem"].value = "bass"
    box.controls["frame"].value = 7
    box.controls["channel"].value = 1
    magnitude, phase = frame_lines(box.figure)
    np.testing.assert_allclose(magnitude, masks[2, 1, :, 7].abs().numpy(), rtol=1e-6)
    np.testing.assert_allclose(phase, masks[2, 1, :, 7].angle().numpy(), atol=1e-6)
    before = box.image.value
    box.controls["stem"].value = "vocals"
    magnitude, _ = frame_lines(box.figure)
    np.testing.assert_allclose(magnitude, masks[0, 1, :, 7].abs().numpy(), rtol=1e-6)
    assert box.image.value != before


def test_mask_figure_accepts_musdb_layout_and_static_fallback(tiny_model):
    audio = np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32)
    masks = model_masks(tiny_model, audio)  # (samples, C) is transposed for the model
    assert masks.shape == (3, 2, 129, 3000 // 64 + 1)
    fig = mask_figure(tiny_model, audio, stem="drums", frame=0)
    np.testing.assert_allclose(frame_lines(fig)[0], masks[1, 0, :, 0].abs().numpy(), rtol=1e-6)
    static = mask_explorer(tiny_model, audio, interactive=False)
    assert len(frame_lines(static)[0]) == 129
    with pytest.raises(ValueError, match="unknown stem"):
        mask_figure(tiny_model, audio, stem="piano", masks=masks)


# -- exercise checks: wrong answers fail, and say why ---------------------------------------


def _fails(exercise_id: str, answer, match: str) -> None:
    with pytest.raises(CheckFailed, match=match):
        bsr.check.exercise(exercise_id, answer)


def _rotate(x, theta=10000.0, sign=1.0, start=0):
    seq, d = x.shape[-2:]
    w = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = sign * (torch.arange(seq, dtype=torch.float32)[:, None] + start) * w
    out = torch.empty_like(x)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out[..., 0::2] = x1 * angles.cos() - x2 * angles.sin()
    out[..., 1::2] = x1 * angles.sin() + x2 * angles.cos()
    return out


def test_nb03_checks():
    bsr.check.exercise("03.1", lambda d, theta=1e4: theta ** (-torch.arange(0, d, 2) / d))
    bsr.check.exercise("03.2", _rotate)
    _fails("03.1", lambda d, theta=1e4: theta ** (-torch.arange(d // 2) / d), "goal 3")
    _fails("03.1", lambda d, theta=1e4: (theta ** (-torch.arange(0, d, 2) / d)).flip(0), "reverse")
    _fails("03.2", lambda x, theta=1e4: _rotate(x, theta, sign=-1.0), "wrong way")
    _fails("03.2", lambda x, theta=1e4: _rotate(x, theta, start=1), "position 0 changed")
    _fails("03.2", lambda x, theta=1e4: _rotate(x), "ignores theta")
    _fails("03.2", lambda x, theta=1e4: x, "unchanged")


def _attention(q, k, v, scale=True, dim=-1):
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    weights = scores.softmax(dim=dim)
    return weights @ v, weights


def _block(x, time_tf, band_tf, time_rope, band_rope, transpose=True):
    b, t, n, d = x.shape
    x = (x.transpose(1, 2) if transpose else x).reshape(b * n, t, d)
    x = time_tf(x, time_rope)
    x = x.reshape(b, n, t, d).transpose(1, 2).reshape(b * t, n, d)
    return band_tf(x, band_rope).reshape(b, t, n, d)


def test_nb04_checks():
    bsr.check.exercise("04.1", _attention)
    bsr.check.exercise("04.3", _block)
    _fails("04.1", lambda q, k, v: _attention(q, k, v, scale=False), "not scaled")
    _fails("04.1", lambda q, k, v: _attention(q, k, v, dim=-2), "sum to one")
    _fails("04.1", lambda q, k, v: _attention(q, k, v)[0], "two tensors")
    _fails("04.3", lambda *a: _block(*a, transpose=False), "mixed up")
    _fails("04.3", lambda x, tt, bt, tr, br: _block(x, tt, bt, br, tr), "time_rope")

    def no_rope(x, layer, rope):
        batch, seq, _ = x.shape
        qkv = layer.to_qkv(layer.norm(x)).view(batch, seq, 3, layer.heads, layer.dim_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (batch, heads, seq, dim_head) each
        out, _ = _attention(q, k, v)
        return layer.to_out(out.transpose(1, 2).reshape(batch, seq, -1))

    _fails("04.2", no_rope, "WITHOUT positions")


def _band_mask(x, gamma, w1, b1, w2, b2, swap=False, act=torch.tanh):
    x = x / x.square().mean(-1, keepdim=True).sqrt() * gamma
    a, g = (act(x @ w1.T + b1) @ w2.T + b2).chunk(2, dim=-1)
    return g * a.sigmoid() if swap else a * g.sigmoid()


def _complex_product(masks, spec, unsqueeze=True, conjugate=False):
    """The product written out, with two usual slips as switches."""
    spec = spec.unsqueeze(1) if unsqueeze else spec
    b = -masks.imag if conjugate else masks.imag
    return torch.complex(
        masks.real * spec.real - b * spec.imag, masks.real * spec.imag + b * spec.real
    )


def test_nb05_checks():
    bsr.check.exercise("05.1", _band_mask)
    bsr.check.exercise("05.2", _complex_product)
    _fails("05.1", lambda *p: _band_mask(*p, swap=True), "swapped")
    _fails("05.1", lambda *p: _band_mask(*p, act=torch.relu), "Tanh")
    _fails("05.2", lambda m, s: m.abs() * s.unsqueeze(1), "magnitude")
    _fails("05.2", lambda m, s: _complex_product(m, s, unsqueeze=False), "unsqueeze")
    _fails("05.2", lambda m, s: _complex_product(m, s, conjugate=True), "wrong sign")
    _fails("05.2", lambda m, s: m * s.unsqueeze(1), "real and imaginary parts")

    def no_rope(model, spec):
        x = model.band_split(complex_to_features(spec))
        for block in model.layers:
            x = block(x, None, None)  # the slip: no rotary tables
        masks = [features_to_complex(head(x), model.channels) for head in model.mask_estimators]
        return torch.stack(masks, 1)

    _fails("05.3", no_rope, "RoPE switched off")


def test_student_stubs_fail_every_check():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for exercise_id in ("03.1", "03.2", "04.1", "04.2", "04.3", "05.1", "05.2", "05.3"):
        _fails(exercise_id, stub, "not answered yet")
