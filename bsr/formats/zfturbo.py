"""ZFTurbo's Music-Source-Separation-Training (MSST): a checkpoint and its YAML.

MSST saves ``torch.save(model.state_dict())`` (sometimes under ``state_dict``, from inside
DataParallel with a ``module.`` prefix) and describes the network in the YAML it trained
with::

    audio:     {chunk_size: 352800, sample_rate: 44100}     # the training window
    model:     {dim: 512, depth: 12, stereo: true, freqs_per_bands: [...], ...}
    training:  {instruments: [vocals, other], target_instrument: vocals}
    inference: {num_overlap: 2}

The ``model:`` section holds the same keyword arguments as lucidrains' classes, with MSST's
own defaults (:mod:`bsr.formats.settings`); BS or Mel-Band comes from the YAML or the
weights (:mod:`bsr.formats.kinds`). The YAML also says how MSST cuts a song: a window of
``chunk_size`` samples every ``chunk_size // num_overlap``, the length the model was
trained on, which becomes the model's ``separation_defaults``.

:func:`zfturbo_config` writes the YAML for a bsr model, for sharing an exported checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bsr.config import ModelConfig
from bsr.errors import BsrError
from bsr.formats.keys import renamed
from bsr.formats.kinds import pick_model_type, require_community_layout, weights_model_type
from bsr.formats.settings import (
    REQUIRED,
    ZFTURBO_DEFAULTS,
    check_keys,
    model_config,
    network_settings,
)
from bsr.formats.source import Found, Source, read_yaml

NAME = "ZFTurbo checkpoint + YAML"


def describes(spec: Any, data: dict | None) -> bool:
    """Is the config argument ``spec`` (parsed: ``data``, when it names a file) ZFTurbo's?"""
    if isinstance(spec, dict):
        return isinstance(spec.get("model"), dict)
    return data is not None and is_zfturbo_config(data)


def recognises(source: Source) -> bool:
    """Community weights with a ZFTurbo YAML: a file, or its parsed mapping."""
    return describes(source.config, source.yaml)


def read(source: Source) -> Found:
    data = source.config if source.yaml is None else source.yaml
    found = load_zfturbo(data, weights_model_type(source.state_dict))
    return renamed(source.state_dict, found.model, found.separation)


def config_notes(spec) -> list[str]:
    """The speed-only keys a ZFTurbo YAML sets, which bsr ignores (one note each)."""
    if isinstance(spec, (str, Path)) and Path(spec).is_file():
        data = read_yaml(spec)
        if is_zfturbo_config(data):
            return load_zfturbo(data).notes
    if isinstance(spec, dict) and isinstance(spec.get("model"), dict):
        return load_zfturbo(spec).notes
    return []


def is_zfturbo_config(data: dict) -> bool:
    """Does a parsed YAML look like ZFTurbo's (rather than bsr's own) config?"""
    model = data.get("model")
    if "audio" in data or "training" in data:
        return True
    zf_keys = {"stereo", "num_stems", "stft_n_fft", "freqs_per_bands", "num_bands"}
    zf_keys.add("freq_transformer_depth")
    return isinstance(model, dict) and bool(zf_keys & set(model))


@dataclasses.dataclass
class CommunityConfig:
    """What a ZFTurbo YAML says: the network, which code built it, how to separate with it.

    ``separation`` is ``{"window": samples, "hop": samples}`` from ``audio.chunk_size``
    (or ``inference.chunk_size``) and ``inference.num_overlap``, or None; ``notes`` are the
    speed-only keys bsr ignores.
    """

    model: ModelConfig
    model_type: str
    separation: dict[str, int] | None
    notes: list[str]


def separation_defaults(data: dict) -> dict[str, int] | None:
    """``{"window", "hop"}`` in samples, as ZFTurbo's inference cuts a song, or None.

    The window is ``inference.chunk_size`` if given, else ``audio.chunk_size``; windows
    start every ``window // inference.num_overlap`` samples (2 when the YAML is silent).
    """
    audio = data.get("audio") if isinstance(data.get("audio"), dict) else {}
    inference = data.get("inference") if isinstance(data.get("inference"), dict) else {}
    where = "inference" if "chunk_size" in inference else "audio"
    chunk = inference.get("chunk_size", audio.get("chunk_size"))
    if chunk is None:
        return None
    overlap = inference.get("num_overlap", 2)
    for key, value in ((f"{where}.chunk_size", chunk), ("inference.num_overlap", overlap)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BsrError(f"ZFTurbo config {key}={value!r} should be a positive integer")
    return {"window": chunk, "hop": max(1, chunk // overlap)}


def load_zfturbo(source: str | Path | dict, from_weights: str | None = None) -> CommunityConfig:
    """Read a ZFTurbo-style YAML (path or parsed dict): network, model type, separation.

    The model type is the YAML's ``model_type`` (top level or ``training``), else what its
    keys imply (``num_bands``: Mel-Band, ``freqs_per_bands``: BS), else ``from_weights``
    (what the checkpoint's keys say, see :func:`~bsr.formats.kinds.weights_model_type`),
    else BS-RoFormer.
    """
    data = read_yaml(source) if isinstance(source, (str, Path)) else source
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise BsrError("a ZFTurbo config needs a 'model:' section with dim, depth, ...")
    for key in REQUIRED:
        if key not in model:
            raise BsrError(f"ZFTurbo config has no model.{key}: add it (the checkpoint's value)")
    model_type = pick_model_type(data, model, from_weights)
    notes = check_keys(model, model_type, "ZFTurbo")
    m = {**ZFTURBO_DEFAULTS[model_type], **model}
    config = model_config(m, model_type, data)
    return CommunityConfig(config, model_type, separation_defaults(data), notes)


def config_from_zfturbo(source: str | Path | dict, model_type: str | None = None) -> ModelConfig:
    """A ZFTurbo-style YAML (path or parsed dict) -> the equivalent bsr :class:`ModelConfig`.

    Reads the ``model``, ``audio`` (sample_rate) and ``training`` (stem names) sections.
    ``model_type`` decides BS vs Mel-Band when the YAML does not (see :func:`load_zfturbo`).
    """
    return load_zfturbo(source, model_type).model


def zfturbo_config(config: ModelConfig) -> dict[str, Any]:
    """The ZFTurbo YAML sections (``audio``, ``model``, ``training``, ``inference``)
    describing ``config``; the inverse of :func:`config_from_zfturbo`, for sharing an
    exported checkpoint. ``zero_dc`` is written out, since ZFTurbo's default is on."""
    require_community_layout(config)
    if config.stft_window != "hann":
        raise BsrError(
            f"cannot write model.stft_window={config.stft_window!r} in a ZFTurbo YAML: it "
            "takes a Python function there; share the config another way, or use hann"
        )
    hop = config.hop_length
    one_stem = len(config.stems) == 1
    model = network_settings(config)
    if "freqs_per_bands" in model:
        model["freqs_per_bands"] = list(model["freqs_per_bands"])  # a YAML list, not a tuple
    model.update(
        linear_transformer_depth=config.linear_transformer_depth,
        flash_attn=True,
        mlp_expansion_factor=config.mlp_expansion_factor,
        skip_connection=config.skip_connection,
        zero_dc=config.zero_dc,
    )
    return {
        # chunk_size: ZFTurbo's inference window; 8 s (the paper's), a whole number of hops.
        "audio": {
            "sample_rate": config.sample_rate,
            "num_channels": config.channels,
            "chunk_size": hop * (8 * config.sample_rate // hop),
        },
        "model": model,
        "training": {
            "instruments": list(config.stems),
            "target_instrument": config.stems[0] if one_stem else None,
        },
        "inference": {"num_overlap": 2},  # windows every 4 s, as bsr separate does
    }
