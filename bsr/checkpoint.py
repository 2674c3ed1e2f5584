"""Model files: load a trained separator, save one, export it for the community tools.

Two kinds of file load with :func:`load_model`:

* a **bsr checkpoint**, written by :func:`save_model` (or by training): a dict
  ``{"format": "bsr", "version": ..., "config": Config.to_dict(), "model": state_dict}``.
  It carries its own config. Training's ``last.pt`` holds more (``ema``, ``optimizer``,
  ...); loading takes its EMA weights, as validation scored them (``weights="raw"`` for
  the others); in ``model.pt`` the ``model`` weights *are* the EMA.
* a **community state dict** (lucidrains ``bs-roformer`` 0.3.x-0.4.1, ZFTurbo's
  Music-Source-Separation-Training; BS-RoFormer or Mel-Band RoFormer), plain or under
  ``"state_dict"``, ``"state"``, ``"model"`` or ``"model_state_dict"``. Its architecture
  is not stored in the file, so it needs the ZFTurbo YAML it was trained with (or
  lucidrains' keyword arguments as a dict). The YAML's windows (``audio.chunk_size``,
  ``inference.num_overlap``) become the model's ``separation_defaults``.

Everything goes through ``torch.load(..., weights_only=True)``: a model file is data, and
must never run code. That is why bsr checkpoints store the config as plain dicts and lists.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from bsr._version import __version__
from bsr.community import (
    block_positions,
    community_key,
    config_from_lucidrains,
    from_community_state_dict,
    is_zfturbo_config,
    load_zfturbo,
    model_type_of,
    read_yaml,
    strip_module_prefix,
    to_community_state_dict,
    weights_model_type,
    zfturbo_config,
)
from bsr.config import Config, ModelConfig, config_from_dict, load_config
from bsr.errors import BsrError
from bsr.model import BSRoformer

MAX_LISTED = 8  # keys shown per category in a mismatch report

# ---------------------------------------------------------------------------- reading


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


def _is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of names to tensors."""
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


WEIGHT_KEYS = ("state_dict", "state", "model", "model_state_dict")  # where trainers put them


def _community_weights(payload: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a community file: the payload itself, or under one of WEIGHT_KEYS."""
    if isinstance(payload, dict):
        for candidate in (payload, *(payload.get(key) for key in WEIGHT_KEYS)):
            if _is_state_dict(candidate):
                return candidate
    raise BsrError(
        f"{path} holds no state dict (a mapping of parameter names to tensors): give a "
        "bsr checkpoint or a BS-RoFormer state dict"
    )


def resolve_config(
    spec: str | Path | dict | ModelConfig | Config, model_type: str | None = None
) -> ModelConfig:
    """A ModelConfig from a ModelConfig, a Config, a ZFTurbo or bsr YAML, a preset name, a
    parsed ZFTurbo mapping or a dict of lucidrains' keyword arguments.

    ``model_type`` (``bs_roformer`` / ``mel_band_roformer``, e.g. read off a checkpoint's
    keys) decides BS vs Mel-Band where the config itself does not.
    """
    return _resolve(spec, model_type)[0]


def _resolve(spec, model_type: str | None) -> tuple[ModelConfig, dict[str, int] | None]:
    """:func:`resolve_config`, and the separation windows a ZFTurbo YAML names (or None)."""
    if isinstance(spec, (ModelConfig, Config)):
        config = (spec if isinstance(spec, ModelConfig) else spec.model).validate()
        if model_type and model_type_of(config) != model_type:
            raise BsrError(
                f"the checkpoint holds a {model_type} but the config describes a "
                f"{model_type_of(config)} (model.bands): pass the config it was trained with"
            )
        return config, None
    if isinstance(spec, dict):
        if isinstance(spec.get("model"), dict):  # a parsed ZFTurbo YAML
            found = load_zfturbo(spec, model_type)
            return found.model, found.separation
        return config_from_lucidrains(spec, model_type), None
    if Path(spec).is_file():
        data = read_yaml(spec)
        if is_zfturbo_config(data):
            found = load_zfturbo(data, model_type)
            return found.model, found.separation
    return load_config(spec).model, None  # bsr YAML or preset, with its own error messages


def config_notes(spec) -> list[str]:
    """The speed-only keys a ZFTurbo YAML sets, which bsr ignores (one note each)."""
    if isinstance(spec, (str, Path)) and Path(spec).is_file():
        data = read_yaml(spec)
        if is_zfturbo_config(data):
            return load_zfturbo(data).notes
    if isinstance(spec, dict) and isinstance(spec.get("model"), dict):
        return load_zfturbo(spec).notes
    return []


def _stored_config(payload: dict, path: Path) -> ModelConfig:
    """The model config a bsr checkpoint carries (only its ``model`` section matters here)."""
    stored = payload.get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        raise BsrError(f"{path} is a bsr checkpoint without its config: re-save it with bsr")
    try:
        return config_from_dict({"model": dict(stored["model"])}).model
    except BsrError as error:
        raise BsrError(f"{path} stores an invalid config ({error}): re-save it with bsr") from None


# ---------------------------------------------------------------------------- fitting


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(n) for n in tensor.shape) + ")"


def _listed(label: str, lines: list[str]) -> list[str]:
    """At most MAX_LISTED lines of one category, then a count of the rest."""
    shown = [f"  {label}: {line}" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"  ... and {len(lines) - MAX_LISTED} more {label}")
    return shown


def load_weights(model: torch.nn.Module, state: dict, source: str, name=lambda key: key) -> None:
    """``model.load_state_dict(state)``, or a BsrError listing every key that does not fit.

    ``name`` maps a bsr key to the name the user's file uses, for the report.
    """
    expected = model.state_dict()
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if wrong or missing or unexpected:
        lines = [
            f"{source} does not fit the model config ({len(wrong)} wrong shape, "
            f"{len(missing)} missing, {len(unexpected)} unexpected): pass the config the "
            "checkpoint was trained with"
        ]
        lines += _listed(
            "wrong shape",
            [
                f"{name(k)}: checkpoint {_shape(state[k])} vs model {_shape(expected[k])}"
                for k in wrong
            ],
        )
        lines += _listed("missing", [f"{name(k)} {_shape(expected[k])}" for k in missing])
        lines += _listed("unexpected", [f"{name(k)} {_shape(state[k])}" for k in unexpected])
        raise BsrError("\n".join(lines))
    model.load_state_dict(state)


def _from_bsr_checkpoint(payload: dict, path: Path, weights: str = "ema") -> BSRoformer:
    """A model built from the config a bsr checkpoint stores, with its weights.

    A training state (``last.pt``) holds the raw weights (``model``) and their moving
    average (``ema``); the EMA is what validation scored and what separates best, so it
    is the default. ``model.pt`` stores the EMA as its ``model`` already.
    """
    if weights not in ("ema", "raw"):
        raise BsrError(f"weights={weights!r}: use 'ema' (the default) or 'raw'")
    model = BSRoformer(_stored_config(payload, path))
    key = "ema" if weights == "ema" and _is_state_dict(payload.get("ema")) else "model"
    state = payload.get(key)
    if not _is_state_dict(state):
        raise BsrError(f"{path} is a bsr checkpoint without 'model' weights: re-save it")
    load_weights(model, state, str(path))
    # Separate in windows as long as the training segments: attention has learned that
    # context length (the course model, trained on 2 s, loses ~0.7 dB at 8 s windows).
    segment = (payload.get("config", {}).get("train") or {}).get("segment_seconds")
    if isinstance(segment, int | float) and segment > 0:
        window = round(segment * model.config.sample_rate)
        model.separation_defaults = {"window": window, "hop": max(1, window // 2)}
    return model


def _from_state_dict(payload: Any, path: Path, config) -> BSRoformer:
    """A model from a bare state dict: community names, or bsr's own, plus a config."""
    weights = strip_module_prefix(_community_weights(payload, path))
    # torch.save(model.state_dict()) of a bsr model has bsr's names: load it as is.
    own_names = any(k.startswith("band_split.bands.") for k in weights)
    if config is None:
        kind = "bare bsr state dict" if own_names else "community RoFormer checkpoint"
        raise BsrError(f"{path} is a {kind} and needs its YAML config: pass --config X.yaml")
    if own_names:
        model = BSRoformer(resolve_config(config))
        load_weights(model, weights, str(path))
        return model
    model_config, separation = _resolve(config, weights_model_type(weights))
    model = BSRoformer(model_config)
    state = from_community_state_dict(weights, model.config)
    # Report keys by the names the file uses: its own block layout, else the model's.
    ours = block_positions((), model_config.linear_transformer_depth > 0)
    theirs = block_positions(weights)
    load_weights(
        model,
        state,
        str(path),
        name=lambda k: community_key(k, theirs) or community_key(k, ours) or k,
    )
    model.separation_defaults = separation
    return model


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
    path = Path(path)
    payload = read_torch_file(path)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == "bsr":
        model = _from_bsr_checkpoint(payload, path, weights)
    elif isinstance(fmt, str):
        raise BsrError(f"{path} has unknown format {fmt!r}: give a bsr or community checkpoint")
    else:
        model = _from_state_dict(payload, path, config)
    return model.to(device).eval()


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
