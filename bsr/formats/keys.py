"""Community parameter names: one table, read in both directions.

Only the parameter *names* of a community RoFormer differ from bsr's. The community
modules are anonymous ``nn.Sequential`` and ``ModuleList`` entries, ours have names
(community first, then bsr)::

    band_split.to_features.3.1.weight
    band_split.bands.3.linear.weight

    layers.0.1.layers.0.0.to_out.0.weight
    layers.0.band_transformer.layers.0.attention.to_out.weight

    mask_estimators.0.to_freqs.5.0.2.bias
    mask_estimators.0.bands.5.mlp.2.bias

so converting is a pure renaming, written once as a table (:data:`KEY_TABLE`) read in both
directions; the tensors themselves are left as they are. One thing is positional: the
transformers of block ``l`` are ``layers.{l}.{0, 1, 2}``, in the order linear (when there
is one), time, band, except that lucidrains' MelBandRoformer always keeps slot 0 for the
linear transformer, empty or not. :func:`block_positions` reads the layout off a state
dict. The community files also store each attention layer's rotary frequencies
(``...rotary_embed.freqs``, ``(dim_head // 2,)``), which bsr recomputes: we check that they
are the standard ones instead of dropping them.

lucidrains' and ZFTurbo's files share this layout, so every reader of community weights
(:mod:`~bsr.formats.zfturbo`, :mod:`~bsr.formats.lucidrains`, :mod:`~bsr.formats.bsr_config`)
ends in :func:`renamed`.
"""

from __future__ import annotations

import re

import torch

from bsr.config import ModelConfig
from bsr.errors import BsrError
from bsr.formats.kinds import MEL, model_type_of, require_community_layout
from bsr.formats.source import Found, strip_module_prefix

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


# ---------------------------------------------------------------------------- rotary tables


def rotary_frequencies(dim_head: int, theta: float = 10000.0) -> torch.Tensor:
    """``(dim_head // 2,)`` frequencies ``theta^(-2i/d)``, as rotary-embedding-torch stores them."""
    return 1.0 / theta ** (torch.arange(0, dim_head, 2).float() / dim_head)


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


def renamed(weights: dict, config: ModelConfig, separation: dict | None = None) -> Found:
    """Community ``weights`` for a model of ``config``, as a reader returns them.

    The state dict gets bsr's names; a mismatch report names each key as the file does
    (its own block layout, else the one a model of ``config`` would have).
    """
    ours = block_positions((), config.linear_transformer_depth > 0)
    theirs = block_positions(weights)
    return Found(
        config,
        from_community_state_dict(weights, config),
        separation,
        names=lambda k: community_key(k, theirs) or community_key(k, ours) or k,
    )
