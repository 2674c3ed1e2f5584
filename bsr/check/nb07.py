"""Checks for notebook 07 (separation and evaluation).

* 07.1 ``overlap_add_separate(model, audio, window, hop, weights)``: chunked inference with
  weighted overlap-add, against :func:`bsr.separate.separate_tensor` on a linear stand-in
  model whose output depends on where a sample sits in its chunk (as a real model's does).
  The learner derives the front padding (``window - hop``) from the requirement that every
  sample be covered by as many windows as the middle; the usual wrong pads (none, one hop,
  half a window) are named on a window that tells them apart (300 every 100).
* 07.2 ``usdr(reference, estimate)``: the global SDR of one stem in dB, designed from stated
  requirements (no formula given), against a float64 reference and
  :func:`bsr.evaluate.usdr`.
* 07.P (the prediction): the uSDR and cSDR of the true stems at half their amplitude, and the
  uSDR at twice it; the truth is ``-20 log10 |1 - a|``, computed here.
"""

from __future__ import annotations

import math

import numpy as np
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
from bsr.evaluate import USDR_EPS
from bsr.evaluate import usdr as library_usdr
from bsr.separate import chunk_weights, separate_tensor


class LinearStandIn(torch.nn.Module):
    """A tiny linear "separator": ``(batch, C, L)`` -> ``(batch, stems, C, L)``.

    Each stem is a short FIR filter of the input (zero-padded at the chunk's edges) times a
    ramp along the chunk, so a sample's output depends on its position in the chunk: any
    mistake in where chunks start, how they are weighted or normalised shows up.
    """

    def __init__(self, stems: int = 2, taps: int = 15, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.stems = [f"stem{i}" for i in range(stems)]
        self.filters = torch.nn.Parameter(torch.randn(stems, 1, taps, generator=generator) / 4)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, length = audio.shape
        flat = audio.reshape(batch * channels, 1, length)
        taps = self.filters.shape[-1]
        out = F.conv1d(flat, self.filters, padding=taps // 2)  # (batch*C, stems, L)
        out = out * torch.linspace(0.5, 1.5, length)  # position-dependent, like a real model
        return out.reshape(batch, channels, len(self.stems), length).transpose(1, 2)


def _variant(model, audio, window, hop, weights, pad=None, normalise="weights"):
    """Overlap-add with the usual mistakes as switches (mirrors separate_tensor).

    ``pad``: zeros in front, in samples (None: the right ``window - hop``).
    """
    channels, length = audio.shape
    offset = window - hop if pad is None else pad
    steps = math.ceil((length + offset) / hop)
    total = (steps - 1) * hop + window
    padded = F.pad(audio, (offset, total - length - offset))
    out = torch.zeros(len(model.stems), channels, total)
    norm = torch.zeros(total)
    for s in range(0, total - window + 1, hop):
        with torch.no_grad():
            estimate = model(padded[None, :, s : s + window])[0]
        out[..., s : s + window] += estimate * weights
        norm[s : s + window] += weights if normalise == "weights" else 1.0
    if normalise != "none":
        out = out / norm
    return out[..., offset : offset + length]


def _close(a, b, atol=1e-4) -> bool:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


@register("07.1", library=("bsr.separate.separate_tensor", "bsr.separate.separate"))
def check_overlap_add_separate(overlap_add_separate) -> None:
    torch.manual_seed(71)
    model = LinearStandIn(stems=2, seed=7).eval()
    window, hop = 400, 200
    audio = torch.randn(2, 1450)  # (channels, samples): not a whole number of hops
    what = f"overlap_add_separate(model, audio (2, 1450), window={window}, hop={hop}, hann)"
    weights = chunk_weights(window, "hann")
    with torch.no_grad():
        got = overlap_add_separate(model, audio.clone(), window, hop, weights.clone())
    expect_shape(got, (2, 2, 1450), what + " (stems, channels, samples)")
    got = torch.as_tensor(got).float()
    expected = separate_tensor(model, audio, window, hop, "hann")
    if _close(got, _variant(model, audio, window, hop, weights, normalise="none")):
        raise CheckFailed(
            "the chunks were weighted and added but not normalised: divide by the SUM of the "
            "weights that overlap at each sample"
        )
    if _close(got, _variant(model, audio, window, hop, weights, normalise="count")):
        raise CheckFailed(
            "you divided by the NUMBER of overlapping chunks; divide by the summed weights "
            "(with a Hann window they do not add up to a constant)"
        )
    if _close(got, separate_tensor(model, audio, window, hop, "rectangle")):
        raise CheckFailed(
            "your result is a plain average of the chunks: multiply each chunk by `weights` "
            "before adding it (and add `weights` to the normaliser)"
        )
    if _close(got, _variant(model, audio, window, hop, weights, pad=0)):
        raise CheckFailed(
            "the chunks start at sample 0, so the first hop of the song is covered by one "
            "window only, and only by its edge: pad the front with zeros (how many? count the "
            "windows over a sample in the middle, and make sample 0 get as many), then crop "
            "back to the input"
        )
    inner = slice(window, -window)
    if not _close(got, expected) and _close(got[..., inner], expected[..., inner]):
        raise CheckFailed(
            "the middle of the signal is right but the first or last window is not: check "
            "the zeros in front and at the end, and the cropping back to the input length"
        )
    expect_close(got, expected, what + " against bsr.separate.separate_tensor", atol=1e-4)
    # Another window shape, hop and length; here W - H, H and W / 2 differ.
    _check_front_padding(overlap_add_separate, model)


def _check_front_padding(overlap_add_separate, model) -> None:
    """A triangle window of 300 every 100: the wrong front pads are told apart and named."""
    audio = torch.randn(1, 997)
    window, hop = 300, 100
    weights = chunk_weights(window, "triangle")
    with torch.no_grad():
        got = overlap_add_separate(model, audio.clone(), window, hop, weights)
    expected = separate_tensor(model, audio, window, hop, "triangle")
    wrong_pads = {  # pad -> what it does to the first samples
        hop: "one hop of zeros in front",
        window // 2: "half a window of zeros in front",
        0: "no zeros in front",
    }
    for pad, what in wrong_pads.items():
        if _close(got, _variant(model, audio, window, hop, weights, pad=pad)):
            covered = min(window // hop, pad // hop + 1)
            raise CheckFailed(
                f"with a window of {window} every {hop} samples you put {what} ({pad}): then "
                f"sample 0 is covered by {covered} window(s), a sample in the middle by "
                f"{window // hop}. Find the front padding that makes these equal"
            )
    expect_close(
        got,
        expected,
        f"overlap_add_separate(model, audio (1, 997), window={window}, hop={hop}, triangle)",
        atol=1e-4,
    )


@register("07.2", library=("bsr.evaluate.metrics.usdr", "bsr.evaluate.metrics.bss_eval_v4"))
def check_usdr(usdr_fn) -> None:
    rng = np.random.default_rng(72)
    reference = rng.standard_normal((5000, 2)).astype(np.float32) * 0.3  # (samples, channels)
    estimate = reference + rng.standard_normal((5000, 2)).astype(np.float32) * 0.1
    estimate[:, 1] += 0.2 * reference[:, 1]  # the right channel is worse than the left
    got = usdr_fn(reference.copy(), estimate.copy())
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"usdr returned {type(got).__name__} of shape {np.shape(got)}: return ONE number "
            "in dB, summing over samples and channels"
        ) from None
    expected = library_usdr(reference, estimate)
    s, e = reference.astype(np.float64), (reference - estimate).astype(np.float64)
    if math.isfinite(value) and abs(value + expected) < 1e-3:
        raise CheckFailed(
            f"usdr is {value:.4f} dB, minus the right answer: the reference's energy goes "
            "in the numerator, the error's in the denominator"
        )
    if abs(value - expected / 2) < 1e-3:
        raise CheckFailed(
            f"usdr is {value:.4f} dB, half the right {expected:.4f}: 10 * log10 needs a ratio "
            "of ENERGIES (sums of squares); with amplitudes use 20 * log10"
        )
    per_channel = np.mean(
        [10 * np.log10(np.sum(s[:, c] ** 2) / np.sum(e[:, c] ** 2)) for c in range(2)]
    )
    if abs(value - per_channel) < 1e-3:
        raise CheckFailed(
            f"usdr is {value:.4f} dB, the mean of per-channel SDRs; sum the energies over "
            f"samples AND channels first, then take one ratio ({expected:.4f} dB)"
        )
    swapped = 10 * np.log10(np.sum(estimate.astype(np.float64) ** 2) / np.sum(e**2))
    if abs(value - swapped) < 1e-3:
        raise CheckFailed(
            f"usdr is {value:.4f} dB: the numerator is the energy of the REFERENCE, not of "
            f"the estimate ({expected:.4f} dB)"
        )
    expect(
        math.isfinite(value) and abs(value - expected) < 1e-3,
        f"usdr(reference, estimate) is {value:.4f} dB, expected {expected:.4f} dB: one ratio, "
        "in dB, of the energy of the reference to the energy of the error",
    )
    # The edge cases that the eps is there for.
    silent = np.zeros((1000, 2))
    for name, ref, est, target in (
        ("a perfect estimate", reference, reference, library_usdr(reference, reference)),
        ("a silent reference and a silent estimate", silent, silent, 0.0),
    ):
        with np.errstate(all="ignore"):
            got = float(usdr_fn(ref.copy(), est.copy()))
        if not math.isfinite(got):
            raise CheckFailed(
                f"usdr of {name} is {got}: add eps = {USDR_EPS:g} to both sums, so the ratio "
                "is always defined"
            )
        expect(
            abs(got - target) < 1e-2,
            f"usdr of {name} is {got:.4f} dB, expected {target:.4f} dB: add eps = "
            f"{USDR_EPS:g} to the SUMS of squares (not to means, not to the ratio)",
        )


FACTORS = {"uSDR x0.5": 0.5, "cSDR x0.5": 0.5, "uSDR x2": 2.0}  # prediction 07.P: key -> a


@register("07.P")
def check_prediction(answer: dict, observed: dict | None = None) -> None:
    """``answer`` maps each key of :data:`FACTORS` to a predicted SDR in dB, right to 0.5 dB.

    The estimate ``a * s`` leaves the error ``(a - 1) s``, so every SDR of it, global or per
    frame, is ``-20 log10 |1 - a|`` whatever the music. ``observed`` (optional) holds the
    run's values under the same keys (mean over the stems), quoted in the message.
    """
    if not isinstance(answer, dict) or set(answer) != set(FACTORS):
        raise CheckFailed(
            f"prediction 07.P: PREDICTION should be a dict with the keys {sorted(FACTORS)}, "
            "each a number of dB"
        )
    for key, factor in FACTORS.items():
        truth = -20 * math.log10(abs(1 - factor))
        try:
            said = float(answer[key])
        except (TypeError, ValueError):
            raise CheckFailed(f"prediction 07.P: {key} should be a number of dB") from None
        if not abs(said - truth) <= 0.5:
            run = f" (the run: {float(observed[key]):.2f} dB)" if observed else ""
            raise wrong_prediction(
                "07.P", f"you said {key} is {said:.2f} dB; it is {truth:.2f} dB{run}"
            )
