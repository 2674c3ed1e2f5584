"""Checks for notebook 02, the band split.

* 02.1 ``band_sizes(sample_rate, n_fft)``: the paper's Hz rule, against
  :func:`bsr.bands.paper_band_sizes` at 44.1 kHz / 2048 (62 bands, 1025 bins) and at two
  other settings, naming the first band that differs.
* 02.2 ``to_features(spec)``: complex -> interleaved real features, against
  :func:`bsr.stft.complex_to_features`; channel-major order and swapped real/imaginary
  parts are named.
* 02.3 ``rms_norm(x, gamma)``: against :class:`bsr.norm.RMSNorm` and a float64 formula,
  plus "an all-zero input gives zeros, not NaN".
* 02.4 ``band_split(features, feature_sizes, gammas, weights, biases)``: against
  :class:`bsr.band_split.BandSplit` holding the same weights.
"""

from __future__ import annotations

import torch

from bsr.band_split import BandSplit
from bsr.bands import paper_band_sizes
from bsr.check import CheckFailed, expect, expect_close, expect_shape, register
from bsr.norm import RMSNorm
from bsr.stft import complex_to_features


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
        n_bins = n_fft // 2 + 1
        expect(
            sum(got) == n_bins,
            f"{what}: the bands cover {sum(got)} bins, but n_fft // 2 + 1 = {n_bins}",
        )
        if got != reference:
            first = next(
                (b for b, (x, y) in enumerate(zip(got, reference)) if x != y),
                min(len(got), len(reference)),
            )
            mine = got[first] if first < len(got) else "nothing"
            theirs = reference[first] if first < len(reference) else "nothing"
            raise CheckFailed(
                f"{what} gives {len(got)} bands, expected {len(reference)}; "
                f"band {first} (starting at bin {sum(got[:first])}) has {mine} bins, "
                f"expected {theirs}"
            )


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
                f"{what} puts the channel outermost; the features should run frequency-major: "
                "index = 2 * (channels * f + c) + part"
            )
        if torch.allclose(got, swapped):
            raise CheckFailed(f"{what} has imaginary before real: real part first, please")
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
