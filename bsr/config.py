"""Typed configuration, loaded from YAML presets shipped in ``bsr/presets``.

A config file has two sections, ``model`` (the network and its STFT) and ``train`` (the
recipe). Anything left out takes the paper's value. An unknown key or an impossible value
fails with one line that names the key and the fix::

    >>> load_config("paper-l6").model.dim
    384
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bsr.errors import BsrError

MASK_NORMS = ("per_band", "final", "none")
STFT_WINDOWS = ("hann", "hamming", "blackman", "bartlett")


@dataclass
class ModelConfig:
    """The network. Defaults are the paper's BS-RoFormer (L=6, D=384, one stem)."""

    sample_rate: int = 44100
    channels: int = 2  # 1 = mono, 2 = stereo
    stems: list[str] = field(default_factory=lambda: ["vocals"])
    n_fft: int = 2048
    hop_length: int = 441  # 10 ms at 44.1 kHz (paper); the community uses 512
    win_length: int | None = None  # None = n_fft
    bands: str | list[int] = "paper"  # "paper", "mel", or bins per band
    num_mel_bands: int = 60  # only for bands: mel
    dim: int = 384
    depth: int = 6  # L, the number of RoFormer blocks
    time_transformer_depth: int = 1
    band_transformer_depth: int = 1
    heads: int = 8
    dim_head: int | None = None  # None = dim // heads (48 in the paper)
    ff_mult: int = 4
    attn_dropout: float = 0.1
    ff_dropout: float = 0.1
    rope: bool = True  # rotary positions in attention; false trains a model without them
    rope_theta: float = 10000.0
    mask_estimator_depth: int = 2
    mlp_expansion_factor: int = 4
    mask_norm: str = "per_band"  # "per_band" (paper), "final" (community: one shared norm), "none"
    gates: bool = False  # per-head sigmoid output gates in attention (community)
    # Community switches (lucidrains / ZFTurbo); the defaults are the paper's network.
    output_norm: bool = False  # an RMSNorm closing every transformer (Mel-Band RoFormer code)
    linear_transformer_depth: int = 0  # linear-attention layers over all T*N positions per block
    skip_connection: bool = False  # each block also receives the outputs of all earlier blocks
    zero_dc: bool = False  # zero the DC bin of every separated spectrum before the iSTFT
    stft_normalized: bool = False  # torch.stft(normalized=True): spectrum scaled by 1/sqrt(n_fft)
    stft_window: str = "hann"  # analysis/synthesis window: hann, hamming, blackman or bartlett

    @property
    def head_dim(self) -> int:
        """The resolved per-head width."""
        return self.dim_head if self.dim_head is not None else self.dim // self.heads

    def validate(self) -> ModelConfig:
        def need(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise BsrError(f"model.{key}: {message}")

        need(
            self.channels in (1, 2),
            "channels",
            f"must be 1 (mono) or 2 (stereo), got {self.channels}",
        )
        need(len(self.stems) > 0, "stems", "list at least one stem, e.g. [vocals]")
        need(len(set(self.stems)) == len(self.stems), "stems", f"names repeat in {self.stems}")
        need(self.sample_rate > 0, "sample_rate", "must be positive")
        need(self.n_fft >= 16, "n_fft", f"must be at least 16, got {self.n_fft}")
        need(0 < self.hop_length <= self.n_fft, "hop_length", "must be between 1 and n_fft")
        win = self.win_length or self.n_fft
        need(0 < win <= self.n_fft, "win_length", f"must be between 1 and n_fft={self.n_fft}")
        for key in (
            "dim",
            "depth",
            "heads",
            "ff_mult",
            "mask_estimator_depth",
            "mlp_expansion_factor",
        ):
            need(getattr(self, key) >= 1, key, f"must be at least 1, got {getattr(self, key)}")
        for key in ("time_transformer_depth", "band_transformer_depth", "linear_transformer_depth"):
            need(getattr(self, key) >= 0, key, "must be 0 or more")
        if self.dim_head is None:
            need(
                self.dim % self.heads == 0,
                "heads",
                f"{self.heads} heads do not divide dim={self.dim}: pick heads that divide dim "
                "or set model.dim_head",
            )
        need(
            self.head_dim % 2 == 0 and self.head_dim > 0,
            "dim_head",
            f"must be even for RoPE, got {self.head_dim}",
        )
        for key in ("attn_dropout", "ff_dropout"):
            need(0.0 <= getattr(self, key) < 1.0, key, "must be in [0, 1)")
        need(
            self.mask_norm in MASK_NORMS,
            "mask_norm",
            "use 'per_band' (paper), 'final' (community BS-RoFormer) or 'none' (with output_norm)",
        )
        need(
            self.stft_window in STFT_WINDOWS,
            "stft_window",
            f"use one of {', '.join(STFT_WINDOWS)}, got {self.stft_window!r}",
        )
        need(self.rope_theta > 0, "rope_theta", "must be positive")
        if self.bands == "mel":
            need(self.num_mel_bands >= 2, "num_mel_bands", "must be at least 2")
        from bsr.bands import make_layout  # validates coverage with a clear message

        try:
            make_layout(self.bands, self.sample_rate, self.n_fft, self.num_mel_bands)
        except BsrError as error:
            raise BsrError(f"model.bands: {error}") from None
        return self


@dataclass
class TrainConfig:
    """The training recipe. Defaults follow the paper (section 4 of the BS-RoFormer paper)."""

    steps: int = 1000
    batch_size: int = 4
    segment_seconds: float = 8.0
    lr: float = 5e-4
    weight_decay: float = 0.0
    lr_decay: float = 0.9  # multiply the learning rate by this ...
    lr_decay_every: int = 40000  # ... every this many steps
    warmup_steps: int = 0
    ema_decay: float = 0.999
    ema_warmup: int = 10  # the decay ramps up as (1 + n) / (ema_warmup + n); 0 = fixed decay
    grad_clip: float | None = None
    grad_accum: int = 1
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, fp32
    gain_db: float = 3.0  # random per-stem gain in +-gain_db
    p_silence: float = 0.1  # chance a stem is silenced
    p_swap: float = 0.0  # chance left and right are swapped: not in the paper (community)
    min_db: float = -50.0  # a stem's training segment quieter than this is skipped (paper)
    seed: int = 0
    stft_loss_hop: int = 147  # hop of the multi-resolution STFT loss (paper: 147)
    stft_loss_windows: list[int] = field(default_factory=lambda: [4096, 2048, 1024, 512, 256])
    validate_every: int = 500  # steps between validation passes (uSDR on fixed chunks)
    valid_seconds: float = 6.0  # length of each validation chunk
    checkpoint_every: int = 500  # steps between checkpoints
    num_workers: int = 0  # DataLoader worker processes
    cache: bool = False  # hold every training stem in RAM: random mixing without disk reads

    def validate(self) -> TrainConfig:
        def need(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise BsrError(f"train.{key}: {message}")

        for key in (
            "steps",
            "batch_size",
            "lr_decay_every",
            "grad_accum",
            "validate_every",
            "checkpoint_every",
            "stft_loss_hop",
        ):
            need(getattr(self, key) >= 1, key, f"must be at least 1, got {getattr(self, key)}")
        need(self.segment_seconds > 0, "segment_seconds", "must be positive")
        need(self.lr > 0, "lr", "must be positive")
        need(0 < self.lr_decay <= 1, "lr_decay", "must be in (0, 1]")
        need(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)")
        need(self.warmup_steps >= 0, "warmup_steps", "must be 0 or more")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be positive or null")
        need(
            self.precision in ("auto", "bf16", "fp16", "fp32"),
            "precision",
            "use auto, bf16, fp16 or fp32",
        )
        need(0 <= self.p_silence <= 1, "p_silence", "must be in [0, 1]")
        need(0 <= self.p_swap <= 1, "p_swap", "must be in [0, 1]")
        need(self.gain_db >= 0, "gain_db", "must be 0 or more")
        need(self.valid_seconds > 0, "valid_seconds", "must be positive")
        need(
            all(w >= 16 for w in self.stft_loss_windows),
            "stft_loss_windows",
            "list window sizes of at least 16 samples, or [] for the waveform loss alone",
        )
        need(self.num_workers >= 0, "num_workers", "must be 0 or more")
        return self


@dataclass
class Config:
    """A whole configuration: ``model`` and ``train`` sections, and the preset's name."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
        }


# ---------------------------------------------------------------------------- loading

PRESETS = resources.files("bsr") / "presets"


def list_presets() -> list[str]:
    """Names of the presets shipped with bsr."""
    return sorted(p.name[: -len(".yaml")] for p in PRESETS.iterdir() if p.name.endswith(".yaml"))


def _check_type(value: Any, hint: Any) -> bool:
    """Does ``value`` (parsed from YAML) fit the annotation ``hint``?"""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_check_type(v, item) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _build(cls, values: dict[str, Any], section: str):
    """Make dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise BsrError(f"config section '{section}' must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = (
                f"did you mean '{section}.{close[0]}'?"
                if close
                else f"known keys: {', '.join(known)}"
            )
            raise BsrError(f"unknown config key '{section}.{key}': {hint}")
        if not _check_type(value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise BsrError(f"config key '{section}.{key}' = {value!r} should be of type {expected}")
        if isinstance(value, tuple):
            values[key] = list(value)
    return cls(**values)


def config_from_dict(data: dict[str, Any], name: str = "custom") -> Config:
    """Build and validate a :class:`Config` from a ``{"model": ..., "train": ...}`` mapping."""
    if not isinstance(data, dict):
        raise BsrError("a config must be a YAML mapping with 'model' and/or 'train' sections")
    data = dict(data)
    name = data.pop("name", name)
    for key in data:
        if key not in ("model", "train"):
            raise BsrError(f"unknown config section '{key}': use 'model' and 'train'")
    model = _build(ModelConfig, dict(data.get("model") or {}), "model").validate()
    train = _build(TrainConfig, dict(data.get("train") or {}), "train").validate()
    return Config(model=model, train=train, name=str(name))


def load_config(spec: str | Path | Config) -> Config:
    """A preset name (``paper-l6``), a YAML file path, or a Config (returned as is)."""
    if isinstance(spec, Config):
        return spec
    text_name = str(spec)
    preset = PRESETS / f"{text_name}.yaml"
    if preset.is_file():
        path, name = preset, text_name
    else:
        path = Path(text_name)
        name = path.stem
        if path.is_dir():
            raise BsrError(
                f"config {text_name!r} is a directory: give a preset name or a YAML file"
            )
        if not path.is_file():
            raise BsrError(
                f"unknown preset or missing file {text_name!r}: choose one of "
                f"{', '.join(list_presets())} or give a path to a YAML file"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0]
        raise BsrError(f"config {text_name!r} is not valid YAML ({first}): fix the file") from None
    return config_from_dict(data or {}, name=name)
