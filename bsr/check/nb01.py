"""Checks for notebook 01, STFT and masks.

* 01.1 ``stft(audio, n_fft, hop)``: the STFT by hand, against :class:`bsr.stft.STFT`;
  a wrong answer is diagnosed (no window, symmetric window, zero padding, no padding).
* 01.2 ``ratio_masks(stem_specs)``: ideal ratio masks, against a float64 reference,
  plus the properties "between 0 and 1", "sum to 1" and "0 in silent bins, not NaN".
* 01.3 ``binary_masks(stem_specs)``: ideal binary masks, one 1 per bin at the loudest stem.
* 01.4 ``complex_ratio_mask(stem_spec, mix_spec)``: S / X, against a float64 reference,
  the property mask * X == S, and 0 (not NaN) where the mixture is exactly 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bsr.check import CheckFailed, expect, expect_close, expect_shape, register
from bsr.stft import STFT


def _manual_stft(audio: torch.Tensor, n_fft: int, hop: int, window, pad_mode: str | None):
    """A deliberately configurable STFT, used only to name a learner's mistake."""
    lead, n = audio.shape[:-1], audio.shape[-1]
    x = audio.reshape(-1, 1, n)
    if pad_mode is not None:
        x = F.pad(x, (n_fft // 2, n_fft // 2), mode=pad_mode)
    frames = x[:, 0].unfold(-1, n_fft, hop)  # (batch, frames, n_fft)
    spec = torch.fft.rfft(frames * window, dim=-1).transpose(-1, -2)
    return spec.reshape(*lead, *spec.shape[-2:])


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=1e-3, rtol=1e-3))


@register("01.1", library=("bsr.stft.STFT", "torch.stft", "torch.istft"))
def check_stft(stft) -> None:
    torch.manual_seed(101)
    for shape, n_fft, hop in (((2, 3, 6000), 512, 128), ((8000,), 1024, 441)):
        audio = torch.randn(shape)
        reference = STFT(n_fft, hop)(audio)  # (..., n_fft // 2 + 1, samples // hop + 1)
        got = stft(audio.clone(), n_fft, hop)
        what = f"stft(audio of shape {tuple(shape)}, n_fft={n_fft}, hop={hop})"
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{what} should return a torch tensor, got {type(got).__name__}")
        expect(got.is_complex(), f"{what} should be complex (use torch.fft.rfft), got {got.dtype}")
        bins, frames = n_fft // 2 + 1, shape[-1] // hop + 1
        if tuple(got.shape) != tuple(reference.shape):
            hint = ""
            if got.shape[-1] == bins and got.shape[-2] == frames:
                hint = ": frequency and time are swapped, put bins before frames"
            elif got.shape[-2] == bins and got.shape[-1] != frames:
                hint = (
                    f": {got.shape[-1]} frames instead of samples // hop + 1 = {frames}; "
                    "pad n_fft // 2 samples on both sides before framing (center=True)"
                )
            elif tuple(got.shape[:-2]) != tuple(shape[:-1]):
                hint = f": keep the leading axes {tuple(shape[:-1])} of the input"
            raise CheckFailed(
                f"{what} has shape {tuple(got.shape)}, expected {tuple(reference.shape)}{hint}"
            )
        got = got.to(torch.complex64)
        if not _close(got, reference):
            hann, ones = torch.hann_window(n_fft), torch.ones(n_fft)
            mistakes = (
                (ones, "reflect", "you forgot to multiply each frame by the Hann window"),
                (
                    torch.hann_window(n_fft, periodic=False),
                    "reflect",
                    "use the periodic Hann window, torch.hann_window(n_fft) (the default), "
                    "not periodic=False",
                ),
                (hann, "constant", "pad by reflection (mode='reflect'), as torch.stft does"),
            )
            for window, pad, message in mistakes:
                if _close(got, _manual_stft(audio, n_fft, hop, window, pad)):
                    raise CheckFailed(f"{what} is almost right: {message}")
            expect_close(got, reference, what, atol=1e-3, rtol=1e-3)


def _stem_specs(seed: int, silent: bool) -> torch.Tensor:
    """(stems=3, channels=2, bins=33, frames=20) complex test spectrograms."""
    g = torch.Generator().manual_seed(seed)
    specs = torch.randn(3, 2, 33, 20, 2, generator=g) * torch.rand(3, 1, 33, 1, 1, generator=g)
    specs = torch.view_as_complex(specs.contiguous())
    if silent:
        specs[:, :, 0, :] = 0  # a silent bin in every stem: 0 / 0
    return specs


@register("01.2", library=("bsr.evaluate.baselines.oracle_masks",))
def check_ratio_masks(ratio_masks) -> None:
    specs = _stem_specs(102, silent=True)
    masks = ratio_masks(specs.clone())
    what = "ratio_masks(stem_specs of shape (3, 2, 33, 20))"
    expect_shape(masks, tuple(specs.shape), what)
    masks = torch.as_tensor(masks)
    expect(not masks.is_complex(), f"{what} should be real: a ratio of magnitudes")
    expect(
        bool(torch.isfinite(masks).all()),
        f"{what} has NaN or inf where all stems are silent: give those bins the mask 0",
    )
    mags = specs.abs().double()
    total = mags.sum(dim=0, keepdim=True)
    reference = torch.where(total > 0, mags / total.clamp_min(1e-300), 0.0)
    expect(
        float(masks.min()) >= -1e-6 and float(masks.max()) <= 1 + 1e-6,
        f"{what} should lie between 0 and 1, got values from {float(masks.min()):.3g} "
        f"to {float(masks.max()):.3g}",
    )
    power = mags.square() / mags.square().sum(dim=0, keepdim=True).clamp_min(1e-300)
    if torch.allclose(masks.double()[:, :, 1:], power[:, :, 1:], atol=1e-4):
        raise CheckFailed(f"{what} uses powers |S|^2; this ratio mask divides magnitudes |S|")
    sums = masks.double().sum(dim=0)[:, 1:]  # (channels, bins 1.., frames): bin 0 is silent
    expect(
        torch.allclose(sums, torch.ones_like(sums), atol=1e-4),
        f"{what}: the masks of the stems should add up to 1 in every bin",
    )
    expect(
        float(masks[:, :, 0].abs().max()) == 0.0,
        f"{what} should be exactly 0 in bins where every stem is silent",
    )
    expect_close(masks.double(), reference, what, atol=1e-5, rtol=1e-4)


@register("01.3", library=("bsr.evaluate.baselines.oracle_masks",))
def check_binary_masks(binary_masks) -> None:
    specs = _stem_specs(103, silent=False)
    masks = binary_masks(specs.clone())
    what = "binary_masks(stem_specs of shape (3, 2, 33, 20))"
    expect_shape(masks, tuple(specs.shape), what)
    masks = torch.as_tensor(masks).double()
    values = set(masks.unique().tolist())
    others = ", ".join(f"{v:.3g}" for v in sorted(values - {0.0, 1.0})[:3])
    expect(values <= {0.0, 1.0}, f"{what} should hold only 0 and 1, got also {others}, ...")
    expect(
        bool((masks.sum(dim=0) == 1).all()),
        f"{what}: exactly one stem should get the bin (mask 1), the others 0",
    )
    winner = specs.abs().argmax(dim=0, keepdim=True)
    reference = torch.zeros_like(masks).scatter_(0, winner, 1.0)
    if not torch.equal(masks, reference):
        wrong = int((masks != reference).any(dim=0).sum())
        raise CheckFailed(
            f"{what}: in {wrong} bins the 1 is not on the stem with the largest magnitude"
        )


@register("01.4", library=("bsr.evaluate.baselines.oracle_masks",))
def check_complex_ratio_mask(complex_ratio_mask) -> None:
    g = torch.Generator().manual_seed(104)
    stem = torch.view_as_complex(torch.randn(2, 33, 20, 2, generator=g))
    other = torch.view_as_complex(torch.randn(2, 33, 20, 2, generator=g))
    mixture = stem + other
    mixture[:, 5, 3] = 0  # an exactly silent mixture bin
    what = "complex_ratio_mask(stem_spec, mix_spec) for shape (2, 33, 20)"
    mask = complex_ratio_mask(stem.clone(), mixture.clone())
    expect_shape(mask, tuple(stem.shape), what)
    mask = torch.as_tensor(mask)
    expect(mask.is_complex(), f"{what} should be complex: it corrects phase as well as level")
    expect(
        bool(torch.isfinite(mask).all()),
        f"{what} has NaN or inf where the mixture is 0: give those bins the mask 0",
    )
    expect(float(mask[:, 5, 3].abs().max()) == 0.0, f"{what} should be 0 where the mixture is 0")
    s, x = stem.to(torch.complex128), mixture.to(torch.complex128)
    live = x.abs() > 0
    product = mask.to(torch.complex128) * x
    if not torch.allclose(product[live], s[live], atol=1e-4, rtol=1e-3):
        if torch.allclose(mask.to(torch.complex128)[live], (x / s)[live], rtol=1e-3):
            raise CheckFailed(f"{what} is upside down: the mask is S / X, not X / S")
        raise CheckFailed(f"{what}: mask * mixture should give back the stem exactly")
    reference = torch.where(live, s / torch.where(live, x, 1), 0)
    expect_close(mask.to(torch.complex128), reference, what, atol=1e-5, rtol=1e-4)
