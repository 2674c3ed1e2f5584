"""Checks for notebook 01, STFT and masks.

* 01.1 ``stft(audio, n_fft, hop)``: the STFT by hand, against :class:`bsr.stft.STFT`;
  a wrong answer is diagnosed (no window, symmetric window, zero padding, no padding).
* 01.2 ``ratio_masks(stem_specs)``: ideal ratio masks, against a float64 reference,
  plus the properties "between 0 and 1", "sum to 1" and "0 in silent bins, not NaN".
* 01.3 ``binary_masks(stem_specs)``: ideal binary masks, one 1 per bin at the loudest stem;
  where stems tie for the loudest (a bin silent in every stem ties at 0) the first of them
  gets it, as ``argmax`` decides, so that every bin still goes to exactly one stem.
* 01.4 ``complex_ratio_mask(stem_spec, mix_spec)``: S / X, against a float64 reference,
  the property mask * X == S, and 0 (not NaN) where the mixture is exactly 0.
* 01.P (the prediction): the fraction of the vocals' and the drums' bins where the complex
  ratio mask exceeds 1 (within 10 percentage points), and whether clipping it to ``|M| <= 1``
  leaves the vocals' uSDR near the exact mask's, near the IRM's (within 3 dB) or in between;
  checked against what the run measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bsr.check import (
    CheckFailed,
    expect,
    expect_close,
    expect_shape,
    register,
    wrong_prediction,
)
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


def _tied_specs() -> torch.Tensor:
    """Stem spectrograms with a silent bin and exact ties for the loudest stem."""
    specs = _stem_specs(103, silent=True)  # bin 0: silent in every stem, all tie at 0
    specs[1, :, 1], specs[2, :, 1] = specs[0, :, 1], 0.5 * specs[0, :, 1]  # stems 0 and 1 tie
    specs[2, :, 2], specs[0, :, 2] = -specs[1, :, 2], 0.5 * specs[1, :, 2]  # 1 and 2 tie
    return specs


@register("01.3", library=("bsr.evaluate.baselines.oracle_masks",))
def check_binary_masks(binary_masks) -> None:
    specs = _tied_specs()
    masks = binary_masks(specs.clone())
    what = "binary_masks(stem_specs of shape (3, 2, 33, 20))"
    expect_shape(masks, tuple(specs.shape), what)
    masks = torch.as_tensor(masks).double()
    values = set(masks.unique().tolist())
    others = ", ".join(f"{v:.3g}" for v in sorted(values - {0.0, 1.0})[:3])
    expect(values <= {0.0, 1.0}, f"{what} should hold only 0 and 1, got also {others}, ...")
    mags = specs.abs()
    loudest = mags == mags.amax(dim=0, keepdim=True)  # several stems where they tie
    reference = (loudest & (loudest.cumsum(dim=0) == 1)).double()  # the first of them
    tied = loudest.sum(dim=0) > 1  # (channels, bins, frames)
    first = "give the bin to the first of them (the lowest stem index), as argmax does"
    counts = masks.sum(dim=0)
    if bool((counts[~tied] != 1).any()):
        raise CheckFailed(f"{what}: exactly one stem should get the bin (mask 1), the others 0")
    wrong = (masks != reference).any(dim=0)  # (channels, bins, frames)
    if bool(wrong[~tied].any()):
        raise CheckFailed(
            f"{what}: in {int(wrong[~tied].sum())} bins the 1 is not on the stem with the "
            "largest magnitude"
        )
    if bool((counts[:, 0] == 0).all()):
        raise CheckFailed(
            f"{what} is all 0 in bins where every stem is silent: a binary mask still gives "
            f"each bin to exactly one stem; there all stems tie at 0, so {first}"
        )
    if bool((counts != 1).any()):
        raise CheckFailed(f"{what}: where stems tie for the loudest, only one gets the 1: {first}")
    if bool(wrong.any()):
        raise CheckFailed(
            f"{what}: where stems tie for the loudest (here in {int(wrong.sum())} bins), {first}"
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


FRACTIONS = ("vocals |M| > 1", "drums |M| > 1")
CLIPPED = "clipped vocals"
WHERE = ("near the exact mask", "near the IRM", "in between")
FRACTION_TOLERANCE = 0.10  # fractions of bins, to within 10 percentage points
NEAR_DB = 3.0  # "near" a uSDR: within 3 dB of it


def _clipped_truth(observed: dict) -> tuple[str, str]:
    """Where the clipped mask's uSDR lands (one of WHERE), and the numbers, for the message."""
    sdr = observed.get("vocals uSDR")
    if not isinstance(sdr, dict) or not {"clipped", "IRM", "exact"} <= set(sdr):
        raise CheckFailed(
            "01.P: observed['vocals uSDR'] should hold the 'clipped', 'IRM' and 'exact' uSDR "
            "in dB; run the cell as it is"
        )
    clipped, irm, exact = (float(sdr[k]) for k in ("clipped", "IRM", "exact"))
    numbers = f"clipped {clipped:.1f} dB, IRM {irm:.1f} dB, exact {exact:.1f} dB"
    if exact - clipped <= NEAR_DB:
        return WHERE[0], numbers
    return (WHERE[1] if abs(clipped - irm) <= NEAR_DB else WHERE[2]), numbers


@register("01.P")
def check_prediction(answer, observed=None) -> None:
    """``answer`` maps each of FRACTIONS to a fraction in [0, 1] and CLIPPED to one of WHERE;
    ``observed`` holds the measured fractions under the same keys and ``"vocals uSDR"``."""
    keys = (*FRACTIONS, CLIPPED)
    if not isinstance(answer, dict) or set(answer) != set(keys):
        raise CheckFailed(f"01.P: PREDICTION should be a dict with the keys {keys}")
    if answer[CLIPPED] not in WHERE:
        raise CheckFailed(f"01.P: {CLIPPED!r} should be one of {WHERE}, got {answer[CLIPPED]!r}")
    if not isinstance(observed, dict) or not set(FRACTIONS) <= set(observed):
        raise CheckFailed(
            f"01.P: observed should hold the measured {FRACTIONS}; run the cell as it is"
        )
    for key in FRACTIONS:
        said, measured = float(answer[key]), float(observed[key])
        if not 0.0 <= said <= 1.0:
            raise CheckFailed(f"01.P: {key!r} is a fraction between 0 and 1 (0.25 for 25 %)")
        if abs(said - measured) > FRACTION_TOLERANCE:
            raise wrong_prediction(
                "01.P", f"you said {key} in {said:.0%} of the bins, but the run gave {measured:.1%}"
            )
    truth, numbers = _clipped_truth(observed)
    if answer[CLIPPED] != truth:
        raise wrong_prediction(
            "01.P",
            f"you said the clipped vocals land {answer[CLIPPED]}, but they land {truth} "
            f"({numbers})",
        )
