"""Checks for notebook 05 (mask estimation and the full model).

* 05.1 ``(band_mask, head_parameters)``: one band's mask head (RMSNorm, Linear, Tanh,
  Linear, GLU), against :class:`bsr.mask_estimator.BandMask` with the same weights, and the
  learner's count of its parameters, ``head_parameters(dim, bins, channels, expansion)``,
  derived before building it and checked against ``BandMask`` for several configurations
  (``band_mask`` handed in alone is checked alone).
* 05.2 ``apply_complex_mask(masks, spec)``: the complex product of every stem's mask with
  the mixture, against the product inside :meth:`bsr.model.BSRoformer.apply_masks`.
* 05.3 ``estimate_masks(model, spec)``: the whole network from spectrogram to masks,
  against :meth:`bsr.model.BSRoformer.estimate_masks`.
* 05.P (the prediction): the parameters of the paper's L = 12 model, in millions, within
  5 %; the truth is counted here on the ``meta`` device.
"""

from __future__ import annotations

import torch

from bsr.check import (
    CheckFailed,
    expect,
    expect_close,
    expect_shape,
    register,
    small_model,
    wrong_prediction,
)
from bsr.check.watch import COMPLEX_PRODUCT
from bsr.config import load_config
from bsr.mask_estimator import BandMask
from bsr.model import BSRoformer
from bsr.stft import complex_to_features, features_to_complex


def _close(a, b, atol: float = 1e-5) -> bool:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape or a.is_complex() != b.is_complex():
        return False
    if a.is_complex():
        return torch.allclose(a.cdouble(), b.cdouble(), atol=atol, rtol=1e-4)
    return torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


def _variant(x, gamma, w1, b1, w2, b2, norm=True, act=torch.tanh, swap=False):
    """One band's head in float64, with the usual mistakes as switches."""
    x = x.double()
    if norm:
        x = x / x.square().mean(-1, keepdim=True).sqrt() * gamma.double()
    h = act(x @ w1.double().T + b1.double())
    y = h @ w2.double().T + b2.double()
    a, b = y.chunk(2, dim=-1)
    return b * a.sigmoid() if swap else a * b.sigmoid()


LIBRARY_05_1 = ("bsr.mask_estimator.BandMask.forward", "bsr.mask_estimator.MaskEstimator")


@register("05.1", library=LIBRARY_05_1)
def check_band_mask(answer) -> None:
    """``answer``: ``(band_mask, head_parameters)``, or ``band_mask`` alone."""
    band_mask, head_parameters = answer if isinstance(answer, tuple) else (answer, None)
    _check_head(band_mask)
    if head_parameters is not None:
        _check_head_parameters(head_parameters)


def _head_size(dim: int, bins: int, channels: int, expansion: int, **slips) -> int:
    """One band's head counted by hand, with the usual slips as switches."""
    hidden, outputs = expansion * dim, 2 * 2 * channels * bins  # 2 * (real, imag per channel)
    if slips.get("no_glu"):
        outputs //= 2
    bias = 0 if slips.get("no_bias") else 1
    gamma = 0 if slips.get("no_gamma") else dim
    return gamma + (dim + bias) * hidden + (hidden + bias) * outputs


def _check_head_parameters(head_parameters) -> None:
    slips = {
        "no_gamma": "the RMSNorm's gain gamma has parameters too, one per feature",
        "no_bias": "each Linear layer has a bias as well as a weight matrix",
        "no_glu": (
            "the last Linear is half as wide as it must be: the GLU halves what it is given, "
            "and the mask needs a real and an imaginary value per bin and channel"
        ),
    }
    for dim, bins, channels, expansion in ((384, 128, 2, 4), (8, 3, 1, 2), (16, 5, 2, 3)):
        call = f"head_parameters({dim}, {bins}, {channels}, {expansion})"
        try:
            got = int(head_parameters(dim, bins, channels, expansion))
        except (TypeError, ValueError):
            raise CheckFailed(f"{call} should return a whole number") from None
        head = BandMask(dim, 2 * channels * bins, depth=2, expansion=expansion, norm=True)
        true = sum(p.numel() for p in head.parameters())
        if got == true:
            continue
        config = (dim, bins, channels, expansion)
        hints = [why for slip, why in slips.items() if got == _head_size(*config, **{slip: True})]
        hint = f": {hints[0]}" if hints else ""
        raise CheckFailed(f"{call} is {got:,}, but that head has {true:,} parameters{hint}")


def _check_head(band_mask) -> None:
    torch.manual_seed(5)
    dim, dim_out = 12, 8  # D and 2*C*F_b (stereo, 2 bins: 8 mask features)
    head = BandMask(dim, dim_out, depth=2, expansion=4, norm=True)
    with torch.no_grad():
        head.norm.gamma.uniform_(0.5, 1.5)
    lin1, lin2 = head.mlp[0], head.mlp[2]
    params = [p.detach() for p in (head.norm.gamma, lin1.weight, lin1.bias, lin2.weight, lin2.bias)]
    x = torch.randn(3, 7, dim) * 2  # (batch, T, D)
    with torch.no_grad():
        got = torch.as_tensor(band_mask(x.clone(), *params))
        expected = head(x)
    if tuple(got.shape) == (3, 7, 2 * dim_out):
        raise CheckFailed(
            f"the output has {2 * dim_out} features, twice the band's {dim_out}: the GLU "
            "should halve them (first half times sigmoid of the second half)"
        )
    expect_shape(got, (3, 7, dim_out), f"band_mask(x) for x (3, 7, {dim}) and {dim_out} outputs")
    if _close(got, _variant(x, *params, swap=True)):
        raise CheckFailed(
            "the GLU halves are swapped: the FIRST half is the value and the SECOND goes "
            "through the sigmoid (a * sigmoid(b))"
        )
    if _close(got, _variant(x, *params, norm=False)):
        raise CheckFailed("the RMSNorm is missing: normalise x to unit RMS, times gamma, first")
    for name, act in (("ReLU", torch.relu), ("GELU", torch.nn.functional.gelu)):
        if _close(got, _variant(x, *params, act=act)):
            raise CheckFailed(f"the paper's mask MLP uses Tanh between the Linears, not {name}")
    if _close(got, _variant(x, *params, act=lambda t: t)):
        raise CheckFailed("there is no Tanh between the two Linear layers")
    expect_close(got, expected, "band_mask(x, ...) against BandMask", atol=1e-4)


@register("05.2", library=("bsr.model.BSRoformer.apply_masks", COMPLEX_PRODUCT))
def check_apply_complex_mask(apply_complex_mask) -> None:
    torch.manual_seed(52)
    batch, stems, channels, bins, frames = 2, 3, 2, 9, 5
    masks = torch.randn(batch, stems, channels, bins, frames, dtype=torch.complex64)
    spec = torch.randn(batch, channels, bins, frames, dtype=torch.complex64)
    what = "apply_complex_mask(masks, spec)"
    try:
        got = apply_complex_mask(masks.clone(), spec.clone())
    except NotImplementedError:
        raise
    except RuntimeError as error:
        raise CheckFailed(
            f"{what} failed with masks {tuple(masks.shape)} and spec {tuple(spec.shape)}: "
            f"{error}. The mixture has no stems axis: spec.unsqueeze(1) lines it up with masks"
        ) from error
    expect_shape(got, (batch, stems, channels, bins, frames), what + " (one spectrogram per stem)")
    got = torch.as_tensor(got)
    expect(got.is_complex(), f"{what} should be a complex tensor (torch.complex(real, imag))")
    expected = masks * spec.unsqueeze(1)
    if _close(got, masks.abs() * spec.unsqueeze(1)):
        raise CheckFailed(
            "you applied only the mask's magnitude: a complex mask also turns the phase, "
            "multiply by the whole complex number"
        )
    if _close(got, masks.conj() * spec.unsqueeze(1)):
        raise CheckFailed(
            "the imaginary part has the wrong sign: (a + ib)(c + id) = (ac - bd) + i(ad + bc)"
        )
    if _close(got.real, expected.real) and not _close(got.imag, expected.imag):
        raise CheckFailed("the real part is right but the imaginary part is not: it is ad + bc")
    if _close(got.imag, expected.imag) and not _close(got.real, expected.real):
        raise CheckFailed("the imaginary part is right but the real part is not: it is ac - bd")
    expect_close(got, expected, what, atol=1e-5)
    # Through the inverse STFT, it is exactly what the model does.
    model = small_model()
    audio = torch.randn(1, 2, 2000)
    spec = model.stft(audio)
    with torch.no_grad():
        masks = model.estimate_masks(spec)
        ours = model.stft.inverse(torch.as_tensor(apply_complex_mask(masks, spec)), 2000)
        theirs = model.apply_masks(spec, masks, 2000)
    expect_close(ours, theirs, "the separated audio (iSTFT of your product)", atol=1e-4)


@register("05.3", library=("bsr.model.BSRoformer.estimate_masks", "bsr.model.BSRoformer.forward"))
def check_estimate_masks(estimate_masks) -> None:
    torch.manual_seed(53)
    for overrides in (
        {"stems": ["vocals", "drums", "bass"]},
        {"mask_norm": "final", "stems": ["vocals", "drums", "bass", "other"]},
    ):
        model = small_model(**overrides)
        with torch.no_grad():
            for p in model.parameters():  # make every norm matter
                if p.dim() == 1:
                    p.uniform_(0.5, 1.5)
        audio = torch.randn(2, 2, 1500)
        spec = model.stft(audio)
        stems = len(model.stems)
        with torch.no_grad():
            got = estimate_masks(model, spec.clone())
            expected = model.estimate_masks(spec)
            no_rope = model.estimate_masks(spec, rope=False)
        expect_shape(got, tuple(expected.shape), f"the masks of a {stems}-stem model")
        got = torch.as_tensor(got)
        expect(got.is_complex(), "the masks should be complex: use features_to_complex")
        if _close(got, no_rope, atol=1e-4):
            raise CheckFailed(
                "your masks match the model with RoPE switched off: give every block "
                "model.time_rope and model.band_rope"
            )
        if model.config.mask_norm == "final" and not _close(got, expected, atol=1e-4):
            with torch.no_grad():
                x = model.band_split(complex_to_features(spec))
                for block in model.layers:
                    x = block(x, model.time_rope, model.band_rope)
                skipped = [features_to_complex(m(x), model.channels) for m in model.mask_estimators]
            if _close(got, torch.stack(skipped, 1), atol=1e-4):
                raise CheckFailed(
                    "with mask_norm='final' the model normalises once after the last block: "
                    "apply model.final_norm before the mask estimators"
                )
        expect_close(got, expected, f"the masks of a {stems}-stem model", atol=1e-4)


@register("05.P")
def check_prediction(answer, observed: dict | None = None) -> None:
    """``answer``: the parameters of ``paper-l12`` in millions, within 5 %.

    ``observed`` (optional) maps preset names to the run's counts in millions.
    """
    if not isinstance(answer, (int, float)) or not answer > 0:
        raise wrong_prediction("05.P", f"write a number of millions, not {answer!r}")
    with torch.device("meta"):  # shapes only, no memory
        model = BSRoformer(load_config("paper-l12").model)
    true = sum(p.numel() for p in model.parameters()) / 1e6
    if abs(answer - true) > 0.05 * true:
        run = f" (the run printed {observed['paper-l12']:.1f}M)" if observed else ""
        raise wrong_prediction(
            "05.P", f"you said {answer:g}M parameters, but paper-l12 has {true:.1f}M{run}"
        )
