"""BS-RoFormer or Mel-Band RoFormer: which of the two community networks a file holds.

lucidrains' ``bs-roformer`` package and ZFTurbo's Music-Source-Separation-Training (MSST)
both ship two models, and both are bsr's model with community switches on:

=========================  ====================================================
``bs_roformer``            ``mask_norm="final", gates=True, bands=[freqs_per_bands...]``
(BSRoformer)               one shared RMSNorm after the last block
``mel_band_roformer``      ``mask_norm="none", output_norm=True, gates=True, bands="mel"``
(MelBandRoformer)          an RMSNorm closing every transformer, no final norm
=========================  ====================================================

A file does not say which it holds, but three things can: a YAML's ``model_type``, keys
only one of the two models has (``freqs_per_bands``: BS; ``num_bands``, ``sample_rate``:
Mel-Band), and the weights themselves (a final norm, or norms closing the transformers).
:func:`pick_model_type` asks them in that order and refuses when two disagree.
"""

from __future__ import annotations

import re

from bsr.config import ModelConfig
from bsr.errors import BsrError
from bsr.formats.source import strip_module_prefix

BS, MEL = "bs_roformer", "mel_band_roformer"
MODEL_TYPES = (BS, MEL)
KIND_ONLY = {"freqs_per_bands": BS, "num_bands": MEL, "sample_rate": MEL}  # settings keys
OUTPUT_NORM_KEY = re.compile(r"layers\.\d+\.\d+\.norm\.gamma")  # Transformer(norm_output=True)


def model_type_of(config: ModelConfig) -> str:
    """Which community model has ``config``'s layout: ``bs_roformer`` or ``mel_band_roformer``."""
    return MEL if config.bands == "mel" else BS


def weights_model_type(state_dict: dict) -> str | None:
    """``bs_roformer`` (a final norm), ``mel_band_roformer`` (norms closing the
    transformers, no final norm) or None when the keys do not tell."""
    keys = strip_module_prefix(state_dict).keys()
    if "final_norm.gamma" in keys:
        return BS
    if any(OUTPUT_NORM_KEY.fullmatch(k) for k in keys):
        return MEL
    return None


def _explicit_model_type(data: dict) -> str | None:
    """``model_type`` named by the YAML (top level or training section), checked."""
    training = data.get("training") if isinstance(data.get("training"), dict) else {}
    named = data.get("model_type", training.get("model_type"))
    if named is None:
        return None
    if named not in MODEL_TYPES:
        raise BsrError(
            f"config is for model_type {named!r}: bsr loads only {' and '.join(MODEL_TYPES)}"
        )
    return named


def _implied_model_type(model: dict) -> str | None:
    """The model type that the settings' own keys imply, if any (and only one)."""
    implied = {KIND_ONLY[k] for k in model if k in KIND_ONLY}
    if len(implied) > 1:
        raise BsrError(
            "config has model.freqs_per_bands (BS-RoFormer) and model.num_bands or "
            "model.sample_rate (Mel-Band RoFormer): keep the keys of the model you trained"
        )
    return implied.pop() if implied else None


def pick_model_type(data: dict, model: dict, from_weights: str | None) -> str:
    """BS or Mel-Band: the YAML's model_type, else its keys, else the weights, else BS.

    ``data`` is the whole YAML, ``model`` its network settings, ``from_weights`` what
    :func:`weights_model_type` read off the checkpoint (or None).
    """
    named = _explicit_model_type(data)
    by_keys = _implied_model_type(model)
    if named and by_keys and named != by_keys:
        other = next(k for k, kind in KIND_ONLY.items() if kind == by_keys and k in model)
        raise BsrError(
            f"model.{other} belongs to a {by_keys} but the config's model_type is {named}: "
            "remove the key or fix model_type"
        )
    chosen = named or by_keys
    if chosen and from_weights and chosen != from_weights:
        raise BsrError(
            f"the checkpoint holds a {describe(from_weights)} but the config describes a "
            f"{describe(chosen)}: give the YAML the checkpoint was trained with"
        )
    return chosen or from_weights or BS


def describe(model_type: str) -> str:
    """The model type in words, by the norm that tells it apart."""
    return {
        BS: "BS-RoFormer (a final norm before the mask estimators)",
        MEL: "Mel-Band RoFormer (a norm closing each transformer, no final norm)",
    }[model_type]


def require_community_layout(config: ModelConfig, what: str = "export") -> None:
    """Raise BsrError unless the community network (BS or Mel-Band) can express ``config``."""
    mel = model_type_of(config) == MEL
    name = "Mel-Band RoFormer" if mel else "BS-RoFormer"
    norm = "none" if mel else "final"
    problems = {
        "mask_norm": (config.mask_norm == norm, f"set model.mask_norm: {norm}"),
        "output_norm": (config.output_norm == mel, f"set model.output_norm: {str(mel).lower()}"),
        "gates": (config.gates, "set model.gates: true"),
        "ff_mult": (config.ff_mult == 4, "set model.ff_mult: 4"),
        "rope_theta": (config.rope_theta == 10000.0, "set model.rope_theta: 10000"),
        "rope": (config.rope, "set model.rope: true"),
    }
    for key, (ok, fix) in problems.items():
        if not ok:
            raise BsrError(
                f"cannot {what} model.{key}={getattr(config, key)!r} in the community "
                f"{name} layout: {fix} (and retrain)"
            )
