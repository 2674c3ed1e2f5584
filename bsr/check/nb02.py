"""Checks for notebook 02, the band split.

* 02.1 ``band_sizes(sample_rate, n_fft)``: a layout the learner designs from the paper's
  rule (widths per frequency range) and four stated constraints; each band is tested against
  the constraints at 44.1 kHz / 2048 (62 bands, 1025 bins) and two other settings, naming the
  first band and the constraint it breaks, then compared with
  :func:`bsr.bands.paper_band_sizes`.
* 02.2 ``to_features(spec)``: complex -> real features in the layout the learner derives
  from two constraints (every band a contiguous slice; within a bin, channel by channel,
  real before imaginary); against :func:`bsr.stft.complex_to_features`, with bins that are
  not contiguous, channel-major order and swapped real/imaginary parts named, and otherwise
  the first feature that holds the wrong value.
* 02.3 ``rms_norm(x, gamma)``: against :class:`bsr.norm.RMSNorm` and a float64 formula,
  plus "an all-zero input gives zeros, not NaN".
* 02.4 ``band_split(features, feature_sizes, gammas, weights, biases)``: against
  :class:`bsr.band_split.BandSplit` holding the same weights.
* 02.P (the prediction): how many parameters the band split (about a hundred, ten thousand or
  half a million) and the mask estimator (a number, within a factor of 2) lose when the 24
  two-bin bands are merged in pairs; counted here, on the meta device.
"""

from __future__ import annotations

import math

import torch

from bsr.band_split import BandSplit
from bsr.bands import PAPER_N_FFT, PAPER_RULE, paper_band_sizes
from bsr.check import (
    CheckFailed,
    expect,
    expect_close,
    expect_shape,
    register,
    wrong_prediction,
)
from bsr.norm import RMSNorm
from bsr.stft import complex_to_features


def _band_fault(sizes: tuple[int, ...], rate: int, n_fft: int) -> str | None:
    """The first band of ``sizes`` that breaks the notebook's constraints, said in words."""
    n_bins, hz = n_fft // 2 + 1, rate / n_fft
    start = 0
    for b, size in enumerate(sizes):
        where = f"band {b} starts at bin {start} ({start * hz:,.0f} Hz)"
        if start >= n_bins:
            return f"{where}, past the last bin, n_fft // 2 = {n_bins - 1}"
        low = 0
        for edge, width_2048 in PAPER_RULE:
            if start * hz < edge:
                width = max(1, round(width_2048 * n_fft / PAPER_N_FFT))
                if size == min(width, n_bins - start):
                    break
                if n_fft != PAPER_N_FFT and size == min(width_2048, n_bins - start):
                    return (
                        f"{where}, in the range {low}-{edge} Hz, and keeps the 2048-point "
                        f"width, {width_2048} bins; but a bin of a {n_fft}-point FFT is "
                        f"{PAPER_N_FFT / n_fft:g} times as wide in Hz"
                    )
                return (
                    f"{where}, in the range {low}-{edge} Hz, so it should be {width} bins wide, "
                    f"not {size}"
                )
            low = edge
        else:  # above the rule's last edge: the rest, in two bands
            rest = n_bins - start
            top = (rest,) if rest == 1 else (rest // 2, rest - rest // 2)
            if tuple(sizes[b:]) != top:
                return (
                    f"{where}, above {low} Hz, where the {rest} bins left should form two bands "
                    "as equal as possible, the upper one the larger if their count is odd; "
                    f"you have {tuple(sizes[b:])}"
                )
            return None
        start += size
    return f"the bands stop at bin {start - 1}; they must cover every bin up to {n_bins - 1}"


@register(
    "02.1",
    library=(
        "bsr.bands.paper_band_sizes",
        "bsr.bands.make_layout",
        "bsr.bands.BandLayout",
    ),
)
def check_band_sizes(band_sizes) -> None:
    for rate, n_fft in ((44100, 2048), (48000, 2048), (44100, 4096)):
        reference = paper_band_sizes(rate, n_fft)
        got = band_sizes(rate, n_fft)
        what = f"band_sizes({rate}, {n_fft})"
        try:
            got = tuple(int(s) for s in got)
        except TypeError:
            raise CheckFailed(f"{what} should return a sequence of band widths") from None
        expect(all(s > 0 for s in got), f"{what}: every band needs at least one bin")
        fault = _band_fault(got, rate, n_fft)
        if fault is not None:
            count = f" gives {len(got)} bands, expected {len(reference)};"
            raise CheckFailed(f"{what}{count if len(got) != len(reference) else ':'} {fault}")
        expect(got == reference, f"{what} meets the constraints but differs from the paper's")


def _coded_spec(channels: int, bins: int, frames: int) -> torch.Tensor:
    """A spectrogram whose every value names its place: real part ``100 f + 10 c + 1``,
    imaginary part ``100 f + 10 c + 2`` for bin ``f`` and channel ``c``; shape
    ``(1, channels, bins, frames)``."""
    f = torch.arange(bins, dtype=torch.float32)[None, :, None]
    c = torch.arange(channels, dtype=torch.float32)[:, None, None]
    code = (100 * f + 10 * c).expand(channels, bins, frames)
    return torch.complex(code + 1, code + 2)[None]


def _decode(value: float) -> str:
    code = int(round(value))
    if code % 10 not in (1, 2):
        return f"the value {value:g}, which is no real or imaginary part of the input"
    part = "real" if code % 10 == 1 else "imaginary"
    return f"bin {code // 100}, channel {code // 10 % 10}, {part} part"


def _layout_fault(to_features, channels: int) -> str | None:
    """Where the learner's layout puts each value, in words, if it is not the community's."""
    spec = _coded_spec(channels, 5, 3)
    got = torch.as_tensor(to_features(spec.clone()))[0, 0]  # (bins * channels * 2,), frame 0
    reference = complex_to_features(spec)[0, 0]
    if got.shape != reference.shape or torch.equal(got, reference):
        return None
    width = 2 * channels  # features per bin
    for f in range(5):
        places = [k for k, v in enumerate(got.tolist()) if int(round(v)) // 100 == f]
        if places and places[-1] - places[0] + 1 != width:
            return (
                f"the {width} values of bin {f} sit at features {places}: a band can be one "
                "contiguous slice only if the values of each bin sit next to each other"
            )
    k = int((got != reference).nonzero()[0])
    should = _decode(float(reference[k]))
    return f"feature {k} holds {_decode(float(got[k]))}; it should hold {should}"


@register("02.2", library=("bsr.stft.complex_to_features",))
def check_to_features(to_features) -> None:
    g = torch.Generator().manual_seed(202)
    for channels in (2, 1):
        spec = torch.view_as_complex(torch.randn(3, channels, 7, 5, 2, generator=g))
        reference = complex_to_features(spec)  # (3, 5, 7 * channels * 2)
        got = to_features(spec.clone())
        what = f"to_features(spec of shape {tuple(spec.shape)})"
        expect_shape(got, tuple(reference.shape), what)
        got = torch.as_tensor(got)
        expect(not got.is_complex(), f"{what} should be real: split real and imaginary parts")
        if torch.allclose(got, reference):
            continue
        channel_major = torch.view_as_real(spec).permute(0, 3, 1, 2, 4).reshape(reference.shape)
        swapped = torch.view_as_real(spec).flip(-1).permute(0, 3, 2, 1, 4).reshape(reference.shape)
        if torch.allclose(got, channel_major):
            raise CheckFailed(
                f"{what} puts the channel outermost, so every band is cut into {channels} "
                "pieces; the features must run frequency-major (the bins outermost) for a band "
                "to be one contiguous slice"
            )
        if torch.allclose(got, swapped):
            raise CheckFailed(f"{what} has imaginary before real: real part first, please")
        fault = _layout_fault(to_features, channels)
        if fault is not None:
            raise CheckFailed(f"{what}: {fault}")
        expect_close(got, reference, what)


@register(
    "02.3",
    library=(
        "bsr.norm.RMSNorm.forward",
        "torch.nn.functional.rms_norm",
        "torch.rms_norm",
    ),
)
def check_rms_norm(rms_norm) -> None:
    g = torch.Generator().manual_seed(203)
    x = torch.randn(4, 6, 20, generator=g) * 3.0
    gamma = torch.rand(20, generator=g) + 0.5
    what = "rms_norm(x of shape (4, 6, 20), gamma)"
    got = rms_norm(x.clone(), gamma.clone())
    expect_shape(got, tuple(x.shape), what)
    xd = x.double()
    reference = xd / xd.square().mean(dim=-1, keepdim=True).sqrt() * gamma.double()
    got = torch.as_tensor(got)
    if torch.isfinite(got).all() and not torch.allclose(got.double(), reference, atol=1e-4):
        centred = xd - xd.mean(dim=-1, keepdim=True)
        layer = centred / centred.square().mean(dim=-1, keepdim=True).sqrt() * gamma.double()
        if torch.allclose(got.double(), layer, atol=1e-4):
            raise CheckFailed(f"{what} subtracts the mean (LayerNorm); RMSNorm does not")
        unscaled = reference / gamma.double()
        if torch.allclose(got.double(), unscaled, atol=1e-4):
            raise CheckFailed(f"{what} forgets to multiply by gamma")
    expect_close(got.double(), reference, what, atol=1e-4, rtol=1e-4)
    norm = RMSNorm(20)
    with torch.no_grad():
        norm.gamma.copy_(gamma)
        expect_close(got, norm(x), what + " against bsr.norm.RMSNorm", atol=1e-4, rtol=1e-4)
    zeros = rms_norm(torch.zeros(2, 20), gamma.clone())
    expect(
        bool(torch.isfinite(torch.as_tensor(zeros)).all()),
        "rms_norm of an all-zero vector (a silent band) gives NaN or inf: guard the division, "
        "e.g. with torch.nn.functional.normalize or a small eps",
    )
    expect(
        float(torch.as_tensor(zeros).abs().max()) < 1e-6,
        "rms_norm of an all-zero vector should be all zeros",
    )


@register("02.4", library=("bsr.band_split.BandSplit", "bsr.band_split.BandProjection.forward"))
def check_band_split(band_split) -> None:
    torch.manual_seed(204)
    feature_sizes, dim = (4, 4, 8, 12, 20), 6
    module = BandSplit(feature_sizes, dim)
    with torch.no_grad():
        for band in module.bands:
            band.norm.gamma.uniform_(0.5, 1.5)
    features = torch.randn(2, 9, sum(feature_sizes))  # (batch, T, sum 2*C*F_b)
    gammas = [band.norm.gamma.detach().clone() for band in module.bands]
    weights = [band.linear.weight.detach().clone() for band in module.bands]
    biases = [band.linear.bias.detach().clone() for band in module.bands]
    what = f"band_split(features of shape (2, 9, {sum(feature_sizes)}), sizes {feature_sizes})"
    got = band_split(features.clone(), feature_sizes, gammas, weights, biases)
    expected = (2, 9, len(feature_sizes), dim)
    if tuple(getattr(got, "shape", ())) == (2, 9, dim, len(feature_sizes)):
        raise CheckFailed(f"{what} has shape (2, 9, D, N): stack the bands on dim -2 -> (B,T,N,D)")
    expect_shape(got, expected, what + " -> (batch, T, N, D)")
    with torch.no_grad():
        reference = module.forward_per_band(features)
    got = torch.as_tensor(got).detach()
    for b in range(len(feature_sizes)):
        if not torch.allclose(got[:, :, b], reference[:, :, b], atol=1e-4, rtol=1e-4):
            raise CheckFailed(
                f"{what}: band {b} (features {sum(feature_sizes[:b])} to "
                f"{sum(feature_sizes[: b + 1]) - 1}) is wrong; first RMSNorm with gammas[{b}], "
                f"then x @ weights[{b}].T + biases[{b}]"
            )
    expect_close(got, reference, what, atol=1e-4, rtol=1e-4)


SPLIT, MASKS = "band split", "mask estimator"
SPLIT_CHOICES = {"about a hundred": 1e2, "about ten thousand": 1e4, "about half a million": 5e5}


def _parameters_lost(dim: int = 384) -> dict[str, int]:
    """Parameters the band split and the mask estimator lose when the paper layout's 24
    two-bin bands are merged in pairs (62 -> 50 bands); counted on the meta device."""
    from bsr.mask_estimator import MaskEstimator
    from bsr.model import count_parameters

    paper = paper_band_sizes(44100, 2048)
    merged = (4,) * 12 + paper[24:]

    def counts(sizes) -> tuple[int, int]:
        features = [4 * s for s in sizes]  # 2 * C * F_b, stereo
        with torch.device("meta"):  # shapes only
            split = count_parameters(BandSplit(features, dim))
            return split, count_parameters(MaskEstimator(dim, features))

    before, after = counts(paper), counts(merged)
    return {SPLIT: before[0] - after[0], MASKS: before[1] - after[1]}


@register("02.P")
def check_prediction(answer, observed=None) -> None:
    """``answer`` is ``{SPLIT: one of SPLIT_CHOICES, MASKS: parameters lost}``; the truth is
    counted here. The mask estimator's number counts within a factor of 2."""
    if not isinstance(answer, dict) or set(answer) != {SPLIT, MASKS}:
        raise CheckFailed(f"02.P: PREDICTION should be a dict with the keys {SPLIT!r}, {MASKS!r}")
    if answer[SPLIT] not in SPLIT_CHOICES:
        raise CheckFailed(f"02.P: {SPLIT!r} should be one of {tuple(SPLIT_CHOICES)}")
    lost = _parameters_lost()
    nearest = min(SPLIT_CHOICES, key=lambda c: abs(math.log(SPLIT_CHOICES[c] / lost[SPLIT])))
    if answer[SPLIT] != nearest:
        raise wrong_prediction(
            "02.P",
            f"you said the band split loses {answer[SPLIT]} parameters, but it loses "
            f"{lost[SPLIT]:,}",
        )
    said = float(answer[MASKS])
    if not said > 0 or not 0.5 <= said / lost[MASKS] <= 2.0:
        raise wrong_prediction(
            "02.P",
            f"you said the mask estimator loses {said:,.0f} parameters, but it loses "
            f"{lost[MASKS]:,} (within a factor of 2 counts)",
        )
