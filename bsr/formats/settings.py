"""Community settings -> bsr's ModelConfig, and back: one translation for both codes.

A community network is described by the keyword arguments of its class (lucidrains'
``BSRoformer(**kwargs)``) or by the ``model:`` section of a ZFTurbo YAML, which holds the
same keywords. Both say the same things as bsr's :class:`~bsr.config.ModelConfig` under
other names (``stereo`` for ``channels``, ``freq_transformer_depth`` for
``band_transformer_depth``, ...), so this module translates them once, for both readers,
with each code's defaults for the keys a file leaves out.

ZFTurbo's current code adds a few options to lucidrains' 0.4.1, each a bsr setting:
``linear_transformer_depth`` (a linear-attention transformer first in each block),
``skip_connection``, ``mlp_expansion_factor``, ``stft_normalized``, ``stft_window_fn``,
and ``zero_dc``. Since September 2025 ZFTurbo's BSRoformer and MelBandRoformer take
``zero_dc=True`` by default: the DC bin (0 Hz) of every separated spectrum is set to zero
right before the iSTFT. No published YAML names the key, so every checkpoint run through
MSST today gets it. bsr follows the code each file comes from:

* a ZFTurbo YAML turns ``zero_dc`` on unless it says ``zero_dc: false``;
* lucidrains' keyword arguments leave it off, as bs-roformer 0.4.1 does;
* bsr's own presets leave it off (the paper does not do it).

Two counting conventions differ between the models, and bsr translates both: the
Mel-Band code's ``mask_estimator_depth`` counts *hidden* layers (1 means Linear, Tanh,
Linear), the BS code's and bsr's count Linear layers (2 means the same MLP).

Every key is accounted for: it changes the network (translated), only its speed
(:data:`SPEED_ONLY`, ignored with a note), only training (:data:`NO_EFFECT`), or changes
it in a way bsr does not build (:data:`UNSUPPORTED`, refused); any other key is refused.
"""

from __future__ import annotations

from typing import Any

import torch

from bsr.bands import make_layout, paper_band_sizes
from bsr.config import STFT_WINDOWS, ModelConfig
from bsr.errors import BsrError
from bsr.formats.kinds import BS, KIND_ONLY, MEL, model_type_of

# ---------------------------------------------------------------------------- the keys

# The keyword arguments of ZFTurbo's current BSRoformer / MelBandRoformer that describe the
# network, with the code's defaults (for keys a YAML leaves out).
COMMON_DEFAULTS: dict[str, Any] = {
    "stereo": False,
    "num_stems": 1,
    "time_transformer_depth": 2,
    "freq_transformer_depth": 2,
    "linear_transformer_depth": 0,
    "dim_head": 64,
    "heads": 8,
    "stft_n_fft": 2048,
    "stft_hop_length": 512,
    "stft_win_length": 2048,
    "stft_normalized": False,
    "stft_window_fn": None,
    "mlp_expansion_factor": 4,
    "skip_connection": False,
    "zero_dc": True,
}
ZFTURBO_DEFAULTS: dict[str, dict[str, Any]] = {
    BS: {
        **COMMON_DEFAULTS,
        "freqs_per_bands": None,  # the paper's 62 bands at n_fft 2048
        "attn_dropout": 0.0,
        "ff_dropout": 0.0,
        "mask_estimator_depth": 2,
    },
    MEL: {
        **COMMON_DEFAULTS,
        "num_bands": 60,
        "sample_rate": None,  # the audio section's rate, else 44100
        "attn_dropout": 0.1,
        "ff_dropout": 0.1,
        "mask_estimator_depth": 1,
    },
}
# lucidrains' bs-roformer 0.4.1 differs: no zero_dc (so none), and its MelBandRoformer has
# one linear-attention layer per block unless told otherwise.
LUCIDRAINS_DEFAULTS: dict[str, dict[str, Any]] = {
    BS: {**ZFTURBO_DEFAULTS[BS], "zero_dc": False},
    MEL: {**ZFTURBO_DEFAULTS[MEL], "zero_dc": False, "linear_transformer_depth": 1},
}
# Keys that choose how the same function is computed (kernels, memory), not what it is.
SPEED_ONLY = {
    "flash_attn": "picks the attention kernel; bsr's attention uses torch's "
    "scaled_dot_product_attention, which picks the fastest one itself",
    "linear_flash_attn": "picks the linear-attention kernel; bsr uses torch's "
    "scaled_dot_product_attention",
    "use_torch_checkpoint": "recomputes activations in training to save memory; in bsr that "
    "is bsr train --checkpointing",
    "sage_attention": "runs attention with the SageAttention kernel; bsr computes the same "
    "attention with torch's kernels",
}
# Keys that only shape training, or the output's length, never the masks.
NO_EFFECT = {
    "dim_freqs_in",  # unused by both models: they count bins from stft_n_fft
    "match_input_audio_length",  # bsr always returns the input's length
    "multi_stft_resolution_loss_weight",
    "multi_stft_resolutions_window_sizes",
    "multi_stft_hop_size",
    "multi_stft_normalized",
    "multi_stft_window_fn",
}
# Keys of later or forked RoFormer code that change the network in ways bsr does not build.
UNSUPPORTED = {
    "num_residual_streams": (
        1,
        "hyper-connections: several residual streams, mixed by learned weights "
        "(bs-roformer 0.5 and later)",
    ),
    "add_value_residual": (
        False,
        "value residual learning: every attention layer mixes in the first layer's "
        "values (bs-roformer 0.5 and later)",
    ),
}
REQUIRED = ("dim", "depth")
# bsr's name -> ZFTurbo's, where they differ (for error messages).
ZFTURBO_NAMES = {
    "channels": "stereo",
    "stems": "num_stems",
    "n_fft": "stft_n_fft",
    "hop_length": "stft_hop_length",
    "win_length": "stft_win_length",
    "bands": "freqs_per_bands",
    "num_mel_bands": "num_bands",
    "band_transformer_depth": "freq_transformer_depth",
    "stft_window": "stft_window_fn",
}


# ---------------------------------------------------------------------------- values


def _stems(training: dict, num_stems: int) -> list[str]:
    """Stem names: ``target_instrument`` (one stem), else ``instruments``, else stem0..."""
    target = training.get("target_instrument")
    if target is not None and num_stems == 1:
        return [str(target)]
    names = [str(n) for n in training.get("instruments") or []]
    if len(names) == num_stems:
        return names
    if names:
        raise BsrError(
            f"model.num_stems={num_stems} but training.instruments lists {len(names)} "
            "names: make them agree (or set training.target_instrument for one stem)"
        )
    return [f"stem{i}" for i in range(num_stems)]


def _value(model: dict, key: str, kind: type):
    """``model[key]`` as ``kind`` (int, float or bool), or a BsrError naming the key."""
    value = model[key]
    if kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (kind is float or float(value).is_integer())
    if not ok:
        raise BsrError(f"ZFTurbo config model.{key}={value!r} should be {kind.__name__}: fix it")
    return kind(value)


def _band_sizes(bands) -> list[int]:
    """``freqs_per_bands`` as a list of ints (default: the paper's 62 bands at n_fft 2048)."""
    if bands is None:  # the community default is fixed, it does not follow stft_n_fft
        return list(paper_band_sizes(44100, 2048))
    if not isinstance(bands, (list, tuple)) or not all(
        isinstance(b, int) and not isinstance(b, bool) for b in bands
    ):
        raise BsrError(f"ZFTurbo config model.freqs_per_bands={bands!r} should list band widths")
    return list(bands)


def _stft_window(value) -> str:
    """``stft_window_fn`` (null, a torch window function or its name) -> bsr's stft_window."""
    if value is None:
        return "hann"  # both models default to torch.hann_window
    if callable(value) and getattr(torch, getattr(value, "__name__", ""), None) is value:
        value = value.__name__  # lucidrains' keyword argument is the function itself
    name = str(value).removeprefix("torch.").removesuffix("_window")
    if not isinstance(value, str) or name not in STFT_WINDOWS:
        known = ", ".join(f"torch.{w}_window" for w in STFT_WINDOWS)
        raise BsrError(
            f"ZFTurbo config model.stft_window_fn={value!r} is not a window bsr knows: "
            f"use null (Hann) or one of {known}"
        )
    return name


# ---------------------------------------------------------------------------- translation


def check_keys(model: dict, model_type: str, source: str) -> list[str]:
    """Refuse keys bsr cannot honour; return notes on the speed-only keys that are set."""
    known = {*ZFTURBO_DEFAULTS[model_type], *REQUIRED, *SPEED_ONLY, *NO_EFFECT, *UNSUPPORTED}
    notes = []
    for key, value in model.items():
        if key in KIND_ONLY and KIND_ONLY[key] != model_type:
            raise BsrError(
                f"model.{key} belongs to a {KIND_ONLY[key]}, not a {model_type}: remove it, "
                f"or give the config of the model you trained"
            )
        if key in UNSUPPORTED:
            plain, what = UNSUPPORTED[key]
            if value != plain:
                raise BsrError(
                    f"model.{key}={value!r} is {what}, which bsr does not build: only "
                    f"{key}={plain!r} can be loaded"
                )
        elif key in SPEED_ONLY:
            if value:
                notes.append(f"model.{key} ignored: it {SPEED_ONLY[key]}")
        elif key not in known:
            raise BsrError(
                f"unknown {source} key model.{key} for {model_type}: bsr does not know "
                "whether it changes the network; check the model code it was trained with, "
                "and remove the key only if that code uses it for training alone"
            )
    return notes


def model_config(m: dict, model_type: str, data: dict) -> ModelConfig:
    """The bsr ModelConfig of a community model's settings ``m`` (defaults filled in)."""
    audio = data.get("audio") or {}
    training = data.get("training") or {}
    mel = model_type == MEL
    sample_rate = audio.get("sample_rate")
    if mel and m["sample_rate"] is not None:
        if sample_rate is not None and sample_rate != m["sample_rate"]:
            raise BsrError(
                f"model.sample_rate={m['sample_rate']} (the mel filterbank's) differs from "
                f"audio.sample_rate={sample_rate}: make them agree"
            )
        sample_rate = _value(m, "sample_rate", int)
    mask_depth = _value(m, "mask_estimator_depth", int)
    config = ModelConfig(
        sample_rate=int(sample_rate or 44100),
        channels=2 if _value(m, "stereo", bool) else 1,
        stems=_stems(training, _value(m, "num_stems", int)),
        n_fft=_value(m, "stft_n_fft", int),
        hop_length=_value(m, "stft_hop_length", int),
        win_length=_value(m, "stft_win_length", int),
        bands="mel" if mel else _band_sizes(m["freqs_per_bands"]),
        num_mel_bands=_value(m, "num_bands", int) if mel else 60,
        dim=_value(m, "dim", int),
        depth=_value(m, "depth", int),
        time_transformer_depth=_value(m, "time_transformer_depth", int),
        band_transformer_depth=_value(m, "freq_transformer_depth", int),
        linear_transformer_depth=_value(m, "linear_transformer_depth", int),
        heads=_value(m, "heads", int),
        dim_head=_value(m, "dim_head", int),
        attn_dropout=_value(m, "attn_dropout", float),
        ff_dropout=_value(m, "ff_dropout", float),
        # The Mel-Band code counts hidden layers, bsr counts Linear layers: one more.
        mask_estimator_depth=mask_depth + 1 if mel else mask_depth,
        mlp_expansion_factor=_value(m, "mlp_expansion_factor", int),
        mask_norm="none" if mel else "final",
        output_norm=mel,
        gates=True,
        skip_connection=_value(m, "skip_connection", bool),
        zero_dc=_value(m, "zero_dc", bool),
        stft_normalized=_value(m, "stft_normalized", bool),
        stft_window=_stft_window(m["stft_window_fn"]),
    )
    try:
        return config.validate()
    except BsrError as error:  # speak of the YAML's keys, not bsr's
        key, _, rest = str(error).partition(":")
        key = key.removeprefix("model.")
        zf_key = "num_bands" if mel and key == "bands" else ZFTURBO_NAMES.get(key)
        raise BsrError(f"model.{zf_key}:{rest}" if zf_key else str(error)) from None


def network_settings(config: ModelConfig) -> dict[str, Any]:
    """The network's sizes under the community's names, for lucidrains' keyword arguments
    and ZFTurbo's YAML alike (the writers in :mod:`~bsr.formats.lucidrains` and
    :mod:`~bsr.formats.zfturbo`)."""
    mel = model_type_of(config) == MEL
    settings: dict[str, Any] = {
        "dim": config.dim,
        "depth": config.depth,
        "stereo": config.channels == 2,
        "num_stems": len(config.stems),
        "time_transformer_depth": config.time_transformer_depth,
        "freq_transformer_depth": config.band_transformer_depth,
    }
    if mel:
        settings.update(num_bands=config.num_mel_bands, sample_rate=config.sample_rate)
    else:
        layout = make_layout(config.bands, config.sample_rate, config.n_fft)
        settings["freqs_per_bands"] = tuple(layout.sizes)
    settings.update(
        {
            "dim_head": config.head_dim,
            "heads": config.heads,
            "attn_dropout": config.attn_dropout,
            "ff_dropout": config.ff_dropout,
            "dim_freqs_in": config.n_fft // 2 + 1,
            "stft_n_fft": config.n_fft,
            "stft_hop_length": config.hop_length,
            "stft_win_length": config.win_length or config.n_fft,
            "stft_normalized": config.stft_normalized,
            # the Mel-Band code counts hidden layers, bsr Linear layers
            "mask_estimator_depth": config.mask_estimator_depth - (1 if mel else 0),
        }
    )
    return settings
