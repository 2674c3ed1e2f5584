"""The ``config`` argument of ``load_model``: any of the ways to describe a network.

=================================  ==================================================
a ModelConfig or a Config          bsr's own, used as it is
a ZFTurbo YAML path, or its dict   :func:`bsr.formats.zfturbo.load_zfturbo`
any other dict                     lucidrains' keyword arguments
a bsr YAML path or a preset name   :func:`bsr.config.load_config`
=================================  ==================================================

A bare bsr state dict takes any of them; a community state dict picks its reader by the
kind of config (see :data:`bsr.formats.FORMATS`).
"""

from __future__ import annotations

from pathlib import Path

from bsr.config import Config, ModelConfig, load_config
from bsr.errors import BsrError
from bsr.formats.kinds import model_type_of
from bsr.formats.lucidrains import config_from_lucidrains
from bsr.formats.source import config_yaml
from bsr.formats.zfturbo import describes, load_zfturbo


def resolve_config(
    spec: str | Path | dict | ModelConfig | Config, model_type: str | None = None
) -> ModelConfig:
    """A ModelConfig from a ModelConfig, a Config, a ZFTurbo or bsr YAML, a preset name, a
    parsed ZFTurbo mapping or a dict of lucidrains' keyword arguments.

    ``model_type`` (``bs_roformer`` / ``mel_band_roformer``, e.g. read off a checkpoint's
    keys) decides BS vs Mel-Band where the config itself does not.
    """
    data = config_yaml(spec)
    if describes(spec, data):
        return load_zfturbo(spec if data is None else data, model_type).model
    if isinstance(spec, dict):
        return config_from_lucidrains(spec, model_type)
    return bsr_model_config(spec, model_type)


def bsr_model_config(spec, model_type: str | None = None) -> ModelConfig:
    """bsr's own description: a ModelConfig, a Config, a bsr YAML or a preset name.

    A config whose model type (:func:`~bsr.formats.kinds.model_type_of`) is not the
    weights' ``model_type`` is refused: the file holds the other network.
    """
    if isinstance(spec, (ModelConfig, Config)):
        config = (spec if isinstance(spec, ModelConfig) else spec.model).validate()
        if model_type and model_type_of(config) != model_type:
            raise BsrError(
                f"the checkpoint holds a {model_type} but the config describes a "
                f"{model_type_of(config)} (model.bands): pass the config it was trained with"
            )
        return config
    return load_config(spec).model  # bsr YAML or preset, with its own error messages
