"""The predictions of notebooks 07 to 09 and the rewritten exercises 07.1, 07.2 and 08.2:
the reference answers pass, typical wrong answers fail with a message that names the mistake.

(The other wrong answers of 07.1 and 07.2 are in tests/test_checks_0607.py, of 08.1 in
tests/test_viz_attention.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import check_fails, prediction_fails

import bsr.check

# --------------------------------------------------------------------------- 07.1


def _overlap_add(pad_of=lambda window, hop: window - hop):
    """Overlap-add written out, with the front padding as a function of (window, hop)."""

    def separate(model, audio, window, hop, weights):
        channels, length = audio.shape
        pad = pad_of(window, hop)
        steps = math.ceil((length + pad) / hop)
        total = (steps - 1) * hop + window
        padded = F.pad(audio, (pad, total - length - pad))
        out = torch.zeros(len(model.stems), channels, total)
        norm = torch.zeros(total)
        for start in range(0, total - window + 1, hop):
            out[..., start : start + window] += (
                model(padded[None, :, start : start + window])[0] * weights
            )
            norm[start : start + window] += weights
        return (out / norm)[..., pad : pad + length]

    return separate


def test_overlap_add_with_the_derived_padding_passes():
    bsr.check.exercise("07.1", _overlap_add())


def test_overlap_add_with_a_whole_window_of_padding_passes():
    """A whole window in front also covers sample 0 by W / H windows (one more, all padding)."""
    bsr.check.exercise("07.1", _overlap_add(lambda window, hop: window))


@pytest.mark.parametrize(
    "pad_of, named",
    [
        (lambda window, hop: hop, "one hop of zeros"),
        (lambda window, hop: window // 2, "half a window of zeros"),
        (lambda window, hop: 0, "first hop of the song is covered by one window"),
    ],
    ids=["one hop", "half a window", "none"],
)
def test_overlap_add_with_a_wrong_padding_is_named(pad_of, named):
    message = check_fails("07.1", _overlap_add(pad_of), named)
    assert "window - hop" not in message and "W - H" not in message  # not the answer


def test_overlap_add_wrong_padding_counts_the_windows():
    check_fails(
        "07.1",
        _overlap_add(lambda window, hop: hop),
        "sample 0 is covered by 2 window(s), a sample in the middle by 3",
    )


# --------------------------------------------------------------------------- 07.2


def _usdr(reference, estimate, eps=1e-7):
    s, s_hat = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    return float(10 * np.log10((np.sum(s**2) + eps) / (np.sum((s - s_hat) ** 2) + eps)))


def test_usdr_designed_from_the_requirements_passes():
    bsr.check.exercise("07.2", _usdr)


def test_usdr_with_eps_on_the_ratio_is_named():
    def on_the_ratio(reference, estimate):
        s, e = np.asarray(reference, np.float64), np.asarray(estimate, np.float64) - reference
        with np.errstate(all="ignore"):
            return float(10 * np.log10(np.sum(s**2) / np.sum(e**2) + 1e-7))

    check_fails("07.2", on_the_ratio, "eps")


def test_usdr_off_by_a_constant_does_not_hand_over_the_formula():
    message = check_fails("07.2", lambda s, e: _usdr(s, e) + 0.5, "one ratio")
    assert "log10" not in message


# --------------------------------------------------------------------------- 07.P

RIGHT_07 = {"uSDR x0.5": 6.02, "cSDR x0.5": 6.02, "uSDR x2": 0.0}
RUN_07 = {"uSDR x0.5": 6.0206, "cSDR x0.5": 6.0206, "uSDR x2": 0.0}


def test_prediction_07_right_answer_passes():
    bsr.check.prediction("07.P", RIGHT_07, RUN_07)
    bsr.check.prediction("07.P", {**RIGHT_07, "uSDR x0.5": 6.3})  # within 0.5 dB


def test_prediction_07_symmetric_guess_fails():
    """The tempting answer: 6 dB off either way scores the same."""
    prediction_fails("07.P", {**RIGHT_07, "uSDR x2": 6.02}, RUN_07, "uSDR x2", "0.00 dB")


def test_prediction_07_level_difference_as_sdr_fails():
    prediction_fails("07.P", {**RIGHT_07, "uSDR x0.5": -6.02}, RUN_07, "uSDR x0.5", "6.02 dB")


def test_prediction_07_wrong_keys_are_named():
    prediction_fails("07.P", {"uSDR": 6.02}, None, "the keys")
    prediction_fails("07.P", {**RIGHT_07, "uSDR x2": "zero"}, None, "a number of dB")


# --------------------------------------------------------------------------- 08.2


def _relative(weights, uniform_of=lambda n: (n * n - 1) / (3 * n), signed=False):
    n = weights.shape[-1]
    position = torch.arange(n, dtype=torch.float64)
    offset = position[None, :] - position[:, None]
    distance = (weights.double() * (offset if signed else offset.abs())).sum(-1)
    return distance.mean(dim=(0, 2)) / uniform_of(n)


def test_relative_distance_with_the_derived_uniform_passes():
    bsr.check.exercise("08.2", _relative)


@pytest.mark.parametrize(
    "uniform_of, named",
    [
        (lambda n: n / 3, "n / 3"),
        (lambda n: (n - 1) / 3, "(n - 1) / 3"),
        (lambda n: (n + 1) / 3, "(n + 1) / 3"),
    ],
)
def test_relative_distance_with_a_nearly_right_uniform_is_named(uniform_of, named):
    message = check_fails("08.2", lambda w: _relative(w, uniform_of), f"divided by {named}")
    assert "(n^2 - 1)" not in message and "3n" not in message  # not the answer


def test_relative_distance_with_another_wrong_uniform_is_named():
    check_fails("08.2", lambda w: _relative(w, lambda n: n / 2), "not 1", "offset d")


def test_relative_distance_in_positions_is_named():
    check_fails("08.2", lambda w: _relative(w, lambda n: 1.0), "distances in positions")


def test_relative_distance_signed_is_named():
    check_fails("08.2", lambda w: _relative(w, signed=True), "signed")


# --------------------------------------------------------------------------- 08.P


def test_prediction_08_right_answer_passes():
    bsr.check.prediction("08.P", "not at all", 3e-6)
    bsr.check.prediction("08.P", "not at all", None)  # a model without RoPE


@pytest.mark.parametrize("answer", ["a little", "a lot"])
def test_prediction_08_change_fails(answer):
    prediction_fails("08.P", answer, 3e-6, f"you said {answer!r}", "3.0e-06")


def test_prediction_08_outside_the_choices_is_named():
    prediction_fails("08.P", "somewhat", None, "'not at all', 'a little', 'a lot'")


# --------------------------------------------------------------------------- 09.P


def test_prediction_09_linear_answer_passes():
    bsr.check.prediction("09.P", 4.0, 4.3)
    bsr.check.prediction("09.P", 4, None)


def test_prediction_09_quadratic_guess_fails():
    prediction_fails("09.P", 16, 4.1, "you said the minute takes 16 times", "4.1 times")


def test_prediction_09_not_a_number_is_named():
    prediction_fails("09.P", "four", 4.0, "should be a number")
