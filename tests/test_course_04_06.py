"""Notebooks 04 to 06: their predictions and the exercises rewritten to derive or design.

For each prediction (04.P, 05.P, 06.P) the reference answer passes with a realistic
``observed`` and typical wrong answers fail, naming the number; for each rewritten exercise
(04.1 the scale of the scores, 05.1 the head and its parameter count, 06.1 the loss's
windows, 06.2 a schedule of the learner's design) the reference answer passes and typical
wrong answers fail with a message that names the mistake without handing over the answer.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import check_fails, prediction_fails

import bsr.check
from bsr.loss import multi_resolution_stft_loss as library_loss
from bsr.mask_estimator import BandMask
from bsr.train import lr_factor as library_lr_factor

# --------------------------------------------------------------------------- 04.1


def _attention(q, k, v, scale=None):
    """Attention written out; ``scale`` replaces the factor on q.k (None: the right one)."""
    factor = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    weights = (q @ k.transpose(-2, -1) * factor).softmax(-1)
    return weights @ v, weights


def test_attention_with_the_derived_scale_passes():
    bsr.check.exercise("04.1", _attention)


@pytest.mark.parametrize(
    ("scale", "fragments"),
    [
        (1.0, ("not scaled", "variance d = 8, not 1")),
        (1 / 8, ("times 0.125", "variance 0.125, not 1")),
        (1 / 64, ("variance 0.001953, not 1",)),
    ],
)
def test_a_wrong_scale_is_measured_and_reported_as_a_variance(scale, fragments):
    message = check_fails("04.1", lambda q, k, v: _attention(q, k, v, scale), *fragments)
    assert "sqrt" not in message  # the variance is reported, the factor is not handed over


def test_a_scale_fixed_for_one_head_width_fails_at_another():
    """1/sqrt(8) is right for the first call's d = 8, wrong for the second call's d = 16."""
    check_fails(
        "04.1",
        lambda q, k, v: _attention(q, k, v, 1 / math.sqrt(8)),
        "(d = 16)",
        "variance 2, not 1",
    )


# --------------------------------------------------------------------------- 04.P

TRUE_04 = {"one matrix": 801**2 / 62**2, "one pass": 801 / 62, "GiB": 8 * 62 * 801**2 * 4 / 2**30}


def test_prediction_04_reference_passes(capsys):
    bsr.check.prediction("04.P", {"one matrix": 167, "one pass": 13, "GiB": 1.2}, TRUE_04)
    assert "prediction 04.P: passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "wrong", "fragment"),
    [
        ("one pass", 167, "'one pass' is 167, but it is 12.9"),  # forgot the sequence counts
        ("one matrix", 13, "'one matrix' is 13, but it is 167"),  # the ratio, not squared
        ("GiB", 0.15, "'GiB' is 0.15, but it is 1.19"),  # one head only
    ],
)
def test_prediction_04_wrong_answers_fail(key, wrong, fragment):
    answer = {"one matrix": 167, "one pass": 13, "GiB": 1.2, key: wrong}
    prediction_fails("04.P", answer, TRUE_04, fragment, "the run printed")


def test_prediction_04_wrong_keys_are_named():
    prediction_fails("04.P", {"one matrix": 167}, None, "keys")


# --------------------------------------------------------------------------- 05.1


def _band_mask(x, gamma, w1, b1, w2, b2):
    x = x / x.square().mean(-1, keepdim=True).sqrt() * gamma
    a, g = (torch.tanh(x @ w1.T + b1) @ w2.T + b2).chunk(2, dim=-1)
    return a * g.sigmoid()


def _head_parameters(dim, bins, channels, expansion, gamma=True, bias=True, glu=True):
    hidden, outputs = expansion * dim, (2 if glu else 1) * 2 * channels * bins
    return (dim if gamma else 0) + (dim + bias) * hidden + (hidden + bias) * outputs


def test_head_and_its_count_pass():
    bsr.check.exercise("05.1", (_band_mask, _head_parameters))


def test_the_paper_widest_head_count():
    """The number the notebook quotes: 2.17M for a top band (128 bins, stereo, D = 384)."""
    head = BandMask(384, 2 * 2 * 128, depth=2, expansion=4, norm=True)
    assert _head_parameters(384, 128, 2, 4) == sum(p.numel() for p in head.parameters())
    assert round(_head_parameters(384, 128, 2, 4) / 1e6, 2) == 2.17


@pytest.mark.parametrize(
    ("slip", "fragment"),
    [
        ({"gamma": False}, "gain gamma has parameters too"),
        ({"bias": False}, "a bias as well as a weight matrix"),
        ({"glu": False}, "the GLU halves what it is given"),
    ],
)
def test_count_slips_are_named(slip, fragment):
    def count(*args):
        return _head_parameters(*args, **slip)

    check_fails("05.1", (_band_mask, count), "head_parameters(384, 128, 2, 4)", fragment)


def test_a_count_that_matches_no_slip_still_fails():
    check_fails("05.1", (_band_mask, lambda *args: 1_000_000), "but that head has 2,165,632")


def test_the_head_is_checked_before_the_count():
    check_fails(
        "05.1",
        (lambda *p: _band_mask(*p).repeat_interleave(2, -1), _head_parameters),
        "twice the band's",
    )


def test_the_library_head_inside_the_pair_is_named():
    head = BandMask(4, 4, 2, 4, True)
    check_fails("05.1", (head.forward, _head_parameters), "BandMask.forward", "library")


# --------------------------------------------------------------------------- 05.P


def test_prediction_05_reference_passes(capsys):
    bsr.check.prediction("05.P", 93.4, {"paper-l6": 72.2, "paper-l12": 93.4})
    assert "prediction 05.P: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [144.4, 72.2, 200])
def test_prediction_05_wrong_answers_fail(wrong):
    prediction_fails(
        "05.P", wrong, {"paper-l12": 93.4}, f"you said {wrong:g}M", "paper-l12 has 93.4M"
    )


def test_prediction_05_wants_a_number():
    prediction_fails("05.P", "93M", None, "a number of millions")


# --------------------------------------------------------------------------- 06.1


def _loss(estimate, reference, windows, hop_length=147):
    est, ref = estimate.reshape(-1, estimate.shape[-1]), reference.reshape(-1, reference.shape[-1])
    total = est.new_zeros(())
    for w in windows:
        kw = dict(n_fft=max(w, 2048), hop_length=hop_length, win_length=w,
                  window=torch.hann_window(w), return_complex=True)  # fmt: skip
        total = total + (torch.stft(est, **kw) - torch.stft(ref, **kw)).abs().mean()
    return total


PAPER_WINDOWS = (4096, 2048, 1024, 512, 256)


def test_loss_and_the_paper_windows_pass():
    bsr.check.exercise("06.1", (_loss, PAPER_WINDOWS))
    assert float(_loss(torch.ones(1, 3000), torch.zeros(1, 3000), PAPER_WINDOWS)) == pytest.approx(
        float(library_loss(torch.ones(1, 3000), torch.zeros(1, 3000), PAPER_WINDOWS))
    )


@pytest.mark.parametrize(
    ("windows", "fragments"),
    [
        ((8192, 4096, 2048, 1024, 512), ("shortest window, 512 samples", "11.6 ms")),
        ((2048, 1024, 512, 256, 128), ("longest window, 2048 samples", "21.5 Hz")),
        ((4096, 2048, 1024, 512), ("holds 4 windows",)),
        ((4096, 2048, 1000, 512, 256), ("power of two",)),
        ((4096, 1024, 512, 256, 128), ("half the one before",)),
    ],
)
def test_windows_that_miss_the_resolution_are_named(windows, fragments):
    check_fails("06.1", (_loss, windows), *fragments)


def test_unanswered_windows_say_so():
    check_fails("06.1", (_loss, (..., ..., ..., ..., ...)), "not answered yet", "WINDOWS")


def test_the_library_loss_inside_the_pair_is_named():
    check_fails("06.1", (library_loss, PAPER_WINDOWS), "multi_resolution_stft_loss", "library")


# --------------------------------------------------------------------------- 06.2


def _lr(step, warmup_steps, decay, decay_every):
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return warm * decay ** (step // decay_every)


DESIGN = {"warmup_steps": 1000, "decay": 0.1 ** (1 / 4), "decay_every": 4000}


def test_schedule_and_the_design_pass():
    bsr.check.exercise("06.2", (_lr, DESIGN))
    assert library_lr_factor(16_000, **DESIGN) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"warmup_steps": 999}, ("reaches 1 at step 998, not 999",)),  # the off-by-one
        ({"decay": 0.9}, ("from step 16,000 on is 0.6561, not 0.1",)),
        ({"decay": 0.1, "decay_every": 16_000}, ("steps down at steps [16,000]", "four")),
        ({"decay": 0.1 ** (1 / 5), "decay_every": 3200}, ("3,200, 6,400",)),
    ],
)
def test_designs_that_miss_a_constraint_are_named(change, fragments):
    check_fails("06.2", (_lr, {**DESIGN, **change}), *fragments)


def test_a_design_with_the_wrong_keys_is_named():
    check_fails("06.2", (_lr, {"warmup": 1000}), "SCHEDULE should be a dict")


def test_an_unanswered_design_says_so():
    blank = {"warmup_steps": ..., "decay": ..., "decay_every": ...}
    check_fails("06.2", (_lr, blank), "not answered yet", "SCHEDULE")


def test_the_function_is_checked_before_the_design():
    def continuous(step, warmup_steps, decay, decay_every):
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        return warm * decay ** (step / decay_every)

    check_fails("06.2", (continuous, DESIGN), "STAIRCASE")


# --------------------------------------------------------------------------- 06.P

TRUE_06 = {"after 10": 20 / 9, "after 100": 110 / 9, "after 1000": 1010 / 9,
           "reaches 0.999 after": 8990}  # fmt: skip


def test_prediction_06_reference_passes(capsys):
    answer = {"after 10": 2.2, "after 100": 12.2, "after 1000": 112, "reaches 0.999 after": 8990}
    bsr.check.prediction("06.P", answer, TRUE_06)
    assert "prediction 06.P: passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "wrong", "fragment"),
    [
        ("after 1000", 1000, "the memory after 1000 updates is 1000, but it is 112.2"),
        ("after 10", 10, "the memory after 10 updates is 10, but it is 2.222"),
        ("reaches 0.999 after", 1000, "reaches 0.999 after 1000, but it is 8990"),
    ],
)
def test_prediction_06_wrong_answers_fail(key, wrong, fragment):
    answer = {**TRUE_06, key: wrong}
    prediction_fails("06.P", answer, TRUE_06, fragment, "the run printed")
