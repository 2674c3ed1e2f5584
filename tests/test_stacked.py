"""The batched band layers compute exactly what the per-band loops teach."""

from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_config

from bsr.model import BSRoformer
from bsr.stacked import equal_runs, use_batched


def test_equal_runs():
    assert equal_runs([2, 2, 4, 4, 4, 2]) == [(0, 2, 2), (2, 3, 4), (5, 1, 2)]
    assert equal_runs([]) == []


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(mask_norm="final", gates=True, mask_estimator_depth=3),
        dict(bands="mel", num_mel_bands=12),
        dict(bands=[3, 3, 50, 40, 33], channels=1),
    ],
)
def test_batched_equals_per_band(options):
    config = tiny_config(stems=["a", "b"], mlp_expansion_factor=2, **options)
    model = BSRoformer(config).eval()
    for p in model.parameters():  # random norms too, so every parameter matters
        torch.nn.init.normal_(p, std=0.2)
    set_batched(model, True)  # the default picks by device: force the batched form
    audio = torch.randn(2, config.channels, 3000)
    batched = model(audio)
    features = torch.randn(2, 7, sum(model.band_split.feature_sizes))
    split = model.band_split(features)
    masks = [m(split) for m in model.mask_estimators]
    set_batched(model, False)
    assert torch.allclose(model.band_split(features), split, atol=1e-5)
    for estimator, mask in zip(model.mask_estimators, masks):
        assert torch.allclose(estimator(split), mask, atol=1e-5)
    assert torch.allclose(model(audio), batched, atol=1e-5)
    assert set(model.state_dict()) == set(BSRoformer(config).state_dict())


def test_batched_gradients_match_per_band():
    config = tiny_config(stems=["a"], mlp_expansion_factor=2)  # no dropout: runs must agree
    model = BSRoformer(config)
    set_batched(model, True)
    audio = torch.randn(1, 2, 2000)
    model(audio).square().mean().backward()
    batched = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    set_batched(model, False)
    model(audio).square().mean().backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, batched[name], atol=1e-6, rtol=1e-4), name


def set_batched(model: BSRoformer, batched: bool | None) -> None:
    for module in (model.band_split, *model.mask_estimators):
        module.batched = batched


def test_default_form_follows_the_device(monkeypatch):
    """``batched=None`` runs the loop on a CPU and the batched form on a GPU."""
    model = BSRoformer(tiny_config())
    split = model.band_split
    calls = []
    monkeypatch.setattr(split, "forward_batched", lambda x: calls.append("batched"))
    monkeypatch.setattr(split, "forward_per_band", lambda x: calls.append("per band"))
    features = torch.zeros(1, 2, sum(split.feature_sizes))
    split(features)
    split.batched = True
    split(features)
    assert calls == ["per band", "batched"]
    gpu = SimpleNamespace(is_cuda=True)  # stands in for a CUDA tensor on a machine without one
    assert use_batched(None, gpu) and not use_batched(None, features)
    assert not use_batched(False, gpu) and use_batched(True, features)
