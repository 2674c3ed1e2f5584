"""Loading a model file, one way down: read it, find its format, translate, build once.

::

    bsr.load_model("x.ckpt", config="x.yaml")          bsr.hub: a name, a file or a download
    -> bsr.formats.load_model                          this module
         source = Source.read(path, config)            source: torch.load(weights_only=True)
         reader = find_format(source)                  the first row of FORMATS that fits
         found = reader.read(source)                   Found(config, state in bsr's names)
         model = BSRoformer(found.config)              built once, here
         load_weights(model, found.state, ...)         fit: or a report of what does not fit

A file says little about itself. A bsr checkpoint names its format; any other file is a
state dict (``{name: tensor}``), and its names tell bsr's own from the community's; for
community weights, the kind of ``config`` passed with them tells whose code trained them.
:data:`FORMATS` asks in that order:

====  ==========================  ===============================  ====================
row   the file                    the config argument              reader
====  ==========================  ===============================  ====================
1     ``{"format": "bsr", ...}``  (stored in the file)             :mod:`.bsr_checkpoint`
2     bsr's names                 any (see :mod:`.configs`)        :mod:`.bsr_state_dict`
3     community names             a ZFTurbo YAML, or its dict      :mod:`.zfturbo`
4     community names             lucidrains' keyword arguments    :mod:`.lucidrains`
5     community names             a bsr config, YAML or preset     :mod:`.bsr_config`
====  ==========================  ===============================  ====================

BS-RoFormer or Mel-Band is not a row: rows 3-5 read it off the config and the weights
(:mod:`.kinds`), and share one key table (:mod:`.keys`) and one translation of the
community's settings (:mod:`.settings`).

To add a format, write one module with ``NAME``, ``recognises(source) -> bool`` and
``read(source) -> Found``, and add it to :data:`FORMATS` above the first row that would
also claim its files. A reader imports only modules below it, never this one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bsr.config import Config, ModelConfig
from bsr.errors import BsrError
from bsr.formats import bsr_checkpoint, bsr_config, bsr_state_dict, lucidrains, zfturbo
from bsr.formats.configs import resolve_config
from bsr.formats.fit import load_weights
from bsr.formats.source import WEIGHT_KEYS, Found, Source, read_torch_file
from bsr.formats.zfturbo import config_notes
from bsr.model import BSRoformer

FORMATS = (bsr_checkpoint, bsr_state_dict, zfturbo, lucidrains, bsr_config)
"""The readers, in the order they are asked (see the table above)."""

__all__ = [
    "FORMATS",
    "WEIGHT_KEYS",
    "Found",
    "Source",
    "config_notes",
    "find_format",
    "load_model",
    "load_weights",
    "read_torch_file",
    "resolve_config",
]


def find_format(source: Source):
    """The reader (a module of FORMATS) for ``source``, or a BsrError saying what is missing."""
    for reader in FORMATS:
        if reader.recognises(source):
            return reader
    # Only community weights without a config get here: their network is not in the file.
    raise BsrError(
        f"{source.path} is a community RoFormer checkpoint and needs its YAML config: "
        "pass --config X.yaml"
    )


def load_model(
    path: str | Path,
    config: str | Path | dict | ModelConfig | Config | None = None,
    device: str | torch.device = "cpu",
    weights: str = "ema",
) -> BSRoformer:
    """A ready-to-run separator (eval mode, on ``device``) from a bsr or community file.

    ``config`` is needed only for bare state dicts (community ones above all): a ZFTurbo
    or bsr YAML path, a preset name, a ModelConfig / Config, a parsed ZFTurbo mapping, or
    a dict of lucidrains' keyword arguments. A bsr checkpoint carries its own config and
    ignores this argument. A ZFTurbo config's windows become ``model.separation_defaults``;
    a bsr checkpoint's are its training segment, every half segment. ``weights="raw"``
    takes a training state's raw weights instead of their EMA.
    """
    source = Source.read(path, config, weights)
    found = find_format(source).read(source)
    model = BSRoformer(found.config)
    load_weights(model, found.state, str(source.path), name=found.names)
    model.separation_defaults = found.separation
    return model.to(device).eval()
