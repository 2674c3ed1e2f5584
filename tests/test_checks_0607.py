"""Exercises of notebooks 06 and 07: typical wrong answers fail by name, right ones pass.

(That the library's own functions fail as answers is tests/test_exercise_library.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import check_fails

import bsr.check
from bsr.check.nb07 import LinearStandIn


def _usdr(reference, estimate):
    """uSDR written out (the library's ``usdr`` may not be called by an answer)."""
    s, s_hat = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    return float(10 * np.log10((np.sum(s**2) + 1e-7) / (np.sum((s - s_hat) ** 2) + 1e-7)))


@pytest.mark.parametrize("exercise_id", ["06.1", "06.2", "07.1", "07.2"])
def test_stubs_are_not_answered(exercise_id):
    def stub(*args):
        raise NotImplementedError(f"exercise {exercise_id}: your code here")

    check_fails(exercise_id, stub, f"exercise {exercise_id} is not answered yet")


# --------------------------------------------------------------------------- 06.1


def _loss(magnitude=False, reduce="sum", min_n_fft=2048, hann=True):
    def loss(estimate, reference, windows, hop_length):
        est = estimate.reshape(-1, estimate.shape[-1])
        ref = reference.reshape(-1, reference.shape[-1])
        terms = []
        for window in windows:
            kwargs = dict(
                n_fft=max(window, min_n_fft),
                hop_length=hop_length,
                win_length=window,
                window=torch.hann_window(window) if hann else torch.ones(window),
                return_complex=True,
            )
            a, b = torch.stft(est, **kwargs), torch.stft(ref, **kwargs)
            terms.append((a.abs() - b.abs()).abs().mean() if magnitude else (a - b).abs().mean())
        total = torch.stack(terms)
        return total.mean() if reduce == "mean" else total.sum()

    return loss


def test_loss_reference_written_out_passes():
    bsr.check.exercise("06.1", _loss())


def test_loss_on_magnitudes_is_named():
    check_fails("06.1", _loss(magnitude=True), "COMPLEX difference")


def test_loss_mean_over_resolutions_is_named():
    check_fails("06.1", _loss(reduce="mean"), "MEAN", "SUM")


def test_loss_without_min_n_fft_is_named():
    check_fails("06.1", _loss(min_n_fft=0), "max(window, 2048)")


def test_loss_without_window_is_named():
    check_fails("06.1", _loss(hann=False), "not windowed")


def test_loss_detached_is_named():
    def detached(estimate, reference, windows, hop_length):
        value = _loss()(estimate, reference, windows, hop_length)
        return torch.tensor(value.item())

    check_fails("06.1", detached, "no gradient")


def test_loss_per_item_is_a_shape_error():
    def per_item(estimate, reference, windows, hop_length):
        return torch.stack(
            [_loss()(e, r, windows, hop_length) for e, r in zip(estimate, reference)]
        )

    check_fails("06.1", per_item, "one number")


# --------------------------------------------------------------------------- 06.2


def test_lr_off_by_one_warmup_is_named():
    def off_by_one(step, warmup, decay, every):
        warm = min(1.0, step / warmup) if warmup else 1.0
        return warm * decay ** (step // every)

    check_fails("06.2", off_by_one, "off by one")


def test_lr_continuous_decay_is_named():
    def continuous(step, warmup, decay, every):
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return warm * decay ** (step / every)

    check_fails("06.2", continuous, "STAIRCASE")


def test_lr_without_warmup_is_named():
    check_fails("06.2", lambda step, warmup, decay, every: decay ** (step // every), "no warm-up")


def test_lr_division_by_zero_is_named():
    def unguarded(step, warmup, decay, every):
        return min(1.0, (step + 1) / warmup) * decay ** (step // every)

    check_fails("06.2", unguarded, "divides by zero")


def test_lr_decay_after_warmup_is_named():
    def late(step, warmup, decay, every):
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return warm * decay ** (max(0, step - warmup) // every)

    check_fails("06.2", late, "end of the warm-up")


# --------------------------------------------------------------------------- 07.1


def _overlap_add(pad=True, normalise="weights", weighted=True):
    def separate(model, audio, window, hop, weights):
        channels, length = audio.shape
        offset = window - hop if pad else 0
        steps = math.ceil((length + offset) / hop)
        total = (steps - 1) * hop + window
        padded = F.pad(audio, (offset, total - length - offset))
        w = weights if weighted else torch.ones(window)
        out = torch.zeros(len(model.stems), channels, total)  # (stems, C, total)
        norm = torch.zeros(total)
        for start in range(0, total - window + 1, hop):
            out[..., start : start + window] += (
                model(padded[None, :, start : start + window])[0] * w
            )
            norm[start : start + window] += w if normalise == "weights" else 1.0
        if normalise != "none":
            out = out / norm
        return out[..., offset : offset + length]

    return separate


def test_overlap_add_written_out_passes():
    bsr.check.exercise("07.1", _overlap_add())


def test_overlap_add_without_normalising_is_named():
    check_fails("07.1", _overlap_add(normalise="none"), "not normalised")


def test_overlap_add_divided_by_count_is_named():
    check_fails("07.1", _overlap_add(normalise="count"), "NUMBER of overlapping chunks")


def test_overlap_add_unweighted_is_named():
    check_fails("07.1", _overlap_add(weighted=False), "plain average")


def test_overlap_add_without_padding_is_named():
    check_fails("07.1", _overlap_add(pad=False), "pad the front with zeros")


def test_overlap_add_wrong_shape_is_named():
    check_fails("07.1", lambda m, a, w, h, weights: m(a[None])[0].sum(0), "has shape")


def test_stand_in_depends_on_the_position_in_the_chunk():
    model = LinearStandIn()
    audio = torch.randn(1, 1, 200)
    whole = model(audio)[..., 100:150]
    part = model(audio[..., 100:])[..., :50]
    assert whole.shape == (1, 2, 1, 50) and not torch.allclose(whole, part, atol=1e-3)


# --------------------------------------------------------------------------- 07.2


def test_usdr_written_out_in_float32_passes():
    def float32(reference, estimate):
        num = np.sum(reference.astype(np.float32) ** 2) + 1e-7
        den = np.sum((reference - estimate).astype(np.float32) ** 2) + 1e-7
        return 10 * np.log10(num / den)

    bsr.check.exercise("07.2", float32)


def test_usdr_of_amplitudes_is_named():
    def amplitudes(reference, estimate):
        num = np.sqrt(np.sum(reference**2)) + 1e-7
        return 10 * np.log10(num / (np.sqrt(np.sum((reference - estimate) ** 2)) + 1e-7))

    check_fails("07.2", amplitudes, "ENERGIES")


def test_usdr_upside_down_is_named():
    check_fails("07.2", lambda s, e: -_usdr(s, e), "numerator")


def test_usdr_per_channel_mean_is_named():
    def per_channel(reference, estimate):
        return np.mean([_usdr(reference[:, [c]], estimate[:, [c]]) for c in range(2)])

    check_fails("07.2", per_channel, "per-channel")


def test_usdr_of_the_estimates_energy_is_named():
    def wrong_numerator(reference, estimate):
        return 10 * np.log10(np.sum(estimate**2) / np.sum((reference - estimate) ** 2))

    check_fails("07.2", wrong_numerator, "REFERENCE")


def test_usdr_without_eps_is_named():
    def no_eps(reference, estimate):
        with np.errstate(all="ignore"):
            return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))

    check_fails("07.2", no_eps, "eps")


def test_usdr_with_means_is_named():
    def means(reference, estimate):
        num = np.mean(reference.astype(np.float64) ** 2) + 1e-7
        return 10 * np.log10(num / (np.mean((reference - estimate).astype(np.float64) ** 2) + 1e-7))

    check_fails("07.2", means, "SUMS")


def test_usdr_array_is_named():
    def per_sample(reference, estimate):
        return 10 * np.log10(reference**2 / ((reference - estimate) ** 2 + 1e-7) + 1e-7)

    check_fails("07.2", per_sample, "ONE number")
