"""lucidrains' ``bs-roformer`` (0.3.x-0.4.1): a state dict and the keyword arguments.

A checkpoint trained with lucidrains' package is ``torch.save(model.state_dict())``: the
weights, nothing about the network. The network is the keyword arguments the model was
built with (``BSRoformer(dim=384, depth=12, ...)``), so the caller passes them as a dict::

    bsr.load_model("vocals.ckpt", config={"dim": 384, "depth": 12, "stereo": True, ...})

Reading translates those arguments (:func:`config_from_lucidrains`, with 0.4.1's
defaults: no ``zero_dc``, and one linear-attention layer per block in the Mel-Band model)
and renames the weights (:func:`bsr.formats.keys.renamed`). Writing goes the other way:
:func:`community_kwargs` builds the same network in 0.4.1, which the tests compare with.
"""

from __future__ import annotations

from typing import Any

import torch

from bsr.config import ModelConfig
from bsr.errors import BsrError
from bsr.formats.keys import renamed
from bsr.formats.kinds import (
    MEL,
    model_type_of,
    pick_model_type,
    require_community_layout,
    weights_model_type,
)
from bsr.formats.settings import (
    LUCIDRAINS_DEFAULTS,
    REQUIRED,
    check_keys,
    model_config,
    network_settings,
)
from bsr.formats.source import Found, Source

NAME = "lucidrains state dict + keyword arguments"


def recognises(source: Source) -> bool:
    """Community weights with a plain mapping of keyword arguments (not a ZFTurbo YAML)."""
    spec = source.config
    return isinstance(spec, dict) and not isinstance(spec.get("model"), dict)


def read(source: Source) -> Found:
    config = config_from_lucidrains(source.config, weights_model_type(source.state_dict))
    return renamed(source.state_dict, config)


def config_from_lucidrains(
    kwargs: dict[str, Any], model_type: str | None = None, stems: list[str] | None = None
) -> ModelConfig:
    """lucidrains' keyword arguments (``BSRoformer(**kwargs)``) -> a bsr ModelConfig.

    ``model_type`` is ``bs_roformer`` or ``mel_band_roformer`` (default: from the keys,
    else BS). bs-roformer 0.4.1's defaults fill the rest: no ``zero_dc``, and one
    linear-attention layer per block in the Mel-Band model unless told otherwise.
    """
    if not isinstance(kwargs, dict):
        raise BsrError("lucidrains settings must be a mapping of keyword arguments")
    data = {"model": dict(kwargs)}
    if "model_type" in data["model"]:
        data["model_type"] = data["model"].pop("model_type")
    for key in REQUIRED:
        if key not in data["model"]:
            raise BsrError(f"lucidrains settings have no {key}: add it (the checkpoint's value)")
    chosen = pick_model_type(data, data["model"], model_type)
    check_keys(data["model"], chosen, "lucidrains")
    m = {**LUCIDRAINS_DEFAULTS[chosen], **data["model"]}
    training = {"instruments": stems} if stems else {}
    return model_config(m, chosen, {"training": training})


def community_kwargs(config: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for bs-roformer 0.4.1's ``BSRoformer`` or ``MelBandRoformer``
    (see :func:`~bsr.formats.kinds.model_type_of`) with the same network."""
    require_community_layout(config, "build")
    mel = model_type_of(config) == MEL
    limits = {
        "mlp_expansion_factor": (config.mlp_expansion_factor == 4, "4"),
        "skip_connection": (not config.skip_connection, "false"),
        "zero_dc": (not config.zero_dc, "false"),
        "linear_transformer_depth": (mel or config.linear_transformer_depth == 0, "0"),
    }
    for key, (ok, fix) in limits.items():
        if not ok:
            raise BsrError(
                f"bs-roformer 0.4.1 cannot build model.{key}={getattr(config, key)!r}: "
                f"set model.{key}: {fix}"
            )
    kwargs = network_settings(config)
    window_fn = (
        None if config.stft_window == "hann" else getattr(torch, f"{config.stft_window}_window")
    )
    kwargs["stft_window_fn"] = window_fn
    if mel:
        kwargs.update(
            linear_transformer_depth=config.linear_transformer_depth,
            match_input_audio_length=True,  # bsr always returns the input's length
        )
    return kwargs
