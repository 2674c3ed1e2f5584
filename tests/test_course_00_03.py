"""Notebooks 00-03: their predictions and the exercises rewritten as derive/design tasks.

* 00.P, 01.P, 02.P: the reference answer passes (with an ``observed`` like the run's) and
  a typical wrong answer fails with a message that says what the run gave;
* 02.1 (a band layout designed from the rule and four constraints), 02.2 (the feature order
  derived from two constraints), 03.1 (RoPE's speeds derived from three design goals, and
  the positions one turn of the slowest pair takes): the reference answer passes, and typical
  slips fail naming the constraint or goal they break.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import check_fails, prediction_fails

import bsr.check
from bsr.bands import paper_band_sizes
from bsr.check.nb02 import _parameters_lost
from bsr.stft import complex_to_features

# -- 00.P: how stems add up ------------------------------------------------------------------

SONGS_00 = {  # as the run measures them (practice song, real excerpt)
    "practice song": {"dB above one stem": 6.1, "peak": 0.53},
    "real excerpt": {"dB above one stem": 6.2, "peak": 0.26},
}
RIGHT_00 = {"dB above one stem": 6.0, "peak": "below the sum"}


def test_00_reference_prediction_passes(capsys):
    bsr.check.prediction("00.P", RIGHT_00, SONGS_00)
    assert "prediction 00.P: passed" in capsys.readouterr().out


def test_00_amplitudes_adding_up_fails():
    said = {**RIGHT_00, "dB above one stem": 12.0}  # 20 log10 4: the stems added as amplitudes
    prediction_fails("00.P", said, SONGS_00, "you said four stems", "+12.0 dB", "gave +6.1 dB")


def test_00_peaks_adding_up_fails():
    said = {**RIGHT_00, "peak": "the sum of the peaks"}
    prediction_fails("00.P", said, SONGS_00, "the sum of the peaks", "53% of the stems' summed")


def test_00_answer_outside_the_choices_is_named():
    prediction_fails("00.P", {**RIGHT_00, "peak": "lower"}, SONGS_00, "should be one of")


# -- 01.P: the unbounded complex mask --------------------------------------------------------

OBSERVED_01 = {  # the practice song's numbers
    "vocals |M| > 1": 0.014,
    "drums |M| > 1": 0.301,
    "bass |M| > 1": 0.089,
    "other |M| > 1": 0.029,
    "vocals uSDR": {"clipped": 23.25, "IRM": 13.41, "exact": 101.6},
}
RIGHT_01 = {"vocals |M| > 1": 0.02, "drums |M| > 1": 0.3, "clipped vocals": "in between"}


def test_01_reference_prediction_passes(capsys):
    bsr.check.prediction("01.P", RIGHT_01, OBSERVED_01)
    assert "prediction 01.P: passed" in capsys.readouterr().out


def test_01_fraction_out_of_tolerance_fails():
    said = {**RIGHT_01, "drums |M| > 1": 0.05}  # "a mask rarely needs to exceed 1"
    prediction_fails("01.P", said, OBSERVED_01, "drums |M| > 1 in 5% of the bins", "30.1%")


def test_01_percent_instead_of_fraction_is_named():
    prediction_fails("01.P", {**RIGHT_01, "drums |M| > 1": 30}, OBSERVED_01, "between 0 and 1")


@pytest.mark.parametrize("said", ["near the exact mask", "near the IRM"])
def test_01_wrong_landing_fails(said):
    message = prediction_fails(
        "01.P", {**RIGHT_01, "clipped vocals": said}, OBSERVED_01, "they land in between"
    )
    assert "clipped 23.2 dB, IRM 13.4 dB" in message


def test_01_landing_follows_the_run():
    """The truth is read from the run: a clipped uSDR within 3 dB of the IRM's is 'near'."""
    near = {**OBSERVED_01, "vocals uSDR": {"clipped": 15.0, "IRM": 13.41, "exact": 101.6}}
    bsr.check.prediction("01.P", {**RIGHT_01, "clipped vocals": "near the IRM"}, near)
    prediction_fails("01.P", RIGHT_01, near, "they land near the IRM")


# -- 02.P: what merging bands costs ------------------------------------------------------------


def test_02_truth_is_the_counted_parameters():
    lost = _parameters_lost()
    assert lost["band split"] == 12 * 384  # the 12 biases of width D that go
    assert 6e6 < lost["mask estimator"] < 8e6  # 12 hidden layers D -> 4D, about 0.6M each


def test_02_reference_prediction_passes(capsys):
    right = {"band split": "about ten thousand", "mask estimator": 7e6}
    bsr.check.prediction("02.P", right, None)
    assert "prediction 02.P: passed" in capsys.readouterr().out


def test_02_band_split_loses_little_fails():
    said = {"band split": "about half a million", "mask estimator": 7e6}  # "a quarter of 1.6M"
    prediction_fails("02.P", said, None, "loses about half a million", "but it loses 4,608")


def test_02_mask_estimator_outside_a_factor_of_two_fails():
    said = {"band split": "about ten thousand", "mask estimator": 5e3}  # "only biases, again"
    prediction_fails("02.P", said, None, "mask estimator loses 5,000", "within a factor of 2")


# -- 02.1: a band layout from the rule -------------------------------------------------------

RULE = ((1000, 2), (2000, 4), (4000, 12), (8000, 24), (16000, 48))


def _layout(
    rate, n_fft, scale=True, first_bin=True, top=lambda rest: (rest // 2, rest - rest // 2)
):
    """The reference design, with one constraint optionally broken."""
    n_bins, hz = n_fft // 2 + 1, rate / n_fft
    sizes, start = [], 0
    for edge, width in RULE:
        width = max(1, round(width * n_fft / 2048)) if scale else width
        # first_bin=False: a band must end below the edge, the slip constraint 2 rules out
        while start < n_bins and (start if first_bin else start + width - 1) * hz < edge:
            sizes.append(min(width, n_bins - start))
            start += sizes[-1]
    return tuple(sizes) + top(n_bins - start)


def test_02_1_reference_design_passes(capsys):
    bsr.check.exercise("02.1", _layout)
    assert "exercise 02.1: passed" in capsys.readouterr().out
    assert _layout(44100, 2048) == paper_band_sizes(44100, 2048)


def test_02_1_unscaled_widths_are_named():
    check_fails(
        "02.1",
        lambda rate, n_fft: _layout(rate, n_fft, scale=False),
        "band_sizes(44100, 4096)",
        "keeps the 2048-point width",
    )


def test_02_1_band_ending_below_the_edge_is_named():
    check_fails(
        "02.1",
        lambda rate, n_fft: _layout(rate, n_fft, first_bin=False),
        "band 23 starts at bin 46 (991 Hz), in the range 0-1000 Hz, so it should be 2 bins wide",
    )


def test_02_1_odd_top_split_the_wrong_way_is_named():
    def lower_larger(rest):
        return (rest - rest // 2, rest // 2)

    check_fails(
        "02.1",
        lambda rate, n_fft: _layout(rate, n_fft, top=lower_larger),
        "band 60",
        "the upper one the larger",
    )


def test_02_1_one_top_band_is_named():
    check_fails(
        "02.1",
        lambda rate, n_fft: _layout(rate, n_fft, top=lambda rest: (rest,)),
        "61 bands, expected 62",
        "should form two bands",
    )


def test_02_1_missing_bins_are_named():
    check_fails(
        "02.1",
        lambda rate, n_fft: _layout(rate, n_fft, top=lambda rest: ()),
        "the bands stop at bin 767",
    )


# -- 02.2: the feature order -------------------------------------------------------------------


def _features(spec, order):
    """``(batch, channels, bins, frames)`` complex -> features with the axes (bins, channels,
    parts) flattened in ``order``, e.g. ``"fcp"`` for the community layout."""
    x = torch.view_as_real(spec).permute(0, 3, 2, 1, 4)  # (batch, frames, f, c, p)
    axes = {"f": 2, "c": 3, "p": 4}
    x = x.permute(0, 1, *(axes[a] for a in order))
    return x.reshape(*x.shape[:2], -1)


def test_02_2_reference_order_passes(capsys):
    bsr.check.exercise("02.2", lambda spec: _features(spec, "fcp"))
    assert "exercise 02.2: passed" in capsys.readouterr().out
    spec = torch.randn(1, 2, 5, 3, dtype=torch.complex64)
    assert torch.equal(_features(spec, "fcp"), complex_to_features(spec))


def test_02_2_parts_outermost_breaks_the_bands():
    check_fails(
        "02.2", lambda spec: _features(spec, "pfc"), "values of bin 0 sit at features", "contiguous"
    )


def test_02_2_parts_before_channels_is_named():
    check_fails(
        "02.2",
        lambda spec: _features(spec, "fpc"),
        "feature 1 holds bin 0, channel 1, real part; it should hold bin 0, channel 0, imaginary",
    )


def test_02_2_channel_major_is_named():
    check_fails("02.2", lambda spec: _features(spec, "cfp"), "frequency-major", "pieces")


# -- 03.1: RoPE's speeds from three design goals -------------------------------------------------


def _speeds(dim_head, theta=10000.0):
    return theta ** (-2 * torch.arange(dim_head // 2, dtype=torch.float64) / dim_head)


def _slowest_turn(dim_head, theta=10000.0):
    return 2 * math.pi * theta ** ((dim_head - 2) / dim_head)


def test_03_1_reference_answer_passes(capsys):
    bsr.check.exercise("03.1", (_speeds, _slowest_turn))
    bsr.check.exercise("03.1", _speeds)  # the speeds alone: what a library could give
    assert capsys.readouterr().out.count("exercise 03.1: passed") == 2
    assert 7 * 60 < _slowest_turn(48) / 100 < 7.5 * 60  # d = 48, 100 frames/s: some 7 minutes


def test_03_1_exponent_half_as_large_misses_goal_3():
    def slow(dim_head, theta=10000.0):  # theta^(-i/d): i counted as features, not pairs
        return theta ** (-torch.arange(dim_head // 2, dtype=torch.float64) / dim_head)

    message = check_fails("03.1", (slow, _slowest_turn), "goal 3", "1 / theta")
    assert "2i/d" not in message  # the message names the goal, not the answer


def test_03_1_last_pair_at_one_over_theta_misses_goal_3():
    def linspace(dim_head, theta=10000.0):  # the last pair itself reaches 1 / theta
        return theta ** -torch.linspace(0, 1, dim_head // 2, dtype=torch.float64)

    check_fails("03.1", (linspace, _slowest_turn), "goal 3", "How many factors of r")


def test_03_1_evenly_spaced_speeds_miss_goal_2():
    def linear(dim_head, theta=10000.0):
        return torch.linspace(1, 1 / theta, dim_head // 2, dtype=torch.float64)

    check_fails("03.1", (linear, _slowest_turn), "goal 2", "same factor")


def test_03_1_first_pair_not_one_misses_goal_1():
    def shifted(dim_head, theta=10000.0):
        return theta ** (-2 * (torch.arange(dim_head // 2, dtype=torch.float64) + 1) / dim_head)

    check_fails("03.1", (shifted, _slowest_turn), "goal 1", "exactly 1 radian")


@pytest.mark.parametrize(
    "turn, fragment",
    [
        (lambda d, theta=1e4: theta ** ((d - 2) / d), "a full turn is 2 pi radians"),
        (lambda d, theta=1e4: 2 * math.pi * theta, "the slowest pair is the last one"),
        (lambda d, theta=1e4: 2 * math.pi, "the fastest pair's turn"),
        (lambda d, theta=1e4: 801.0, "but the slowest pair needs"),
    ],
)
def test_03_1_slowest_turn_slips_are_named(turn, fragment):
    check_fails("03.1", (_speeds, turn), "slowest_turn(8, 10000)", fragment)


def test_the_library_rope_inside_the_pair_is_named():
    """A library piece handed in inside 03.1's pair is named by the watch, as one alone is."""
    from bsr.rope import RotaryEmbedding

    def slowest_turn(dim_head, theta):
        return 2 * math.pi * theta ** ((dim_head - 2) / dim_head)

    library = RotaryEmbedding(16).forward
    check_fails("03.1", (library, slowest_turn), "RotaryEmbedding", "library")
