"""What a reader of model files is given, and what it hands back.

Loading a file (:mod:`bsr.formats`) goes one way: read it as data, find its format, let
that format's reader translate it into bsr's terms, build the model once. This module
holds the two ends of a reader:

* :class:`Source`, what it is given: the file's ``payload`` (whatever ``torch.load``
  returned), the state dict found in it, and the ``config`` argument the caller passed,
  parsed when it names a YAML file;
* :class:`Found`, what it returns: a :class:`~bsr.config.ModelConfig`, a state dict in
  bsr's own parameter names (``{name: tensor}``), the separation windows the file implies,
  and how to name a bsr key the way the file does (for a mismatch report).

Every file is read with ``torch.load(..., weights_only=True)`` and every YAML with a safe
loader: a model file is data, and must never run code.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import yaml

from bsr.config import Config, ModelConfig
from bsr.errors import BsrError

WEIGHT_KEYS = ("state_dict", "state", "model", "model_state_dict")  # where trainers put them

# ---------------------------------------------------------------------------- torch files


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``, turning every failure into one-line BsrError."""
    path = Path(path)
    if path.is_dir():
        raise BsrError(f"{path} is a directory, not a checkpoint: give the .pt / .ckpt file in it")
    if not path.is_file():
        raise BsrError(f"checkpoint {path} not found: check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or foreign files
        raise BsrError(
            f"{path} is not a readable checkpoint ({_reason(error)}): give a model file "
            "saved by bsr or a state dict saved with torch.save(model.state_dict(), path)"
        ) from None


def _reason(error: Exception) -> str:
    """A short reason for a failed torch.load (torch's own messages run to paragraphs)."""
    if isinstance(error, (pickle.UnpicklingError, KeyError)):
        # weights_only refuses arbitrary pickles (a whole pickled model); text and random
        # bytes fail in the unpickler too.
        return "not a torch file, or one that pickles Python objects instead of tensors"
    if isinstance(error, EOFError):
        return "the file is empty or cut short"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    first = first.split(". ")[0][:80]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of names to tensors."""
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def state_dict_in(payload: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a file: the payload itself, or under one of WEIGHT_KEYS."""
    if isinstance(payload, dict):
        for candidate in (payload, *(payload.get(key) for key in WEIGHT_KEYS)):
            if is_state_dict(candidate):
                return candidate
    raise BsrError(
        f"{path} holds no state dict (a mapping of parameter names to tensors): give a "
        "bsr checkpoint or a BS-RoFormer state dict"
    )


def strip_module_prefix(state_dict: dict) -> dict:
    """Drop the ``module.`` prefix of a model saved from inside DataParallel."""
    if state_dict and all(str(k).startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


# ---------------------------------------------------------------------------- YAML files


class _TupleTolerantLoader(yaml.SafeLoader):
    """SafeLoader that also reads two tags ZFTurbo's configs use, without running code:
    ``!!python/tuple`` (a list) and ``!!python/name:torch.hann_window`` (the dotted name,
    as text; bsr looks it up in a fixed table, never imports it)."""


_TupleTolerantLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
)
_TupleTolerantLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix
)


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML file (ZFTurbo's ``!!python/tuple`` allowed) with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise BsrError(f"config file {path} not found: check the path")
    try:
        data = yaml.load(path.read_text(), Loader=_TupleTolerantLoader)  # a SafeLoader: no code
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0]
        raise BsrError(f"config {path} is not valid YAML ({first}): fix the file") from None
    if not isinstance(data, dict):
        raise BsrError(f"config {path} is not a YAML mapping: expected 'model:' and 'audio:'")
    return data


def config_yaml(spec: Any) -> dict | None:
    """The parsed YAML when the config argument names a file (ZFTurbo's or bsr's), else None.

    A ModelConfig, a Config, a mapping or nothing is not a file; a preset name usually is
    not either (then bsr's :func:`~bsr.config.load_config` finds it).
    """
    if spec is None or isinstance(spec, (ModelConfig, Config, dict)):
        return None
    return read_yaml(spec) if Path(spec).is_file() else None


# ---------------------------------------------------------------------------- a reader's ends


@dataclasses.dataclass
class Source:
    """A model file read as data, with the config argument that came with it."""

    path: Path
    payload: Any  # what torch.load returned
    config: Any = None  # the config argument as given: path, preset, mapping, ModelConfig...
    weights: str = "ema"  # of a training state: its EMA or its "raw" weights

    @classmethod
    def read(cls, path: str | Path, config: Any = None, weights: str = "ema") -> Source:
        path = Path(path)
        return cls(path, read_torch_file(path), config, weights)

    @cached_property
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The file's parameters, wherever the trainer put them, without ``module.``."""
        return strip_module_prefix(state_dict_in(self.payload, self.path))

    @cached_property
    def yaml(self) -> dict | None:
        """The config argument parsed, when it names a YAML file (see :func:`config_yaml`)."""
        return config_yaml(self.config)


def same_name(key: str) -> str:
    """A file that uses bsr's own parameter names."""
    return key


@dataclasses.dataclass
class Found:
    """A reader's answer: everything needed to build the model and fill it."""

    config: ModelConfig
    state: dict[str, torch.Tensor]  # in bsr's names: BSRoformer(config).load_state_dict(state)
    separation: dict[str, int] | None = None  # {"window": samples, "hop": samples}, or None
    names: Callable[[str], str] = same_name  # bsr key -> the file's name, for error reports
