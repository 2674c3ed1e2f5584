"""Checks for notebook 06 (training).

* 06.1 ``(multi_resolution_stft_loss, WINDOWS)``: the loss, ``(estimate, reference, windows,
  hop_length)`` -> the sum over window sizes of the mean absolute complex STFT difference,
  against :func:`bsr.loss.multi_resolution_stft_loss`; and the learner's choice of five
  windows for a stated time and frequency resolution.
* 06.2 ``(lr_factor, SCHEDULE)``: ``lr_factor(step, warmup_steps, decay, decay_every)``,
  linear warm-up times a staircase decay, against :func:`bsr.train.lr_factor`; and the
  learner's design of a schedule (``SCHEDULE``, its three arguments) that meets stated
  constraints.
* 06.P (the prediction): the EMA's memory after 10, 100 and 1,000 updates and the update at
  which its decay reaches 0.999, each within 10 %; the truth is computed here.

A function handed in alone (as the library-route tests hand it) is checked alone.
"""

from __future__ import annotations

import math

import torch

from bsr.check import CheckFailed, expect, register, wrong_prediction
from bsr.loss import multi_resolution_stft_loss
from bsr.train import lr_factor


def _stft_terms(est, ref, windows, hop, min_n_fft=2048, magnitude=False, use_window=True):
    """One loss term per window size in float64, with the usual mistakes as switches."""
    est = est.reshape(-1, est.shape[-1]).double()
    ref = ref.reshape(-1, ref.shape[-1]).double()
    terms = []
    for window in windows:
        shape = torch.hann_window(window, dtype=torch.float64)
        kwargs = dict(
            n_fft=max(window, min_n_fft),
            hop_length=hop,
            win_length=window,
            window=shape if use_window else torch.ones(window, dtype=torch.float64),
            return_complex=True,
        )
        a, b = torch.stft(est, **kwargs), torch.stft(ref, **kwargs)
        diff = a.abs() - b.abs() if magnitude else a - b
        terms.append(diff.abs().mean())
    return torch.stack(terms)


def _near(value: float, target: float, rtol: float = 1e-3) -> bool:
    return math.isfinite(value) and abs(value - float(target)) <= rtol * abs(float(target)) + 1e-7


def _diagnose(value, expected, estimate, reference, windows, hop, what) -> None:
    """Name the mistake behind a wrong loss value (always raises)."""

    def near(variant) -> bool:
        return _near(value, float(variant), rtol=1e-4)

    terms = _stft_terms(estimate, reference, windows, hop)
    if near(terms.mean()):
        raise CheckFailed(
            f"{what} is {value:.6g}, the MEAN over the {len(windows)} resolutions; the loss "
            f"is their SUM ({expected:.6g})"
        )
    if near(_stft_terms(estimate, reference, windows, hop, magnitude=True).sum()):
        raise CheckFailed(
            f"{what} is {value:.6g}: you compared magnitudes, | |Y| - |Y_ref| |. The loss is "
            "the absolute value of the COMPLEX difference, |Y - Y_ref|, which also "
            "penalises wrong phase"
        )
    if near(_stft_terms(estimate, reference, windows, hop, use_window=False).sum()):
        raise CheckFailed(
            f"{what} is {value:.6g}: the frames were not windowed; pass "
            "window=torch.hann_window(window) (with win_length=window)"
        )
    if near(_stft_terms(estimate, reference, windows, hop, min_n_fft=0).sum()):
        raise CheckFailed(
            f"{what} is {value:.6g}: you used n_fft = window for every resolution; short "
            f"windows are zero-padded to n_fft = max(window, 2048) (expected {expected:.6g})"
        )
    for name, other in (("first", windows[:1]), ("last", windows[-1:])):
        if near(_stft_terms(estimate, reference, other, hop).sum()):
            raise CheckFailed(
                f"{what} is {value:.6g}: only the {name} window size counts; add the terms "
                f"of all {len(windows)} resolutions"
            )
    raise CheckFailed(
        f"{what} is {value:.6g}, expected {expected:.6g} (sum over windows of the mean "
        "|STFT(estimate) - STFT(reference)|, Hann window, n_fft = max(window, 2048))"
    )


def _unpack(answer) -> tuple:
    """``(function, design)`` from ``answer``, a pair or the function alone (design None).

    A library function handed in, alone or inside the pair, is named by the watch
    (:func:`bsr.check.watch.watching`).
    """
    return answer if isinstance(answer, tuple) else (answer, None)


def _unanswered(design, name: str, exercise_id: str) -> None:
    text = repr(design)
    if design is Ellipsis or "Ellipsis" in text:
        raise CheckFailed(
            f"exercise {exercise_id} is not answered yet: write your design in {name} "
            "in place of every ..."
        )


LIBRARY_06_1 = ("bsr.loss.multi_resolution_stft_loss", "bsr.loss.separation_loss")
RATE = 44100


@register("06.1", library=LIBRARY_06_1)
def check_multi_resolution_stft_loss(answer) -> None:
    """``answer``: ``(multi_resolution_stft_loss, WINDOWS)``, or the loss alone."""
    loss_fn, windows = _unpack(answer)
    _check_loss(loss_fn)
    if windows is not None:
        _unanswered(windows, "WINDOWS", "06.1")
        _check_windows(windows)


def _check_windows(windows) -> None:
    """Five powers of two, each half the one before; the longest resolves 12 Hz, the
    shortest lasts at most 6 ms."""
    try:
        sizes = sorted((int(w) for w in windows), reverse=True)
    except (TypeError, ValueError):
        raise CheckFailed("WINDOWS should be five window lengths in samples") from None
    expect(len(sizes) == 5, f"WINDOWS holds {len(sizes)} windows; the loss has five")
    expect(
        all(w > 0 and w & (w - 1) == 0 for w in sizes),
        f"WINDOWS {tuple(sizes)}: every window should be a power of two",
    )
    expect(
        all(a == 2 * b for a, b in zip(sizes, sizes[1:])),
        f"WINDOWS {tuple(sizes)}: each window should be half the one before",
    )
    longest, shortest = sizes[0], sizes[-1]
    expect(
        RATE / longest <= 12.0,
        f"your longest window, {longest} samples, resolves only about {RATE / longest:.1f} Hz: "
        "two tones 12 Hz apart would show as one peak",
    )
    expect(
        1000 * shortest / RATE <= 6.0,
        f"your shortest window, {shortest} samples, lasts {1000 * shortest / RATE:.1f} ms: "
        "longer than the 6 ms within which it should place an onset",
    )


def _check_loss(loss_fn) -> None:
    torch.manual_seed(61)
    windows, hop = (1024, 512, 256), 147
    estimate = torch.randn(2, 2, 2, 6000) * 0.3  # (batch, stems, channels, samples)
    reference = torch.randn(2, 2, 2, 6000) * 0.3
    what = "multi_resolution_stft_loss(estimate, reference, (1024, 512, 256), 147)"
    got = loss_fn(estimate.clone(), reference.clone(), windows, hop)
    got = torch.as_tensor(got)
    expect(
        got.numel() == 1,
        f"{what} returned shape {tuple(got.shape)}: the loss is one number (a 0-d tensor); "
        "sum the per-resolution means",
    )
    expect(got.dtype.is_floating_point, f"{what} should be a real number, got {got.dtype}")
    value = float(got)
    expected = float(multi_resolution_stft_loss(estimate, reference, windows, hop))
    if not _near(value, expected, rtol=1e-5):
        _diagnose(value, expected, estimate, reference, windows, hop, what)
    # A second call: other shapes, the paper's windows, a perfect estimate.
    audio = torch.randn(3, 5000)  # (channels, samples): any leading axes
    zero = torch.as_tensor(loss_fn(audio.clone(), audio.clone(), (4096, 2048, 256), 147))
    expect(
        float(zero.abs()) < 1e-5,
        f"the loss of a perfect estimate should be 0, got {float(zero):.5g}",
    )
    other = torch.randn(3, 5000)
    got = float(torch.as_tensor(loss_fn(other, audio, (4096, 2048, 512), 100)).sum())
    expected = float(multi_resolution_stft_loss(other, audio, (4096, 2048, 512), 100))
    expect(
        _near(got, expected, rtol=1e-5),
        f"for (3, 5000) inputs, windows (4096, 2048, 512) and hop 100 the loss is {got:.5g}, "
        f"expected {expected:.5g}: flatten the leading axes and use the given windows and hop",
    )
    # It must be differentiable: training calls backward() on it.
    leaf = torch.randn(1, 4000, requires_grad=True)
    loss = torch.as_tensor(loss_fn(leaf, torch.zeros(1, 4000), (512,), 147))
    expect(
        loss.requires_grad,
        "the loss carries no gradient: compute it with torch operations on the input tensors "
        "(no .item(), .numpy() or .detach() on the way)",
    )


@register("06.2", library=("bsr.train.lr_factor",))
def check_lr_factor(answer) -> None:
    """``answer``: ``(lr_factor, SCHEDULE)``, or ``lr_factor`` alone."""
    lr_factor_fn, schedule = _unpack(answer)
    _check_lr_function(lr_factor_fn)
    if schedule is not None:
        _unanswered(schedule, "SCHEDULE", "06.2")
        _check_schedule(schedule)


def _check_schedule(schedule) -> None:
    """The design: the factor first reaches 1 at step 999, then four equal stairs bring it
    to 1/10 from step 16,000 on (counted from step 0)."""
    keys = {"warmup_steps", "decay", "decay_every"}
    if not isinstance(schedule, dict) or set(schedule) != keys:
        raise CheckFailed(f"SCHEDULE should be a dict with the keys {sorted(keys)}")
    warmup, decay, every = schedule["warmup_steps"], schedule["decay"], schedule["decay_every"]
    expect(
        isinstance(warmup, int) and isinstance(every, int) and every > 0,
        "SCHEDULE: warmup_steps and decay_every are whole numbers of steps (decay_every > 0)",
    )

    def factor(step: int) -> float:
        return lr_factor(step, warmup, decay, every)

    first = next((n for n in range(20_000) if factor(n) >= 1.0 - 1e-12), None)
    expect(
        first == 999,
        f"with warmup_steps = {warmup} the factor first reaches 1 at step {first}, not 999",
    )
    drops = [n for n in range(1000, 20_000) if factor(n) < factor(n - 1) - 1e-12]
    shown = ", ".join(f"{n:,}" for n in drops[:6]) + (" ..." if len(drops) > 6 else "")
    expect(
        drops == [4000, 8000, 12000, 16000],
        f"your schedule steps down at steps [{shown}] of the run: four equal stairs should "
        "bring the factor to its last value at step 16,000, and hold it there",
    )
    expect(
        abs(factor(16_000) - 0.1) < 1e-4,
        f"with your decay the factor from step 16,000 on is {factor(16_000):.4g}, not 0.1",
    )


def _check_lr_function(lr_factor_fn) -> None:
    cases = [
        (warmup, decay, every)
        for warmup in (0, 1, 10)
        for decay, every in ((0.9, 40), (0.5, 7), (1.0, 3))
    ]
    steps = [0, 1, 5, 9, 10, 11, 39, 40, 41, 79, 80, 200]
    for warmup, decay, every in cases:
        for step in steps:
            call = f"lr_factor({step}, {warmup}, {decay}, {every})"
            try:
                got = lr_factor_fn(step, warmup, decay, every)
            except ZeroDivisionError:
                raise CheckFailed(
                    f"{call} divides by zero: warmup_steps=0 means no warm-up "
                    "(factor 1 during warm-up)"
                ) from None
            expected = lr_factor(step, warmup, decay, every)
            try:
                value = float(got)
            except (TypeError, ValueError):
                raise CheckFailed(
                    f"{call} returned {type(got).__name__}: return a number"
                ) from None
            if abs(value - expected) <= 1e-9 + 1e-6 * abs(expected):
                continue
            hints = []
            warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
            if warmup and abs(value - min(1.0, step / warmup) * decay ** (step // every)) < 1e-9:
                hints.append(
                    "the warm-up is off by one: step 0 is the first step and should already "
                    "train, factor (step + 1) / warmup_steps"
                )
            if abs(value - warm * decay ** (step / every)) < 1e-9:
                hints.append(
                    "the decay is continuous; the paper's schedule is a STAIRCASE, "
                    "decay ** (step // decay_every) with integer division"
                )
            if abs(value - decay ** (step // every)) < 1e-9:
                hints.append("there is no warm-up: multiply by min(1, (step + 1) / warmup_steps)")
            if abs(value - warm * decay ** (max(0, step - warmup) // every)) < 1e-9:
                hints.append(
                    "the decay is counted from the end of the warm-up; here it counts from "
                    "step 0: decay ** (step // decay_every)"
                )
            if abs(value - warm) < 1e-9:
                hints.append("there is no decay after the warm-up")
            hint = ("; " + hints[0]) if hints else ""
            raise CheckFailed(f"{call} is {value:.6g}, expected {expected:.6g}{hint}")


@register("06.P")
def check_prediction(answer: dict, observed: dict | None = None) -> None:
    """``answer``: the EMA's memory ``1 / (1 - d_n)`` after 10, 100 and 1,000 updates, and
    the first ``n`` with ``d_n = 0.999``, for ``d_n = min(0.999, (1 + n) / (10 + n))``;
    each within 10 %. ``observed`` (optional) holds the run's numbers under the same keys."""
    truth = {f"after {n}": (10 + n) / 9 for n in (10, 100, 1000)}  # 1 - d_n = 9 / (10 + n)
    # (1 + n) / (10 + n) >= 0.999, in whole numbers: 1000 (1 + n) >= 999 (10 + n)
    truth["reaches 0.999 after"] = next(n for n in range(10**6) if 1000 * (1 + n) >= 999 * (10 + n))
    if not isinstance(answer, dict) or set(answer) != set(truth):
        raise wrong_prediction("06.P", f"PREDICTION should be a dict with the keys {sorted(truth)}")
    for key, true in truth.items():
        said = answer[key]
        if not isinstance(said, (int, float)) or not said > 0:
            raise wrong_prediction("06.P", f"{key!r}: write a positive number, not {said!r}")
        if abs(said - true) > 0.1 * true:
            run = f" (the run printed {observed[key]:.4g})" if observed and key in observed else ""
            what = (
                "the decay reaches 0.999 after"
                if key.startswith("reaches")
                else f"the memory {key} updates is"
            )
            raise wrong_prediction("06.P", f"you said {what} {said:g}, but it is {true:.4g}{run}")
