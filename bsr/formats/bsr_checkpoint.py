"""bsr's own checkpoint: a dict that carries its config, written by ``save_model``.

::

    {"format": "bsr", "version": "0.1.0",
     "config": {"model": {...}, "train": {...}},      # Config.to_dict(): plain types only
     "model": {name: tensor},                         # model.pt: these are the EMA weights
     "ema": {name: tensor}, "optimizer": ..., ...}    # last.pt, a training state, only

A training state (``last.pt``) holds the raw weights (``model``) and their moving average
(``ema``); the EMA is what validation scored and what separates best, so it is the
default (``weights="raw"`` takes the others). The config is stored as plain dicts and
lists, so that ``torch.load(weights_only=True)`` can read it.
"""

from __future__ import annotations

from bsr.config import ModelConfig, config_from_dict
from bsr.errors import BsrError
from bsr.formats.source import Found, Source, is_state_dict

NAME = "bsr checkpoint"


def recognises(source: Source) -> bool:
    """A dict that names its format (only bsr's writer does; other formats are refused)."""
    return isinstance(source.payload, dict) and isinstance(source.payload.get("format"), str)


def read(source: Source) -> Found:
    payload, path = source.payload, source.path
    fmt = payload["format"]
    if fmt != "bsr":
        raise BsrError(f"{path} has unknown format {fmt!r}: give a bsr or community checkpoint")
    if source.weights not in ("ema", "raw"):
        raise BsrError(f"weights={source.weights!r}: use 'ema' (the default) or 'raw'")
    config = _stored_config(payload, path)
    key = "ema" if source.weights == "ema" and is_state_dict(payload.get("ema")) else "model"
    state = payload.get(key)
    if not is_state_dict(state):
        raise BsrError(f"{path} is a bsr checkpoint without 'model' weights: re-save it")
    return Found(config, state, _training_windows(payload, config))


def _stored_config(payload: dict, path) -> ModelConfig:
    """The model config a bsr checkpoint carries (only its ``model`` section matters here)."""
    stored = payload.get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        raise BsrError(f"{path} is a bsr checkpoint without its config: re-save it with bsr")
    try:
        return config_from_dict({"model": dict(stored["model"])}).model
    except BsrError as error:
        raise BsrError(f"{path} stores an invalid config ({error}): re-save it with bsr") from None


def _training_windows(payload: dict, config: ModelConfig) -> dict[str, int] | None:
    """Separate in windows as long as the training segments, every half segment.

    Attention has learned that context length: the course model, trained on 2 s, loses
    ~0.7 dB at 8 s windows. None (bsr.separate's 8 s / 4 s) when no segment is stored.
    """
    segment = (payload.get("config", {}).get("train") or {}).get("segment_seconds")
    if isinstance(segment, int | float) and segment > 0:
        window = round(segment * config.sample_rate)
        return {"window": window, "hop": max(1, window // 2)}
    return None
