import time

import pytest
import torch
from conftest import tiny_config as tiny

from bsr.config import load_config
from bsr.model import BSRoformer, count_parameters


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    "stems",
    [
        ["vocals"],
        ["vocals", "drums"],
        ["vocals", "drums", "bass"],
        ["vocals", "drums", "bass", "other"],
    ],
)
def test_output_shape(channels, stems):
    model = BSRoformer(tiny(channels=channels, stems=stems))
    audio = torch.randn(2, channels, 3001)
    assert model(audio).shape == (2, len(stems), channels, 3001)


def test_wrong_channel_count_is_refused():
    model = BSRoformer(tiny(channels=2))
    with pytest.raises(ValueError, match=r"\(batch, 2, samples\)"):
        model(torch.randn(1, 1, 1000))


@pytest.mark.parametrize(
    "variant", [dict(), dict(mask_norm="final", gates=True), dict(bands="mel", num_mel_bands=8)]
)
def test_gradients_reach_every_parameter(variant):
    model = BSRoformer(tiny(stems=["vocals", "bass"], **variant))
    model(torch.randn(2, 2, 2000)).square().mean().backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


@pytest.mark.parametrize(
    "preset,millions", [("paper-l6", 72.2), ("paper-l12", 93.4), ("mel-l6", 84.2)]
)
def test_paper_parameter_counts(preset, millions):
    with torch.device("meta"):  # count without allocating 300 MB of weights
        model = BSRoformer(load_config(preset).model)
    assert abs(count_parameters(model) / 1e6 - millions) < 0.1


def test_paper_part_sizes():
    """Spec: at L=6 mask estimator ~49M, transformer stack ~21M, band split ~1.6M."""
    with torch.device("meta"):
        model = BSRoformer(load_config("paper-l6").model)
    assert abs(count_parameters(model.mask_estimators) / 1e6 - 49.3) < 0.5
    assert abs(count_parameters(model.layers) / 1e6 - 21.3) < 0.5
    assert abs(count_parameters(model.band_split) / 1e6 - 1.6) < 0.05


@pytest.mark.parametrize("bands", ["paper", "mel"])
def test_unit_mask_returns_the_input(bands, monkeypatch):
    model = BSRoformer(tiny(bands=bands, num_mel_bands=10, stems=["a", "b"]))
    audio = torch.randn(1, 2, 4000)
    monkeypatch.setattr(
        model,
        "estimate_masks",
        lambda spec, rope=None: torch.ones(
            spec.shape[0], 2, *spec.shape[1:], dtype=torch.complex64
        ),
    )
    out = model(audio)
    assert torch.allclose(out[:, 0], audio, atol=1e-5) and torch.allclose(
        out[:, 1], audio, atol=1e-5
    )


def test_mel_masks_of_shared_bins_are_averaged():
    """With overlapping bands, a bin's mask is the mean over the bands that hold it."""
    model = BSRoformer(tiny(bands="mel", num_mel_bands=10, stems=["a"], channels=1))
    estimator = model.mask_estimators[0]
    estimator.batched = False  # the patched heads below live in the per-band loop
    # Make band b predict the constant mask value b + 1 (real part), 0 (imaginary).

    def constant(value: float, bins: int):
        return lambda x: torch.tensor([value, 0.0]).repeat(bins).expand(*x.shape[:-1], -1)

    for b, head in enumerate(estimator.bands):
        head.forward = constant(float(b + 1), len(model.layout.bins[b]))
    spec = model.stft(torch.randn(1, 1, 2000))
    masks = model.estimate_masks(spec)[0, 0, 0, :, 0]  # (bins,) of the first frame
    for f in range(model.layout.n_bins):
        owners = [b + 1 for b, band in enumerate(model.layout.bins) if f in band]
        assert masks[f].real.item() == pytest.approx(sum(owners) / len(owners))


def test_seeded_models_are_identical_and_deterministic():
    torch.manual_seed(3)
    a = BSRoformer(tiny())
    torch.manual_seed(3)
    b = BSRoformer(tiny())
    audio = torch.randn(1, 2, 3000)
    assert torch.equal(a(audio), b(audio))
    assert torch.equal(a(audio), a(audio))


def test_tiny_preset_separates_seven_seconds_quickly():
    model = BSRoformer(load_config("tiny").model).eval()
    audio = torch.randn(1, 2, 7 * 44100)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(audio)
    assert out.shape == (1, 4, 2, 7 * 44100)
    assert torch.isfinite(out).all()
    print(f"tiny preset, 7 s stereo: {time.perf_counter() - start:.2f} s")


def test_rope_switch_changes_the_output():
    model = BSRoformer(tiny()).eval()
    audio = torch.randn(1, 2, 3000)
    with_rope = model(audio)
    assert not torch.allclose(with_rope, model(audio, rope=False))
