"""Self-checks for the course's exercises: ``bsr.check.exercise("02.1", my_function)``.

Each notebook exercise asks the learner to write a function; the cell after it calls
``bsr.check.exercise(ID, function)``, which runs the function on fresh inputs, compares it
with the library's own version (or a float64 reference, or a named property), and either
prints a short "passed" line or raises :class:`CheckFailed` saying *what* is wrong: the
shape, the values (and where they differ most), or the property that does not hold.

Checks for notebook NN live in ``bsr/check/nbNN.py`` and register themselves with
:func:`register`; :data:`EXERCISES` maps an exercise ID to its check and :data:`LIBRARY`
to the library functions the exercise asks the learner to write. An answer that calls one
of those fails (:mod:`bsr.check.watch` says how that is seen), so no check can be passed
by importing the answer.

A notebook's "Predict, then run" is checked the same way: the learner writes the prediction
down in ``PREDICTION`` before the run, and the run cell ends with
``bsr.check.prediction("03.P", PREDICTION, observed)``, which compares the prediction with
what the run measured (``observed``) or with what the check computes itself. Its ID is the
notebook's number and ``P``; its check registers with :func:`register` like an exercise's.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import torch

from bsr.check.watch import COMPLEX_PRODUCT, watching

EXERCISES: dict[str, Callable] = {}
LIBRARY: dict[str, tuple[str, ...]] = {}


class CheckFailed(AssertionError):
    """An exercise's answer is wrong; the message says how."""


def register(exercise_id: str, library: tuple[str, ...] = ()):
    """Decorator: make a check function the check of ``exercise_id`` (e.g. ``"02.1"``).

    ``library`` names what the answer must not call, as dotted names (a function, a
    method, or a class for all its methods) or :data:`~bsr.check.watch.COMPLEX_PRODUCT`.
    """

    def wrap(check: Callable) -> Callable:
        EXERCISES[exercise_id] = check
        LIBRARY[exercise_id] = tuple(library)
        return check

    return wrap


def exercise(exercise_id: str, answer) -> None:
    """Check the learner's ``answer`` to exercise ``exercise_id``; raise CheckFailed if wrong."""
    _load_all()
    if exercise_id not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise {exercise_id!r}: known exercises are {known}")
    with watching(LIBRARY[exercise_id], answer) as used:
        try:
            EXERCISES[exercise_id](answer)
        except NotImplementedError:
            raise CheckFailed(
                f"exercise {exercise_id} is not answered yet: replace `raise "
                "NotImplementedError` with your code"
            ) from None
        except Exception:
            if not used:
                raise
    if used:
        raise CheckFailed(_uses_library(exercise_id, used[0]))
    print(f"exercise {exercise_id}: passed")


def prediction(prediction_id: str, answer, observed=None) -> None:
    """Check the learner's ``answer`` to prediction ``prediction_id`` (e.g. ``"03.P"``).

    ``observed`` is what the run just measured, for predictions about it; the registered
    check is called as ``check(answer, observed)`` and raises CheckFailed (through
    :func:`wrong_prediction`) where the prediction and the run disagree.
    """
    _load_all()
    if prediction_id not in EXERCISES:
        known = ", ".join(sorted(k for k in EXERCISES if k.endswith(".P")))
        raise KeyError(f"no prediction {prediction_id!r}: known predictions are {known}")
    if _unanswered(answer):
        raise CheckFailed(
            f"prediction {prediction_id} is not answered yet: write your prediction in place "
            "of every ... in PREDICTION (and delete `raise NotImplementedError`), then run again"
        )
    EXERCISES[prediction_id](answer, observed)
    print(f"prediction {prediction_id}: passed, the run agrees with you")


def wrong_prediction(prediction_id: str, what: str) -> CheckFailed:
    """The failure of a prediction: what was predicted against what the run gave."""
    return CheckFailed(
        f"prediction {prediction_id}: {what}. A wrong prediction is worth more than a lucky "
        "one: work out why before you read on, and write it in the cell below"
    )


def _unanswered(answer) -> bool:
    """True if ``answer`` is ``...`` or holds one (the student version's blanks)."""
    if answer is Ellipsis:
        return True
    if isinstance(answer, dict):
        return any(_unanswered(v) for v in answer.values())
    if isinstance(answer, (list, tuple, set)):
        return any(_unanswered(v) for v in answer)
    return False


def _uses_library(exercise_id: str, name: str) -> str:
    if name == COMPLEX_PRODUCT:
        return (
            f"exercise {exercise_id}: your answer multiplies (or divides) two complex tensors; "
            "the exercise is to write the product with real and imaginary parts, "
            "(ac - bd) + i(ad + bc)"
        )
    return (
        f"exercise {exercise_id}: your answer calls {name}, the library's own version; the "
        "exercise is to write it yourself (the check compares with the library, and the "
        "notebook uses the library from the next section on)"
    )


def _load_all() -> None:
    """Import every ``nbNN`` module so that its checks register."""
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{module.name}")


# -- helpers for writing checks ----------------------------------------------------------


def expect_shape(value, shape: tuple, what: str) -> None:
    """Fail unless ``value`` is a tensor/array of exactly ``shape``."""
    got = tuple(getattr(value, "shape", ()))
    if not hasattr(value, "shape"):
        raise CheckFailed(f"{what} should be a tensor of shape {shape}, got {type(value).__name__}")
    if got != tuple(shape):
        raise CheckFailed(f"{what} has shape {got}, expected {tuple(shape)}")


def expect_close(value, reference, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail unless ``value`` matches ``reference`` in shape and values; say where it differs."""
    value = torch.as_tensor(value)
    reference = torch.as_tensor(reference)
    expect_shape(value, tuple(reference.shape), what)
    if value.is_complex() != reference.is_complex():
        kind = "complex" if reference.is_complex() else "real"
        raise CheckFailed(f"{what} should be {kind}")
    if not torch.isfinite(value).all():
        raise CheckFailed(f"{what} contains NaN or inf values")
    diff = (value.to(reference.dtype) - reference).abs()
    limit = atol + rtol * reference.abs()
    if (diff > limit).any():
        worst = int(diff.argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), reference.shape))
        raise CheckFailed(
            f"{what} has wrong values: at index {index} got {value.flatten()[worst].item():.6g}, "
            f"expected {reference.flatten()[worst].item():.6g} "
            f"({int((diff > limit).sum())} of {reference.numel()} values differ)"
        )


def expect(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds (for named properties)."""
    if not condition:
        raise CheckFailed(message)


def small_model(**overrides):
    """A random BSRoformer small enough for a check (n_fft 128, D 16, one block, no dropout)."""
    from bsr.config import ModelConfig
    from bsr.model import BSRoformer

    values = dict(n_fft=128, hop_length=32, dim=16, depth=1, heads=2, stems=["vocals", "drums"],
                  mlp_expansion_factor=1, attn_dropout=0.0, ff_dropout=0.0)  # fmt: skip
    values.update(overrides)
    return BSRoformer(ModelConfig(**values)).eval()
