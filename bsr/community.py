"""Talk to the community: ZFTurbo YAML configs and lucidrains / ZFTurbo state dicts.

Most BS-RoFormer checkpoints that people share were trained with lucidrains' ``bs-roformer``
package (0.3.x-0.4.1) or its copy in ZFTurbo's Music-Source-Separation-Training. That
network is bsr's model with the community switches on::

    ModelConfig(mask_norm="final", gates=True, bands=[freqs_per_bands...], hop_length=512)

Only the parameter *names* differ. Their modules are anonymous ``nn.Sequential`` and
``ModuleList`` entries, ours have names (community first, then bsr)::

    band_split.to_features.3.1.weight
    band_split.bands.3.linear.weight

    layers.0.1.layers.0.0.to_out.0.weight
    layers.0.band_transformer.layers.0.attention.to_out.weight

    mask_estimators.0.to_freqs.5.0.2.bias
    mask_estimators.0.bands.5.mlp.2.bias

so converting is a pure renaming, written once as a table (:data:`KEY_TABLE`) read in both
directions. The community files also store each attention layer's rotary frequencies
(``...rotary_embed.freqs``), which bsr recomputes: we check that they are the standard
ones instead of dropping them silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import yaml

from bsr.bands import make_layout, paper_band_sizes
from bsr.config import ModelConfig
from bsr.errors import BsrError

# ---------------------------------------------------------------------------- key table

# (community name, bsr name). {l} block, {k} layer, {b} band, {s} stem, {i} index in an
# nn.Sequential, {p} weight|bias, {q} gamma|weight|bias, {axis} the time or band transformer
# (community: position 0 or 1 in the block's ModuleList; bsr: a name).
KEY_TABLE = (
    ("band_split.to_features.{b}.0.gamma", "band_split.bands.{b}.norm.gamma"),
    ("band_split.to_features.{b}.1.{p}", "band_split.bands.{b}.linear.{p}"),
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
    ("final_norm.gamma", "final_norm.gamma"),
    ("mask_estimators.{s}.to_freqs.{b}.0.{i}.{p}", "mask_estimators.{s}.bands.{b}.mlp.{i}.{p}"),
)

AXIS_NAMES = {"0": "time", "1": "band"}  # community position -> bsr name
ROTARY_KEY = re.compile(r"layers\.(\d+)\.([01])\.layers\.(\d+)\.0\.rotary_embed\.freqs")
OUTPUT_NORM_KEY = re.compile(r"layers\.\d+\.[01]\.norm\.gamma")  # Transformer(norm_output=True)
LINEAR_ATTENTION_KEY = re.compile(r"layers\.\d+\.2\.")  # ZFTurbo's linear_transformer_depth > 0


def _compile(template: str, axis: str) -> re.Pattern:
    """Turn a KEY_TABLE template into a regex with one named group per placeholder."""
    groups = {"p": "weight|bias", "q": "gamma|weight|bias", "axis": axis}
    pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    pattern = re.sub(r"{(\w+)}", lambda m: f"(?P<{m[1]}>{groups.get(m[1], r'[0-9]+')})", pattern)
    return re.compile(pattern)


FROM_COMMUNITY = [(_compile(c, "[01]"), b) for c, b in KEY_TABLE]
TO_COMMUNITY = [(_compile(b, "time|band"), c) for c, b in KEY_TABLE]


def _rename(key: str, rules, axis_map: dict[str, str]) -> str | None:
    """The key's name on the other side, or None when no rule matches."""
    for pattern, template in rules:
        match = pattern.fullmatch(key)
        if match:
            fields = match.groupdict()
            if "axis" in fields:
                fields["axis"] = axis_map[fields["axis"]]
            return template.format(**fields)
    return None


def bsr_key(community_key: str) -> str | None:
    """``band_split.to_features.0.1.bias`` -> ``band_split.bands.0.linear.bias`` (None: no rule)."""
    return _rename(community_key, FROM_COMMUNITY, AXIS_NAMES)


def community_key(key: str) -> str | None:
    """The inverse of :func:`bsr_key`."""
    return _rename(key, TO_COMMUNITY, {v: k for k, v in AXIS_NAMES.items()})


# ---------------------------------------------------------------------------- checks


def rotary_frequencies(dim_head: int, theta: float = 10000.0) -> torch.Tensor:
    """``(dim_head // 2,)`` frequencies ``theta^(-2i/d)``, as rotary-embedding-torch stores them."""
    return 1.0 / theta ** (torch.arange(0, dim_head, 2).float() / dim_head)


def require_community_layout(config: ModelConfig, what: str = "export") -> None:
    """Raise BsrError unless the community network can express ``config``."""
    problems = {
        "mask_norm": (config.mask_norm == "final", "set model.mask_norm: final"),
        "gates": (config.gates, "set model.gates: true"),
        "bands": (config.bands != "mel", "use 'paper' or a list of band sizes"),
        "ff_mult": (config.ff_mult == 4, "set model.ff_mult: 4"),
        "rope_theta": (config.rope_theta == 10000.0, "set model.rope_theta: 10000"),
        "rope": (config.rope, "set model.rope: true"),
    }
    for key, (ok, fix) in problems.items():
        if not ok:
            raise BsrError(
                f"cannot {what} model.{key}={getattr(config, key)!r} in the community "
                f"BS-RoFormer layout: {fix} (and retrain)"
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


def from_community_state_dict(state_dict: dict, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Rename a community state dict to bsr's keys; the values are the same tensors.

    Rotary tables are checked against ``config`` and dropped (bsr recomputes them). Keys
    no rule knows pass through unchanged, so that loading reports them as unexpected.
    A ``module.`` prefix (a model saved from inside DataParallel) is stripped.
    """
    if state_dict and all(str(k).startswith("module.") for k in state_dict):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if ROTARY_KEY.fullmatch(key):
            _check_rotary(key, value, config)
            continue
        if OUTPUT_NORM_KEY.fullmatch(key):
            raise BsrError(
                f"checkpoint has {key}, a norm after each transformer (norm_output=True): "
                "bsr's RoFormer block has none, so this checkpoint cannot be loaded"
            )
        if LINEAR_ATTENTION_KEY.match(key):
            raise BsrError(
                f"checkpoint has {key}, a linear-attention transformer "
                "(linear_transformer_depth > 0): bsr does not implement it"
            )
        out[bsr_key(key) or key] = value
    return out


def to_community_state_dict(model) -> dict[str, torch.Tensor]:
    """bsr ``BSRoformer`` -> a state dict that lucidrains' 0.4.1 / ZFTurbo's BSRoformer loads.

    Adds the rotary frequency table that every community attention layer stores.
    """
    config = model.config
    require_community_layout(config)
    freqs = rotary_frequencies(config.head_dim, config.rope_theta)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        name = community_key(key)
        if name is None:  # a bsr module the layout has no place for: a bug, not user error
            raise ValueError(f"no community name for bsr key {key}")
        if name.endswith(".0.norm.gamma") and name.startswith("layers."):
            # First key of an attention layer: its rotary table sits right before it.
            out[name.replace(".0.norm.gamma", ".0.rotary_embed.freqs")] = freqs.clone()
        out[name] = value.detach().cpu()
    return out


# ---------------------------------------------------------------------------- configs

# ZFTurbo / lucidrains BSRoformer defaults, for keys a YAML leaves out.
ZFTURBO_DEFAULTS: dict[str, Any] = {
    "stereo": False,
    "num_stems": 1,
    "time_transformer_depth": 2,
    "freq_transformer_depth": 2,
    "dim_head": 64,
    "heads": 8,
    "attn_dropout": 0.0,
    "ff_dropout": 0.0,
    "stft_n_fft": 2048,
    "stft_hop_length": 512,
    "stft_win_length": 2048,
    "mask_estimator_depth": 2,
    "mlp_expansion_factor": 4,
}
# Keys that change the network in ways bsr does not implement: allowed only at these values.
UNSUPPORTED = {
    "linear_transformer_depth": 0,
    "stft_normalized": False,
    "skip_connection": False,
}
# Keys that only affect training or the attention kernel, not the function computed.
IGNORED = {
    "flash_attn",
    "sage_attention",
    "use_torch_checkpoint",
    "dim_freqs_in",
    "multi_stft_resolution_loss_weight",
    "multi_stft_resolutions_window_sizes",
    "multi_stft_hop_size",
    "multi_stft_normalized",
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
    "band_transformer_depth": "freq_transformer_depth",
}


class _TupleTolerantLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``!!python/tuple`` (ZFTurbo writes freqs_per_bands so)."""


_TupleTolerantLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
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
    zf_keys = {"stereo", "num_stems", "stft_n_fft", "freqs_per_bands", "freq_transformer_depth"}
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


def _band_sizes(model: dict) -> list[int]:
    """``freqs_per_bands`` as a list of ints (default: the paper's 62 bands at n_fft 2048)."""
    bands = model.get("freqs_per_bands")
    if bands is None:  # the community default is fixed, it does not follow stft_n_fft
        return list(paper_band_sizes(44100, 2048))
    if not isinstance(bands, (list, tuple)) or not all(
        isinstance(b, int) and not isinstance(b, bool) for b in bands
    ):
        raise BsrError(f"ZFTurbo config model.freqs_per_bands={bands!r} should list band widths")
    return list(bands)


def config_from_zfturbo(source: str | Path | dict) -> ModelConfig:
    """A ZFTurbo-style YAML (path or parsed dict) -> the equivalent bsr :class:`ModelConfig`.

    Reads the ``model``, ``audio`` (sample_rate) and ``training`` (stem names) sections.
    """
    data = read_yaml(source) if isinstance(source, (str, Path)) else source
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise BsrError("a ZFTurbo config needs a 'model:' section with dim, depth, ...")
    for key in REQUIRED:
        if key not in model:
            raise BsrError(f"ZFTurbo config has no model.{key}: add it (the checkpoint's value)")
    known = {*ZFTURBO_DEFAULTS, *UNSUPPORTED, *IGNORED, *REQUIRED, "freqs_per_bands"}
    for key in model:
        if key not in known:
            raise BsrError(
                f"unknown ZFTurbo key model.{key}: bsr cannot tell whether it changes the "
                "network; remove it if it only affects training"
            )
    for key, default in UNSUPPORTED.items():
        if model.get(key, default) != default:
            raise BsrError(
                f"model.{key}={model[key]!r} is not supported by bsr: only {default!r} "
                "(the plain BS-RoFormer) can be loaded"
            )
    m = {**ZFTURBO_DEFAULTS, **model}
    audio = data.get("audio") or {}
    training = data.get("training") or {}
    config = ModelConfig(
        sample_rate=int(audio.get("sample_rate", 44100)),
        channels=2 if _value(m, "stereo", bool) else 1,
        stems=_stems(training, _value(m, "num_stems", int)),
        n_fft=_value(m, "stft_n_fft", int),
        hop_length=_value(m, "stft_hop_length", int),
        win_length=_value(m, "stft_win_length", int),
        bands=_band_sizes(model),
        dim=_value(m, "dim", int),
        depth=_value(m, "depth", int),
        time_transformer_depth=_value(m, "time_transformer_depth", int),
        band_transformer_depth=_value(m, "freq_transformer_depth", int),
        heads=_value(m, "heads", int),
        dim_head=_value(m, "dim_head", int),
        attn_dropout=_value(m, "attn_dropout", float),
        ff_dropout=_value(m, "ff_dropout", float),
        mask_estimator_depth=_value(m, "mask_estimator_depth", int),
        mlp_expansion_factor=_value(m, "mlp_expansion_factor", int),
        mask_norm="final",
        gates=True,
    )
    try:
        return config.validate()
    except BsrError as error:  # speak of the YAML's keys, not bsr's
        key, _, rest = str(error).partition(":")
        zf_key = ZFTURBO_NAMES.get(key.removeprefix("model."))
        raise BsrError(f"model.{zf_key}:{rest}" if zf_key else str(error)) from None


def network_settings(config: ModelConfig) -> dict[str, Any]:
    """The network's sizes under the community's names, shared by both formats below."""
    layout = make_layout(config.bands, config.sample_rate, config.n_fft, config.num_mel_bands)
    return {
        "dim": config.dim,
        "depth": config.depth,
        "stereo": config.channels == 2,
        "num_stems": len(config.stems),
        "time_transformer_depth": config.time_transformer_depth,
        "freq_transformer_depth": config.band_transformer_depth,
        "freqs_per_bands": tuple(layout.sizes),
        "dim_head": config.head_dim,
        "heads": config.heads,
        "attn_dropout": config.attn_dropout,
        "ff_dropout": config.ff_dropout,
        "dim_freqs_in": config.n_fft // 2 + 1,
        "stft_n_fft": config.n_fft,
        "stft_hop_length": config.hop_length,
        "stft_win_length": config.win_length or config.n_fft,
        "mask_estimator_depth": config.mask_estimator_depth,
    }


def community_kwargs(config: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for ``bs_roformer.BSRoformer`` (0.4.1) with the same network."""
    require_community_layout(config, "build")
    if config.mlp_expansion_factor != 4:
        raise BsrError(
            f"bs-roformer 0.4.1 fixes mlp_expansion_factor at 4, got "
            f"{config.mlp_expansion_factor}: set model.mlp_expansion_factor: 4"
        )
    return network_settings(config)


def zfturbo_config(config: ModelConfig) -> dict[str, Any]:
    """The ZFTurbo YAML sections (``audio``, ``model``, ``training``) describing ``config``.

    The inverse of :func:`config_from_zfturbo`, for sharing an exported checkpoint.
    """
    require_community_layout(config)
    hop = config.hop_length
    one_stem = len(config.stems) == 1
    model = network_settings(config)
    model["freqs_per_bands"] = list(model["freqs_per_bands"])  # a YAML list, not a tuple
    model.update(
        linear_transformer_depth=0,
        flash_attn=True,
        stft_normalized=False,
        mlp_expansion_factor=config.mlp_expansion_factor,
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
    }
