"""A bare state dict in bsr's own names: ``torch.save(model.state_dict(), path)``.

The weights of a bsr model without its config (bsr's parameter names, such as
``band_split.bands.0.linear.weight``, tell it apart from a community file). Nothing in the
file describes the network, so the caller names the config it was trained with: any
config argument :func:`~bsr.formats.configs.resolve_config` reads (a bsr or ZFTurbo YAML,
a preset, a ModelConfig, lucidrains' keyword arguments). The weights load as they are.
"""

from __future__ import annotations

from bsr.errors import BsrError
from bsr.formats.configs import resolve_config
from bsr.formats.source import Found, Source

NAME = "bsr state dict + config"


def recognises(source: Source) -> bool:
    return any(key.startswith("band_split.bands.") for key in source.state_dict)


def read(source: Source) -> Found:
    if source.config is None:
        raise BsrError(
            f"{source.path} is a bare bsr state dict and needs its YAML config: "
            "pass --config X.yaml"
        )
    return Found(resolve_config(source.config), source.state_dict)
