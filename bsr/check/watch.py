"""Watch an answer for calls into the library it is meant to replace.

An exercise asks the learner to *write* something the library already has: ``STFT``,
``RMSNorm``, ``layer(x, rope)``, ``separate_tensor``... Comparing the answer with the
library is then no test at all if the answer simply calls the library. So while a check
runs, :func:`watching` records every call into the exercise's library equivalents that is
made *by the learner's code*, and the check fails if there is one.

Who made a call is read off the call stack: from the called function, walk outwards past
frames of PyTorch and of Python's standard library (``nn.Module.__call__``,
``contextlib``...); the first other frame decides. If it lies inside ``bsr`` (the check
computing its reference, or a library function the answer may use), the call is fine;
anywhere else (a notebook cell, a test file) it is the learner's.

Python functions are seen through :func:`sys.setprofile` ``call`` events (compared by code
object, so ``from bsr.stft import STFT`` cannot hide them), C functions such as
``F.scaled_dot_product_attention`` through ``c_call`` events, and :data:`COMPLEX_PRODUCT`
(a product of two complex tensors, for the exercise that writes it out) through a
:class:`~torch.overrides.TorchFunctionMode`, because ``a * b`` makes no Python call.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

COMPLEX_PRODUCT = "a product of two complex tensors"
_BSR = str(Path(__file__).resolve().parents[1]) + os.sep  # the bsr package folder
_PASS_THROUGH = tuple(
    str(Path(p).resolve()) + os.sep
    for p in (Path(torch.__file__).parent, sysconfig.get_paths()["stdlib"])
)
_MULTIPLY = {
    torch.mul,
    torch.multiply,
    torch.Tensor.mul,
    torch.Tensor.__mul__,
    torch.Tensor.__rmul__,
}


def resolve(name: str):
    """The object a dotted name stands for: ``"bsr.stft.STFT.forward"`` -> the function."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"cannot resolve {name!r}")


def _functions(obj) -> list:
    """The plain functions behind ``obj``: itself, or every method of a class."""
    if inspect.isclass(obj):
        members = []
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)  # staticmethod / classmethod
            value = getattr(value, "fget", value)  # property
            if callable(value):
                members.append(value)
        return members
    return [obj]


def targets(names: Iterable[str]) -> tuple[dict, dict]:
    """``(code object -> name, id(C function) -> name)`` for the names to watch."""
    codes, builtins = {}, {}
    for name in names:
        if name == COMPLEX_PRODUCT:
            continue
        for function in _functions(resolve(name)):
            code = getattr(inspect.unwrap(function), "__code__", None)
            if code is not None:
                codes[code] = name
            else:
                builtins[id(function)] = name
    return codes, builtins


def _filename(frame) -> str:
    name = frame.f_code.co_filename
    return str(Path(name).resolve()) if name.startswith("/") else name


def made_by_learner(frame) -> bool:
    """Did the code running in ``frame`` come (past torch and stdlib frames) from the learner?"""
    while frame is not None:
        filename = _filename(frame)
        if filename.startswith(_BSR):  # first: bsr may be installed inside the stdlib tree
            return False
        if not filename.startswith(("<frozen", *_PASS_THROUGH)):
            return True
        frame = frame.f_back
    return False


class _ComplexProducts(TorchFunctionMode):
    """Notes every product of two complex tensors that the learner's code computes."""

    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (
            func in _MULTIPLY
            and len(args) >= 2
            and all(isinstance(a, torch.Tensor) and a.is_complex() for a in args[:2])
            and made_by_learner(sys._getframe(1))
        ):
            self.seen.append(COMPLEX_PRODUCT)
        return func(*args, **kwargs)


def library_name(answer, codes: dict, builtins: dict) -> str | None:
    """The watched name that ``answer`` itself is (handed in directly), else None;
    ``codes`` and ``builtins`` as :func:`targets` gives them."""
    function = inspect.unwrap(getattr(answer, "__func__", answer))
    code = getattr(function, "__code__", None)
    return codes.get(code) if code is not None else builtins.get(id(function))


@contextmanager
def watching(names: Iterable[str], answer=None) -> Iterator[list[str]]:
    """Yield a list that fills with the watched ``names`` the learner's code calls.

    ``answer``, when given, is the learner's answer: if it *is* one of the watched
    functions (``exercise("02.1", paper_band_sizes)``), the check calls it, so the list
    starts with its name.
    """
    names = tuple(names)
    codes, builtins = targets(names)
    handed_in = library_name(answer, codes, builtins) if answer is not None else None
    seen: list[str] = [handed_in] if handed_in else []

    def profile(frame, event, arg):
        if event == "call":
            name = codes.get(frame.f_code)
            if name is not None and made_by_learner(frame.f_back):
                seen.append(name)
        elif event == "c_call":
            name = builtins.get(id(arg))
            if name is not None and made_by_learner(frame):
                seen.append(name)

    previous = sys.getprofile()
    sys.setprofile(profile if codes or builtins else previous)
    try:
        if COMPLEX_PRODUCT in names:
            with _ComplexProducts(seen):
                yield seen
        else:
            yield seen
    finally:
        sys.setprofile(previous)
