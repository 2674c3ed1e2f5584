"""The peers bsr's community layouts are checked against (test helpers, not tests).

* lucidrains' ``bs-roformer`` 0.4.1 (pinned in pyproject): ``BSRoformer`` and
  ``MelBandRoformer``, built from :func:`bsr.community.community_kwargs`;
* :class:`MsstReference`: ZFTurbo's current RoFormer for the options 0.4.1 does not have
  (a linear-attention transformer in the BS model, skip connections, a mask MLP wider or
  narrower than 4x, ``zero_dc``), assembled from 0.4.1's own modules. Its forward follows
  the order ZFTurbo's code runs them in, written out here step by step;
* :func:`dc_zeroed_istft`: ZFTurbo's ``zero_dc`` for any peer, by zeroing bin 0 of every
  spectrum handed to ``torch.istft``.

Agreement is measured as the largest sample difference over the reference's peak.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from torch import nn

from bsr.checkpoint import load_weights
from bsr.community import MEL, community_kwargs, from_community_state_dict, model_type_of
from bsr.config import ModelConfig
from bsr.model import BSRoformer

bs_roformer = pytest.importorskip("bs_roformer")
bs_module = pytest.importorskip("bs_roformer.bs_roformer")
mel_module = pytest.importorskip("bs_roformer.mel_band_roformer")

TOLERANCE = 1e-4  # of the output's peak


def peak_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |theirs|."""
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def randomise_norms(model: nn.Module) -> nn.Module:
    """Gammas start at one and temperatures at zero: randomise them, so they are tested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("temperature"):
                p.uniform_(-0.5, 0.5)
    return model


def peer(config: ModelConfig, seed: int = 1) -> nn.Module:
    """bs-roformer 0.4.1's model with ``config``'s network and seeded random weights.

    ``zero_dc`` is not part of 0.4.1: run the peer inside :func:`dc_zeroed_istft` for it.
    """
    torch.manual_seed(seed)
    kwargs = community_kwargs(dataclasses.replace(config, zero_dc=False))
    cls = bs_roformer.MelBandRoformer if model_type_of(config) == MEL else bs_roformer.BSRoformer
    return randomise_norms(cls(**kwargs)).eval()


@contextlib.contextmanager
def dc_zeroed_istft():
    """While active, ``torch.istft`` first sets frequency bin 0 of its input to zero.

    ZFTurbo's ``zero_dc`` does exactly that to the separated spectra, right before the
    iSTFT, so any model calling ``torch.istft`` gains the option.
    """
    original = torch.istft

    def istft(spec, *args, **kwargs):
        spec = spec.clone()
        spec[..., 0, :] = 0  # (batch, bins, frames): bin 0 of every frame
        return original(spec, *args, **kwargs)

    torch.istft = istft
    try:
        yield
    finally:
        torch.istft = original


def peer_output(model: nn.Module, audio: torch.Tensor, zero_dc: bool = False) -> torch.Tensor:
    """The peer's output as ``(batch, stems, C, samples)`` (it drops the stem axis for one)."""
    with torch.no_grad(), dc_zeroed_istft() if zero_dc else contextlib.nullcontext():
        out = model(audio)
    return out if out.dim() == 4 else out.unsqueeze(1)


def audio_for(config: ModelConfig, hops: int = 12, batch: int = 2) -> torch.Tensor:
    # A whole number of hops: the peer's iSTFT then returns exactly the input length.
    return torch.randn(batch, config.channels, hops * config.hop_length)


def assert_gives_the_peers_output(config: ModelConfig, reference: nn.Module, zero_dc: bool):
    """bsr's model, loaded with the peer's weights (community key layout), gives the peer's
    output for random audio: same shape, within :data:`TOLERANCE` of the peak."""
    model = BSRoformer(config).eval()
    load_weights(model, from_community_state_dict(reference.state_dict(), config), "peer")
    audio = audio_for(config)
    with torch.no_grad():
        ours = model(audio)
    theirs = peer_output(reference, audio, zero_dc=zero_dc)
    assert ours.shape == theirs.shape == (2, len(config.stems), config.channels, audio.shape[-1])
    assert peak_error(ours, theirs) <= TOLERANCE


def assert_reference_is_the_peer(config: ModelConfig) -> None:
    """:class:`MsstReference` with no new option is the peer itself (to 1e-6 of the peak):
    the reason it can be trusted for the options the peer lacks."""
    base = peer(config)
    reference = MsstReference(base).eval()
    reference.mask_estimators.load_state_dict(base.mask_estimators.state_dict())
    audio = audio_for(config)
    with torch.no_grad():
        assert peak_error(reference(audio), peer_output(base, audio)) <= 1e-6


class MsstReference(nn.Module):
    """ZFTurbo's current BSRoformer / MelBandRoformer, built from bs-roformer 0.4.1's parts.

    ``base`` is a 0.4.1 model (for a Mel-Band one, without linear transformers); this
    module takes its band split, transformers and final norm, adds per block a
    linear-attention transformer (``linear_depth``), rebuilds the mask estimators with
    ``mlp_expansion_factor``, and runs them as ZFTurbo's code does, with
    ``skip_connection`` and ``zero_dc``. Its state dict has ZFTurbo's key layout: a
    block's transformers are ``layers.{l}.0`` (linear, when present), then time, then band.
    """

    def __init__(
        self,
        base: nn.Module,
        linear_depth: int = 0,
        skip_connection: bool = False,
        mlp_expansion_factor: int = 4,
        mask_depth: int | None = None,
        zero_dc: bool = False,
    ):
        super().__init__()
        self.mel = isinstance(base, bs_roformer.MelBandRoformer)
        module = mel_module if self.mel else bs_module
        first = base.layers[0][-1]  # the band transformer of block 0: read the sizes off it
        attention = first.layers[0][0]
        dim = attention.to_qkv.in_features
        heads = attention.heads
        dim_head = attention.to_qkv.out_features // (3 * heads)
        blocks = []
        for block in base.layers:
            time, band = block[-2], block[-1]
            linear = (
                mel_module.Transformer(
                    dim=dim,
                    depth=linear_depth,
                    dim_head=dim_head,
                    heads=heads,
                    linear_attn=True,
                    norm_output=self.mel,
                    flash_attn=False,
                )  # fmt: skip
                if linear_depth
                else None
            )
            blocks.append(nn.ModuleList([m for m in (linear, time, band) if m is not None]))
        self.layers = nn.ModuleList(blocks)
        self.band_split = base.band_split
        self.final_norm = None if self.mel else base.final_norm
        sizes = base.band_split.dim_inputs
        depth = mask_depth if mask_depth is not None else self._mask_depth(base)
        self.mask_estimators = nn.ModuleList(
            module.MaskEstimator(dim, sizes, depth, mlp_expansion_factor)
            for _ in base.mask_estimators
        )
        self.stft_kwargs, self.window_fn = base.stft_kwargs, base.stft_window_fn
        self.channels = base.audio_channels
        if self.mel:
            self.register_buffer("freq_indices", base.freq_indices, persistent=False)
            self.register_buffer("bands_per_freq", base.num_bands_per_freq, persistent=False)
        self.linear_depth, self.skip_connection, self.zero_dc = (
            linear_depth,
            skip_connection,
            zero_dc,
        )
        randomise_norms(self)

    @staticmethod
    def _mask_depth(base) -> int:
        """The depth argument ``base``'s mask estimators were built with."""
        linears = sum(isinstance(m, nn.Linear) for m in base.mask_estimators[0].to_freqs[0][0])
        return linears - 1 if isinstance(base, bs_roformer.MelBandRoformer) else linears

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, C, samples)`` -> ``(batch, stems, C, samples)``."""
        batch, channels, length = audio.shape
        window = self.window_fn(device=audio.device)
        spec = torch.stft(
            audio.reshape(-1, length), **self.stft_kwargs, window=window, return_complex=True
        )
        bins, frames = spec.shape[-2:]
        # (batch, C, F, T) -> (batch, F*C, T): frequency-major, as the community code does
        spec = spec.reshape(batch, channels, bins, frames).transpose(1, 2)
        spec = spec.reshape(batch, bins * channels, frames)
        picked = spec[:, self.freq_indices] if self.mel else spec
        x = torch.view_as_real(picked).permute(0, 2, 1, 3).reshape(batch, frames, -1)
        x = self.band_split(x)  # (batch, T, N, D)
        bands, dim = x.shape[2], x.shape[3]
        outputs = []
        for i, block in enumerate(self.layers):
            if self.linear_depth:
                x = block[0](x.reshape(batch, frames * bands, dim)).reshape(x.shape)
            if self.skip_connection:
                for previous in outputs[:i]:
                    x = x + previous
            time, band = block[-2], block[-1]
            x = time(x.transpose(1, 2).reshape(batch * bands, frames, dim))
            x = x.reshape(batch, bands, frames, dim).transpose(1, 2)
            x = band(x.reshape(batch * frames, bands, dim)).reshape(batch, frames, bands, dim)
            outputs.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        masks = torch.stack([m(x) for m in self.mask_estimators], dim=1)  # (b, n, T, 2*k)
        masks = torch.view_as_complex(masks.reshape(*masks.shape[:-1], -1, 2).contiguous())
        masks = masks.transpose(-1, -2)  # (batch, stems, k, T): k picked (bin, channel) pairs
        if self.mel:  # average the masks of bins that several bands share
            summed = masks.new_zeros(batch, masks.shape[1], bins * channels, frames)
            summed.index_add_(2, self.freq_indices, masks)
            counts = self.bands_per_freq.repeat_interleave(channels).clamp(min=1)
            masks = summed / counts[:, None]
        separated = spec.unsqueeze(1) * masks  # (batch, stems, F*C, T)
        separated = separated.reshape(batch, -1, bins, channels, frames).transpose(2, 3)
        separated = separated.reshape(-1, bins, frames)
        if self.zero_dc:
            separated = separated.clone()
            separated[:, 0] = 0
        out = torch.istft(separated, **self.stft_kwargs, window=window, length=length)
        return out.reshape(batch, -1, channels, length)


def msst_reference(config: ModelConfig) -> MsstReference:
    """ZFTurbo's network for ``config``: the 0.4.1 peer of its plain part, plus the options."""
    plain = dataclasses.replace(
        config, linear_transformer_depth=0, skip_connection=False, mlp_expansion_factor=4
    )
    return MsstReference(
        peer(plain),
        linear_depth=config.linear_transformer_depth,
        skip_connection=config.skip_connection,
        mlp_expansion_factor=config.mlp_expansion_factor,
        zero_dc=config.zero_dc,
    ).eval()
