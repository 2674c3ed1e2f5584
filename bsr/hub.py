"""One call to get a separator: ``bsr.load_model("course")``.

A model is named in one of three ways, tried in this order:

* a **file** (``runs/mine/model.pt``, a community ``.ckpt``): loaded by
  :func:`bsr.formats.load_model`, with ``config`` for community state dicts;
* a **shipped model**: ``course`` (the course model, trained for hours on practice songs)
  and ``course-norope`` (the same recipe with RoPE off). Their weights live in
  ``bsr/weights/`` in half precision, next to a card (``NAME.md`` for people,
  ``NAME.json`` for code) with the command, the training curve and the scores;
* a **registry name** from ``bsr pretrained list``: downloaded once into the cache, checked,
  then loaded (needs the network the first time).

The model comes back in eval mode, in float32, on ``device``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from bsr.config import Config, ModelConfig
from bsr.errors import BsrError
from bsr.model import BSRoformer

WEIGHTS = resources.files("bsr") / "weights"
SHIPPED = ("course", "course-norope")


def shipped_path(name: str) -> Path:
    """The weights file of a shipped model (``bsr/weights/NAME.pt``)."""
    if name not in SHIPPED:
        raise BsrError(f"no shipped model {name!r}: choose one of {', '.join(SHIPPED)}")
    path = Path(str(WEIGHTS / f"{name}.pt"))
    if not path.is_file():
        raise BsrError(
            f"the shipped weights {path} are missing: reinstall bsr from a full clone "
            "(git lfs is not used; the file is in the repository)"
        )
    return path


def model_card(name: str) -> dict:
    """The machine-readable card of a shipped model: command, curve, scores (``NAME.json``)."""
    shipped_path(name)
    path = Path(str(WEIGHTS / f"{name}.json"))
    if not path.is_file():
        raise BsrError(f"the card {path} is missing: reinstall bsr from a full clone")
    return json.loads(path.read_text())


def load_model(
    name: str | Path,
    config: str | Path | dict | ModelConfig | Config | None = None,
    device: str | torch.device = "cpu",
    weights: str = "ema",
) -> BSRoformer:
    """A ready-to-run separator from a file, a shipped model or a registry name.

    >>> model = load_model("course")            # no network needed
    >>> model = load_model("runs/mine/model.pt")
    >>> model = load_model("x.ckpt", config="x.yaml")   # a community checkpoint

    ``config``: only for community state dicts (a ZFTurbo YAML path, a parsed mapping, or
    lucidrains' keyword arguments). ``weights``: for a training state (``last.pt``), its
    EMA (default) or its ``"raw"`` weights. The model separates, by default, in windows as
    long as its training segments (a community model: its YAML's chunk size).
    """
    from bsr.formats import load_model as load_file

    path = Path(name)
    if path.exists():
        model = load_file(path, config=config, device=device, weights=weights)
    elif str(name) in SHIPPED:
        model = load_file(shipped_path(str(name)), device=device)
    else:
        from bsr.pretrained import load_pretrained, load_registry

        known = [entry.name for entry in load_registry()]
        if str(name) not in known:
            raise BsrError(
                f"{name} is neither a file nor a known model: give a checkpoint path, "
                f"one of {', '.join(SHIPPED)}, or a name from `bsr pretrained list`"
            )
        model = load_pretrained(str(name), device=str(device))
    return model.float().eval()


def separate_audio(
    audio: np.ndarray, sample_rate: int, model: torch.nn.Module, **options
) -> dict[str, np.ndarray]:
    """Separate one song: ``(channels, samples)`` or ``(samples,)`` -> ``{stem: (C, samples)}``.

    Any length, sample rate and channel count; ``options`` go to
    :func:`bsr.separate.separate` (``window_seconds``, ``hop_seconds``, ``batch_size``, ...).
    """
    from bsr.separate import separate

    return separate(audio, sample_rate, model, **options)
