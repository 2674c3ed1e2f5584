"""Talk to the community: ZFTurbo YAML configs and lucidrains / ZFTurbo state dicts.

Most RoFormer checkpoints that people share were trained with lucidrains' ``bs-roformer``
package (0.3.x-0.4.1) or its copy in ZFTurbo's Music-Source-Separation-Training (MSST).
Both ship two models, and both are bsr's model with community switches on:

=========================  ====================================================
``bs_roformer``            ``mask_norm="final", gates=True, bands=[freqs_per_bands...]``
(BSRoformer)               one shared RMSNorm after the last block
``mel_band_roformer``      ``mask_norm="none", output_norm=True, gates=True, bands="mel"``
(MelBandRoformer)          an RMSNorm closing every transformer, no final norm
=========================  ====================================================

plus ``hop_length: 512`` by default. ZFTurbo's current code adds a few options, each a
bsr setting: ``linear_transformer_depth`` (a linear-attention transformer first in each
block), ``skip_connection``, ``mlp_expansion_factor``, ``stft_normalized``,
``stft_window_fn``, and ``zero_dc``. Since September 2025 ZFTurbo's BSRoformer and
MelBandRoformer take ``zero_dc=True`` by default: the DC bin (0 Hz) of every separated
spectrum is set to zero right before the iSTFT. No published YAML names the key, so every
checkpoint run through MSST today gets it. bsr follows the code each file comes from:

* a ZFTurbo YAML turns ``zero_dc`` on unless it says ``zero_dc: false``;
* lucidrains' keyword arguments (:func:`config_from_lucidrains`) leave it off, as
  bs-roformer 0.4.1 does;
* bsr's own presets leave it off (the paper does not do it).

Two counting conventions differ between the models, and bsr translates both: the
Mel-Band code's ``mask_estimator_depth`` counts *hidden* layers (1 means Linear, Tanh,
Linear), the BS code's and bsr's count Linear layers (2 means the same MLP).

Only the parameter *names* differ from bsr's. The community modules are anonymous
``nn.Sequential`` and ``ModuleList`` entries, ours have names (community first, then bsr)::

    band_split.to_features.3.1.weight
    band_split.bands.3.linear.weight

    layers.0.1.layers.0.0.to_out.0.weight
    layers.0.band_transformer.layers.0.attention.to_out.weight

    mask_estimators.0.to_freqs.5.0.2.bias
    mask_estimators.0.bands.5.mlp.2.bias

so converting is a pure renaming, written once as a table (:data:`KEY_TABLE`) read in both
directions. One thing is positional: the transformers of block ``l`` are
``layers.{l}.{0, 1, 2}``, in the order linear (when there is one), time, band, except
that lucidrains' MelBandRoformer always keeps slot 0 for the linear transformer, empty
or not. :func:`block_positions` reads the layout off a state dict. The community files
also store each attention layer's rotary frequencies (``...rotary_embed.freqs``), which
bsr recomputes: we check that they are the standard ones instead of dropping them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from bsr.bands import make_layout, paper_band_sizes
from bsr.config import STFT_WINDOWS, ModelConfig
from bsr.errors import BsrError

BS, MEL = "bs_roformer", "mel_band_roformer"
MODEL_TYPES = (BS, MEL)

# ---------------------------------------------------------------------------- key table

# (community name, bsr name). {l} block, {k} layer, {b} band, {s} stem, {i} index in an
# nn.Sequential, {p} weight|bias, {q} gamma|weight|bias, {axis} linear, time or band.
# Community block keys are written here with the axis *named* (layers.0.time.layers...);
# :func:`block_positions` maps those names to the positions a file uses.
KEY_TABLE = (
    ("band_split.to_features.{b}.0.gamma", "band_split.bands.{b}.norm.gamma"),
    ("band_split.to_features.{b}.1.{p}", "band_split.bands.{b}.linear.{p}"),
    # Linear attention keeps its projections in nn.Sequential next to einops' Rearrange.
    (
        "layers.{l}.linear.layers.{k}.0.to_qkv.0.weight",
        "layers.{l}.linear_transformer.layers.{k}.attention.to_qkv.weight",
    ),
    (
        "layers.{l}.linear.layers.{k}.0.temperature",
        "layers.{l}.linear_transformer.layers.{k}.attention.temperature",
    ),
    (
        "layers.{l}.linear.layers.{k}.0.to_out.1.weight",
        "layers.{l}.linear_transformer.layers.{k}.attention.to_out.weight",
    ),
    (
        "layers.{l}.{axis}.layers.{k}.0.norm.gamma",
        "layers.{l}.{axis}_transformer.layers.{k}.attention.norm.gamma",
    ),
    (
        "layers.{l}.{axis}.layers.{k}.0.to_qkv.weight",
        "layers.{l}.{axis}_transformer.layers.{k}.attention.to_qkv.weight",
    ),
    (
        "layers.{l}.{axis}.layers.{k}.0.to_gates.{p}",
        "layers.{l}.{axis}_transformer.layers.{k}.attention.to_gates.{p}",
    ),
    (
        "layers.{l}.{axis}.layers.{k}.0.to_out.0.weight",
        "layers.{l}.{axis}_transformer.layers.{k}.attention.to_out.weight",
    ),
    (
        "layers.{l}.{axis}.layers.{k}.1.net.{i}.{q}",
        "layers.{l}.{axis}_transformer.layers.{k}.feed_forward.net.{i}.{q}",
    ),
    ("layers.{l}.{axis}.norm.gamma", "layers.{l}.{axis}_transformer.norm.gamma"),  # output_norm
    ("final_norm.gamma", "final_norm.gamma"),
    ("mask_estimators.{s}.to_freqs.{b}.0.{i}.{p}", "mask_estimators.{s}.bands.{b}.mlp.{i}.{p}"),
)

AXES = "linear|time|band"
BLOCK_KEY = re.compile(r"layers\.(\d+)\.(\d+)\.(.+)")  # a community block key, positional
NAMED_ROTARY_KEY = re.compile(r"layers\.\d+\.(time|band)\.layers\.\d+\.0\.rotary_embed\.freqs")
NAMED_ATTENTION_NORM = re.compile(r"layers\.\d+\.(time|band)\.layers\.\d+\.0\.norm\.gamma")
LINEAR_ATTENTION_KEY = re.compile(r"layers\.\d+\.(\d+)\.layers\.\d+\.0\.temperature")
OUTPUT_NORM_KEY = re.compile(r"layers\.\d+\.\d+\.norm\.gamma")  # Transformer(norm_output=True)


def _compile(template: str) -> re.Pattern:
    """Turn a KEY_TABLE template into a regex with one named group per placeholder."""
    groups = {"p": "weight|bias", "q": "gamma|weight|bias", "axis": AXES}
    pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    pattern = re.sub(r"{(\w+)}", lambda m: f"(?P<{m[1]}>{groups.get(m[1], r'[0-9]+')})", pattern)
    return re.compile(pattern)


FROM_COMMUNITY = [(_compile(c), b) for c, b in KEY_TABLE]
TO_COMMUNITY = [(_compile(b), c) for c, b in KEY_TABLE]


def _rename(key: str, rules) -> str | None:
    """The key's name on the other side, or None when no rule matches."""
    for pattern, template in rules:
        match = pattern.fullmatch(key)
        if match:
            return template.format(**match.groupdict())
    return None


def block_positions(keys, linear: bool | None = None, empty_linear_slot: bool = False):
    """``{position: axis}`` of the transformers in each block, e.g. ``{"0": "time", "1": "band"}``.

    From a community state dict's ``keys``: a linear-attention transformer (its
    ``temperature`` keys) makes the layout linear, time, band; blocks that use slots 1 and 2
    but not 0 are lucidrains' MelBandRoformer without one. For a model of our own pass
    ``keys=()`` and say whether it has a ``linear`` transformer, and whether to keep an
    ``empty_linear_slot`` (lucidrains' MelBandRoformer does).
    """
    keys = list(keys)
    if linear is None:
        linear = any(LINEAR_ATTENTION_KEY.fullmatch(k) for k in keys)
        used = {m[2] for k in keys if (m := BLOCK_KEY.fullmatch(k))}
        empty_linear_slot = not linear and "2" in used and "0" not in used
    if linear or empty_linear_slot:
        return {"1": "time", "2": "band"} | ({"0": "linear"} if linear else {})
    return {"0": "time", "1": "band"}


def _named(key: str, positions: dict[str, str]) -> str:
    """``layers.3.1.x`` -> ``layers.3.time.x`` (keys outside the blocks stay as they are)."""
    match = BLOCK_KEY.fullmatch(key)
    if match and match[2] in positions:
        return f"layers.{match[1]}.{positions[match[2]]}.{match[3]}"
    return key


def _positional(key: str, positions: dict[str, str]) -> str | None:
    """The inverse of :func:`_named`; None when the layout has no slot for the axis."""
    match = re.fullmatch(rf"layers\.(\d+)\.({AXES})\.(.+)", key)
    if not match:
        return key
    slot = {axis: position for position, axis in positions.items()}.get(match[2])
    return None if slot is None else f"layers.{match[1]}.{slot}.{match[3]}"


def bsr_key(community_key: str, positions: dict[str, str] | None = None) -> str | None:
    """``band_split.to_features.0.1.bias`` -> ``band_split.bands.0.linear.bias`` (None: no rule).

    ``positions`` (default: time 0, band 1) is the file's block layout, see
    :func:`block_positions`.
    """
    return _rename(_named(community_key, positions or block_positions((), False)), FROM_COMMUNITY)


def community_key(key: str, positions: dict[str, str] | None = None) -> str | None:
    """The inverse of :func:`bsr_key`."""
    named = _rename(key, TO_COMMUNITY)
    return None if named is None else _positional(named, positions or block_positions((), False))


# ---------------------------------------------------------------------------- checks


def model_type_of(config: ModelConfig) -> str:
    """Which community model has ``config``'s layout: ``bs_roformer`` or ``mel_band_roformer``."""
    return MEL if config.bands == "mel" else BS


def rotary_frequencies(dim_head: int, theta: float = 10000.0) -> torch.Tensor:
    """``(dim_head // 2,)`` frequencies ``theta^(-2i/d)``, as rotary-embedding-torch stores them."""
    return 1.0 / theta ** (torch.arange(0, dim_head, 2).float() / dim_head)


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


def _check_rotary(key: str, freqs: torch.Tensor, config: ModelConfig) -> None:
    """A stored rotary table must be the one bsr computes (theta, dim_head of the config)."""
    expected = rotary_frequencies(config.head_dim, config.rope_theta)
    if freqs.shape != expected.shape:
        raise BsrError(
            f"checkpoint {key} has {freqs.numel()} rotary frequencies (dim_head "
            f"{2 * freqs.numel()}) but the config has dim_head {config.head_dim}: "
            f"set model.dim_head: {2 * freqs.numel()}"
        )
    if not torch.allclose(freqs.float(), expected, rtol=1e-4, atol=0.0):
        raise BsrError(
            f"checkpoint {key} holds non-standard rotary frequencies (not theta "
            f"{config.rope_theta:g}): bsr cannot load learned or rescaled RoPE"
        )


# ---------------------------------------------------------------------------- state dicts


def strip_module_prefix(state_dict: dict) -> dict:
    """Drop the ``module.`` prefix of a model saved from inside DataParallel."""
    if state_dict and all(str(k).startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def weights_model_type(state_dict: dict) -> str | None:
    """``bs_roformer`` (a final norm), ``mel_band_roformer`` (norms closing the
    transformers, no final norm) or None when the keys do not tell."""
    keys = strip_module_prefix(state_dict).keys()
    if "final_norm.gamma" in keys:
        return BS
    if any(OUTPUT_NORM_KEY.fullmatch(k) for k in keys):
        return MEL
    return None


def from_community_state_dict(state_dict: dict, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Rename a community state dict to bsr's keys; the values are the same tensors.

    Rotary tables are checked against ``config`` and dropped (bsr recomputes them). Keys
    no rule knows pass through unchanged, so that loading reports them as unexpected.
    A ``module.`` prefix (a model saved from inside DataParallel) is stripped.
    """
    state_dict = strip_module_prefix(state_dict)
    positions = block_positions(state_dict)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        named = _named(key, positions)
        if NAMED_ROTARY_KEY.fullmatch(named):
            _check_rotary(key, value, config)
            continue
        out[_rename(named, FROM_COMMUNITY) or key] = value
    return out


def to_community_state_dict(model, layout: str = "zfturbo") -> dict[str, torch.Tensor]:
    """bsr ``BSRoformer`` -> a state dict that the community code loads.

    ``layout="zfturbo"`` (MSST, and lucidrains' BSRoformer 0.4.1) numbers a block's
    transformers from 0; ``layout="lucidrains"`` keeps slot 0 free for the linear
    transformer in a Mel-Band model, as lucidrains' MelBandRoformer 0.4.1 expects.
    Adds the rotary frequency table that every community attention layer stores.
    """
    config = model.config
    require_community_layout(config)
    if layout not in ("zfturbo", "lucidrains"):
        raise ValueError(f"layout must be 'zfturbo' or 'lucidrains', got {layout!r}")
    empty_slot = layout == "lucidrains" and model_type_of(config) == MEL
    positions = block_positions((), config.linear_transformer_depth > 0, empty_slot)
    freqs = rotary_frequencies(config.head_dim, config.rope_theta)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        named = _rename(key, TO_COMMUNITY)
        if named is None:  # a bsr module the layout has no place for: a bug, not user error
            raise ValueError(f"no community name for bsr key {key}")
        name = _positional(named, positions)
        if NAMED_ATTENTION_NORM.fullmatch(named):
            # First key of a softmax attention layer: its rotary table sits right before it.
            out[name.replace(".0.norm.gamma", ".0.rotary_embed.freqs")] = freqs.clone()
        out[name] = value.detach().cpu()
    return out


# ---------------------------------------------------------------------------- configs

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
KIND_ONLY = {"freqs_per_bands": BS, "num_bands": MEL, "sample_rate": MEL}
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


class _TupleTolerantLoader(yaml.SafeLoader):
    """SafeLoader that also reads two tags ZFTurbo's configs use, without running code:
    ``!!python/tuple`` (a list) and ``!!python/name:torch.hann_window`` (the dotted name,
    as text; bsr looks it up in a fixed table, never imports it)."""


_TupleTolerantLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
)
_TupleTolerantLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix
)


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML file (ZFTurbo's ``!!python/tuple`` allowed) with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise BsrError(f"config file {path} not found: check the path")
    try:
        data = yaml.load(path.read_text(), Loader=_TupleTolerantLoader)  # a SafeLoader: no code
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0]
        raise BsrError(f"config {path} is not valid YAML ({first}): fix the file") from None
    if not isinstance(data, dict):
        raise BsrError(f"config {path} is not a YAML mapping: expected 'model:' and 'audio:'")
    return data


def is_zfturbo_config(data: dict) -> bool:
    """Does a parsed YAML look like ZFTurbo's (rather than bsr's own) config?"""
    model = data.get("model")
    if "audio" in data or "training" in data:
        return True
    zf_keys = {"stereo", "num_stems", "stft_n_fft", "freqs_per_bands", "num_bands"}
    zf_keys.add("freq_transformer_depth")
    return isinstance(model, dict) and bool(zf_keys & set(model))


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


def _window(value) -> str:
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


def _pick_model_type(data: dict, model: dict, from_weights: str | None) -> str:
    """BS or Mel-Band: the YAML's model_type, else its keys, else the weights, else BS."""
    named = _explicit_model_type(data)
    implied = {KIND_ONLY[k] for k in model if k in KIND_ONLY}
    if len(implied) > 1:
        raise BsrError(
            "config has model.freqs_per_bands (BS-RoFormer) and model.num_bands or "
            "model.sample_rate (Mel-Band RoFormer): keep the keys of the model you trained"
        )
    by_keys = implied.pop() if implied else None
    if named and by_keys and named != by_keys:
        other = next(k for k, kind in KIND_ONLY.items() if kind == by_keys and k in model)
        raise BsrError(
            f"model.{other} belongs to a {by_keys} but the config's model_type is {named}: "
            "remove the key or fix model_type"
        )
    chosen = named or by_keys
    if chosen and from_weights and chosen != from_weights:
        raise BsrError(
            f"the checkpoint holds a {_describe(from_weights)} but the config describes a "
            f"{_describe(chosen)}: give the YAML the checkpoint was trained with"
        )
    return chosen or from_weights or BS


def _describe(model_type: str) -> str:
    return {
        BS: "BS-RoFormer (a final norm before the mask estimators)",
        MEL: "Mel-Band RoFormer (a norm closing each transformer, no final norm)",
    }[model_type]


def _check_keys(model: dict, model_type: str, source: str) -> list[str]:
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


def _model_config(m: dict, model_type: str, data: dict) -> ModelConfig:
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
        stft_window=_window(m["stft_window_fn"]),
    )
    try:
        return config.validate()
    except BsrError as error:  # speak of the YAML's keys, not bsr's
        key, _, rest = str(error).partition(":")
        key = key.removeprefix("model.")
        zf_key = "num_bands" if mel and key == "bands" else ZFTURBO_NAMES.get(key)
        raise BsrError(f"model.{zf_key}:{rest}" if zf_key else str(error)) from None


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
    (what the checkpoint's keys say, see :func:`weights_model_type`), else BS-RoFormer.
    """
    data = read_yaml(source) if isinstance(source, (str, Path)) else source
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise BsrError("a ZFTurbo config needs a 'model:' section with dim, depth, ...")
    for key in REQUIRED:
        if key not in model:
            raise BsrError(f"ZFTurbo config has no model.{key}: add it (the checkpoint's value)")
    model_type = _pick_model_type(data, model, from_weights)
    notes = _check_keys(model, model_type, "ZFTurbo")
    m = {**ZFTURBO_DEFAULTS[model_type], **model}
    config = _model_config(m, model_type, data)
    return CommunityConfig(config, model_type, separation_defaults(data), notes)


def config_from_zfturbo(source: str | Path | dict, model_type: str | None = None) -> ModelConfig:
    """A ZFTurbo-style YAML (path or parsed dict) -> the equivalent bsr :class:`ModelConfig`.

    Reads the ``model``, ``audio`` (sample_rate) and ``training`` (stem names) sections.
    ``model_type`` decides BS vs Mel-Band when the YAML does not (see :func:`load_zfturbo`).
    """
    return load_zfturbo(source, model_type).model


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
    chosen = _pick_model_type(data, data["model"], model_type)
    _check_keys(data["model"], chosen, "lucidrains")
    m = {**LUCIDRAINS_DEFAULTS[chosen], **data["model"]}
    training = {"instruments": stems} if stems else {}
    return _model_config(m, chosen, {"training": training})


def network_settings(config: ModelConfig) -> dict[str, Any]:
    """The network's sizes under the community's names, shared by both formats below."""
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


def community_kwargs(config: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for bs-roformer 0.4.1's ``BSRoformer`` or ``MelBandRoformer``
    (see :func:`model_type_of`) with the same network."""
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
    window = (
        None if config.stft_window == "hann" else getattr(torch, f"{config.stft_window}_window")
    )
    kwargs["stft_window_fn"] = window
    if mel:
        kwargs.update(
            linear_transformer_depth=config.linear_transformer_depth,
            match_input_audio_length=True,  # bsr always returns the input's length
        )
    return kwargs


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
