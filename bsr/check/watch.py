"""Watch an answer for calls into the library it is meant to replace.

An exercise asks the learner to *write* something the library already has: ``STFT``,
``RMSNorm``, ``layer(x, rope)``, ``separate_tensor``... Comparing the answer with the
library is then no test at all if the answer simply calls the library. So while a check
runs, :func:`watching` records every call into the exercise's library equivalents that is
made *by the learner's code*, and the check fails if there is one. The equivalents are the
names the check gives and their peers in other packages (:mod:`bsr.check.equivalents`):
``librosa.stft`` is no more the learner's own STFT than ``torch.stft`` is.

Who made a call is read off the call stack: from the called function, walk outwards past
frames of installed packages (PyTorch's ``nn.Module.__call__``, librosa calling its own
``stft``...) and of Python's standard library (``contextlib``...); the first other frame
decides. If it lies inside ``bsr`` (the check computing its reference, or a library
function the answer may use), the call is fine; anywhere else (a notebook cell, a test
file) it is the learner's.

Python functions are seen through :func:`sys.setprofile` ``call`` events (compared by code
object, so ``from bsr.stft import STFT`` cannot hide them), C functions such as
``F.scaled_dot_product_attention`` through ``c_call`` events, and :data:`COMPLEX_PRODUCT`
(a product of two complex tensors, for the exercise that writes it out) through a
:class:`~torch.overrides.TorchFunctionMode`, because ``a * b`` makes no Python call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import site
import sys
import sysconfig
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from bsr.check.equivalents import PEERS

COMPLEX_PRODUCT = "a product of two complex tensors"
_BSR = str(Path(__file__).resolve().parents[1]) + os.sep  # the bsr package folder
# Installed code: PyTorch, the standard library and every site-packages folder. A package
# calling a watched function of its own (museval.evaluate calling its bss_eval) is judged
# by whoever called the package: bsr computing a reference, or the learner.
_PASS_THROUGH = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {
        Path(torch.__file__).parent,
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
        *site.getsitepackages(),
        site.getusersitepackages(),
    }
)
# Every torch spelling of a product or quotient (``a / b`` is ``a * (1 / b)``), by name, so
# that ``torch.mul``, ``Tensor.mul``, ``a * b``, ``a *= b`` and ``a.mul_(b)`` all count.
_PRODUCTS = frozenset(
    "mul multiply __mul__ __rmul__ __imul__ div divide true_divide __truediv__ __rtruediv__ "
    "__itruediv__ __div__ __rdiv__ __idiv__ matmul __matmul__ __rmatmul__ mm bmm mv dot vdot "
    "inner outer kron tensordot einsum addcmul addcdiv".split()
)
_REDUCTIONS = frozenset({"prod", "cumprod"})  # multiply the complex numbers of one tensor


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


def installed(name: str) -> bool:
    """Whether ``name`` resolves. Any failure counts as absent: a package may fail to import
    for reasons of its own (museval without ffmpeg raises RuntimeError), and an answer cannot
    call what does not import. Import warnings are not the learner's business: hidden."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            resolve(name)
        except Exception:
            return False
    return True


def with_peers(names: Iterable[str]) -> tuple[str, ...]:
    """``names``, then the installed peers of each (:data:`~bsr.check.equivalents.PEERS`)."""
    names = tuple(names)
    out = list(names)
    for name in names:
        for peer in PEERS.get(name, ()):
            if peer not in out and installed(peer):
                out.append(peer)
    return tuple(out)


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
    """``(code object -> name, id(C function) -> name)`` for the names to watch; a function
    that several names cover (a method and its class) keeps the first of them."""
    codes, builtins = {}, {}
    for name in names:
        if name == COMPLEX_PRODUCT:
            continue
        for function in _functions(resolve(name)):
            code = getattr(inspect.unwrap(function), "__code__", None)
            if code is not None:
                codes.setdefault(code, name)
            else:
                builtins.setdefault(id(function), name)
    return codes, builtins


def _filename(frame) -> str:
    name = frame.f_code.co_filename
    return str(Path(name).resolve()) if name.startswith("/") else name


def made_by_learner(frame) -> bool:
    """Did the code running in ``frame`` come (past installed code) from the learner?"""
    while frame is not None:
        filename = _filename(frame)
        if filename.startswith(_BSR):  # first: bsr may be installed inside the stdlib tree
            return False
        if not filename.startswith(("<frozen", *_PASS_THROUGH)):
            return True
        frame = frame.f_back
    return False


def _complex_product(func, args: tuple, kwargs: dict) -> bool:
    """Does ``func(*args, **kwargs)`` multiply or divide complex numbers by complex numbers?"""
    name = getattr(func, "__name__", "")
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]  # in place: mul_ multiplies as mul does
    factors = [*args, *kwargs.values()]
    if name.startswith("addc"):  # addcmul(input, t1, t2): input is added, not multiplied
        factors = [*args[1:], *(v for k, v in kwargs.items() if k != "input")]
    if name == "einsum" or name == "tensordot":  # operands may come as one list
        factors = [f for x in factors for f in (x if isinstance(x, (list, tuple)) else [x])]
    complex_factors = sum(isinstance(f, torch.Tensor) and f.is_complex() for f in factors)
    if name in _REDUCTIONS:
        return complex_factors >= 1
    return name in _PRODUCTS and complex_factors >= 2


class _ComplexProducts(TorchFunctionMode):
    """Notes every product (or quotient) of complex tensors that the learner's code computes."""

    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _complex_product(func, args, kwargs) and made_by_learner(sys._getframe(1)):
            self.seen.append(COMPLEX_PRODUCT)
        return func(*args, **kwargs)


def library_name(answer, codes: dict, builtins: dict) -> str | None:
    """The watched name that ``answer`` itself is (handed in directly), else None;
    ``codes`` and ``builtins`` as :func:`targets` gives them.

    The check calls such an answer from bsr's own code, so no learner frame would show the
    call: ``functools.partial`` and modules (``nn.RMSNorm(20)``) are looked through here.
    """
    while isinstance(answer, functools.partial):
        answer = answer.func
    if isinstance(answer, torch.nn.Module):
        answer = type(answer).forward
    function = inspect.unwrap(getattr(answer, "__func__", answer))
    code = getattr(function, "__code__", None)
    return codes.get(code) if code is not None else builtins.get(id(function))


@contextmanager
def watching(names: Iterable[str], answer=None) -> Iterator[list[str]]:
    """Yield a list that fills with the watched ``names`` (and their peers in other
    packages, :func:`with_peers`) that the learner's code calls.

    ``answer``, when given, is the learner's answer: if it *is* one of the watched
    functions (``exercise("02.1", paper_band_sizes)``), or a tuple holding one (an answer
    that pairs a function with a derived number, ``(band_mask, head_parameters)``), the
    check calls it, so the list starts with its name.
    """
    names = with_peers(names)
    codes, builtins = targets(names)
    parts = answer if isinstance(answer, tuple) else (answer,)
    handed_in = [library_name(part, codes, builtins) for part in parts if part is not None]
    seen: list[str] = [name for name in handed_in if name][:1]

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
