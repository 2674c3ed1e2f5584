"""Model files: save a trained separator, and export it for the community tools.

:func:`save_model` writes a **bsr checkpoint**: a dict ``{"format": "bsr", "version": ...,
"config": Config.to_dict(), "model": state_dict}`` that carries its own config (as plain
dicts and lists, so that ``torch.load(weights_only=True)`` reads it back). Training's
``last.pt`` holds more (``ema``, ``optimizer``, ...). :func:`export_community` writes the
same weights in the layout lucidrains' and ZFTurbo's code load, and if asked the ZFTurbo
YAML that describes them.

Reading any of these files, and the community's own, is :mod:`bsr.formats`; its
:func:`~bsr.formats.load_model` and the names below are importable from here too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from bsr._version import __version__
from bsr.config import Config, ModelConfig
from bsr.formats import (  # noqa: F401  (re-exported: loading lives in bsr.formats)
    WEIGHT_KEYS,
    config_notes,
    load_model,
    load_weights,
    read_torch_file,
    resolve_config,
)
from bsr.formats.keys import to_community_state_dict
from bsr.formats.zfturbo import zfturbo_config
from bsr.model import BSRoformer

# ---------------------------------------------------------------------------- writing


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A rename within one file system is atomic: a crash leaves the old file or the new
    one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwrap(model: torch.nn.Module) -> BSRoformer:
    """The BSRoformer inside ``torch.compile`` / DistributedDataParallel wrappers."""
    while not isinstance(model, BSRoformer):
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            raise TypeError(f"expected a BSRoformer, got {type(model).__name__}")
        model = inner
    return model


def checkpoint_dict(model: torch.nn.Module, config: Config | ModelConfig | None = None) -> dict:
    """The bsr checkpoint payload: format, version, config (plain types), CPU weights."""
    model = unwrap(model)
    if config is None:
        config = Config(model=model.config)
    elif isinstance(config, ModelConfig):
        config = Config(model=config)
    if config.model != model.config:
        raise ValueError("config.model differs from the model's own config")
    return {
        "format": "bsr",
        "version": __version__,
        "config": config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_model(
    model: torch.nn.Module,
    path: str | Path,
    config: Config | ModelConfig | None = None,
    extra: dict | None = None,
) -> None:
    """Write a bsr checkpoint that :func:`load_model` reads back.

    ``config`` defaults to the model's own (with default training settings); ``extra``
    adds entries (e.g. ``step``), which must be plain types or tensors.
    """
    atomic_save({**checkpoint_dict(model, config), **(extra or {})}, path)


def export_community(
    model: torch.nn.Module, path: str | Path, yaml_path: str | Path | None = None
) -> None:
    """Write the weights in the community layout (and, if asked, the matching ZFTurbo YAML)."""
    import yaml

    model = unwrap(model)
    atomic_save(to_community_state_dict(model), path)
    if yaml_path is not None:
        text = yaml.safe_dump(zfturbo_config(model.config), sort_keys=False)
        Path(yaml_path).write_text(text)
