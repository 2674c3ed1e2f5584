"""BS-RoFormer, assembled: waveform in, one waveform per stem out.

    audio (batch, C, samples)
      -> STFT                        (batch, C, F, T) complex
      -> real features               (batch, T, F*C*2), frequency-major
      -> band split                  (batch, T, N, D)
      -> L x RoFormer block          (batch, T, N, D)   time attention, then band attention
      -> per-stem mask estimators    (batch, stems, T, sum_b 2*C*F_b)
      -> complex masks               (batch, stems, C, F, T)
      -> mask * mixture STFT, iSTFT  (batch, stems, C, samples)

With the mel layout bands overlap: the features of a shared bin go to every band that
holds it, and its mask is the average of the masks those bands predict.

Community options (all off in the paper's model) slot into this path: a linear-attention
transformer and skip connections inside the block loop, a norm closing each transformer
(``output_norm``), a normalised STFT or another window, and ``zero_dc``, which silences
the DC bin (0 Hz) of every separated spectrum right before the iSTFT, as ZFTurbo's code
now does by default.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bsr.band_split import BandSplit
from bsr.bands import BandLayout, make_layout
from bsr.config import ModelConfig
from bsr.mask_estimator import MaskEstimator
from bsr.norm import RMSNorm
from bsr.roformer import RoFormerBlock
from bsr.rope import RotaryEmbedding
from bsr.stft import STFT, complex_to_features, features_to_complex


def band_feature_index(layout: BandLayout, channels: int) -> list[int]:
    """Positions in the frame's feature vector that each band reads, concatenated.

    Bin ``f`` of channel ``c`` has features ``2*(C*f + c)`` (real) and ``+1`` (imag).
    For a non-overlapping layout this is simply ``0, 1, ..., 2*C*F - 1``.
    """
    index = [
        2 * (channels * f + c) + part
        for band in layout.bins
        for f in band
        for c in range(channels)
        for part in (0, 1)
    ]
    return index


class BSRoformer(nn.Module):
    """Band-Split RoPE Transformer for music source separation.

    ``forward(audio)``: ``(batch, channels, samples)`` -> ``(batch, stems, channels, samples)``.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = cfg = (config or ModelConfig()).validate()
        self.stems = list(cfg.stems)
        self.channels = cfg.channels
        self.stft = STFT(cfg.n_fft, cfg.hop_length, cfg.win_length)
        if cfg.stft_window != "hann":  # the window is a buffer, not a parameter: swap it
            window_fn = getattr(torch, f"{cfg.stft_window}_window")
            self.stft.window = window_fn(self.stft.win_length)
        # torch.stft(normalized=True) scales the spectrum by 1/sqrt(n_fft), and its inverse
        # scales it back: one constant on each side, applied here around the plain STFT.
        self.spectrum_scale = cfg.n_fft**-0.5 if cfg.stft_normalized else 1.0
        self.layout = make_layout(cfg.bands, cfg.sample_rate, cfg.n_fft, cfg.num_mel_bands)
        feature_sizes = tuple(2 * cfg.channels * size for size in self.layout.sizes)

        index = band_feature_index(self.layout, cfg.channels)
        self.gathers = index != list(range(len(index)))  # False for the paper layout
        index = torch.tensor(index, dtype=torch.long)
        self.register_buffer("feature_index", index, persistent=False)
        # How many bands cover each (bin, channel) feature pair, to average shared masks.
        counts = torch.zeros(self.stft.n_bins * cfg.channels * 2).index_add_(
            0, index, torch.ones(len(index))
        )
        self.register_buffer("feature_counts", counts, persistent=False)

        self.band_split = BandSplit(feature_sizes, cfg.dim)
        self.time_rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.band_rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.layers = nn.ModuleList(
            RoFormerBlock(
                cfg.time_transformer_depth,
                cfg.band_transformer_depth,
                dim=cfg.dim,
                heads=cfg.heads,
                dim_head=cfg.head_dim,
                attn_dropout=cfg.attn_dropout,
                ff_dropout=cfg.ff_dropout,
                ff_mult=cfg.ff_mult,
                gates=cfg.gates,
                linear_depth=cfg.linear_transformer_depth,
                output_norm=cfg.output_norm,
            )
            for _ in range(cfg.depth)
        )
        self.final_norm = RMSNorm(cfg.dim) if cfg.mask_norm == "final" else nn.Identity()
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(
                cfg.dim,
                feature_sizes,
                depth=cfg.mask_estimator_depth,
                expansion=cfg.mlp_expansion_factor,
                norm=cfg.mask_norm == "per_band",
            )
            for _ in self.stems
        )
        # Recompute each block's activations in the backward pass instead of storing them:
        # less memory for more compute (the paper trains with it).
        self.activation_checkpointing = False
        # How to cut long songs into windows, in samples: {"window": ..., "hop": ...}. None
        # uses bsr.separate's defaults; loading a community YAML fills in the YAML's own.
        self.separation_defaults: dict[str, int] | None = None

    @property
    def use_rope(self) -> bool:
        """Whether the blocks rotate queries and keys by position: ``config.rope``.

        A model trained without RoPE has ``rope: false`` in its config. To see what
        attention does without positions, pass ``rope=False`` to one call instead:
        ``model(audio, rope=False)`` leaves the model as it was.
        """
        return self.config.rope

    # -- the three stages ------------------------------------------------------------

    def estimate_masks(self, spec: torch.Tensor, rope: bool | None = None) -> torch.Tensor:
        """Mixture STFT ``(batch, C, F, T)`` -> complex masks ``(batch, stems, C, F, T)``.

        ``rope`` switches the rotary embeddings on or off for this call only; None: as the
        model was trained (:attr:`use_rope`).
        """
        features = complex_to_features(spec)  # (batch, T, F*C*2)
        if self.gathers:
            features = features[..., self.feature_index]
        x = self.band_split(features)  # (batch, T, N, D)
        positions = self.use_rope if rope is None else rope
        time_rope = self.time_rope if positions else None
        band_rope = self.band_rope if positions else None
        outputs: list[torch.Tensor] = []  # each block's output, kept for skip connections
        for block in self.layers:
            # A snapshot: activation checkpointing replays the block with these same inputs.
            earlier = tuple(outputs) if self.config.skip_connection else None
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, time_rope, band_rope, earlier, use_reentrant=False)
            else:
                x = block(x, time_rope, band_rope, earlier)
            if self.config.skip_connection:
                outputs.append(x)
        x = self.final_norm(x)
        # (batch, stems, T, sum_b 2*C*F_b): one mask estimator per stem
        masks = torch.stack([estimator(x) for estimator in self.mask_estimators], dim=1)
        if self.gathers:  # scatter band outputs back to bins, averaging overlaps
            full = masks.new_zeros(*masks.shape[:-1], self.feature_counts.numel())
            masks = full.index_add(-1, self.feature_index, masks) / self.feature_counts
        return features_to_complex(masks, self.channels)

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor, length: int) -> torch.Tensor:
        """Complex product with the mixture, then iSTFT: -> ``(batch, stems, C, length)``.

        ``spec`` is the mixture's ``(batch, C, F, T)`` spectrum as the network saw it (scaled
        when ``stft_normalized``); ``masks`` is ``(batch, stems, C, F, T)``.
        """
        separated = masks * spec.unsqueeze(1)
        if self.config.zero_dc:  # bin 0 is each windowed frame's mean: no stem keeps any
            separated = separated.index_fill(-2, separated.new_zeros(1, dtype=torch.long), 0)
        if self.spectrum_scale != 1.0:
            separated = separated / self.spectrum_scale
        return self.stft.inverse(separated, length)

    def forward(self, audio: torch.Tensor, rope: bool | None = None) -> torch.Tensor:
        """``(batch, C, samples)`` -> ``(batch, stems, C, samples)``; ``rope`` as in
        :meth:`estimate_masks`."""
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            expected = f"(batch, {self.channels}, samples)"
            raise ValueError(f"expected audio of shape {expected}, got {tuple(audio.shape)}")
        spec = self.stft(audio)
        if self.spectrum_scale != 1.0:
            spec = spec * self.spectrum_scale
        return self.apply_masks(spec, self.estimate_masks(spec, rope), audio.shape[-1])


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
