"""Recording attention: hooks that collect the weights of a model's attention layers.

Every RoFormer block attends twice: over **time** (each band of each example is a sequence
of T frames: weights ``(B*N, heads, T, T)``) and over **bands** (each frame is a sequence of
N bands: ``(B*T, heads, N, N)``). :func:`recording` hooks the layers for the length of a
``with`` block; :func:`record_attention` runs the model once under it and returns one
layer's weights. Both leave the model as they found it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from bsr.attention import Attention
from bsr.viz.masks import as_model_input

AXES = ("time", "band")
"""The two kinds of attention in a RoFormer block: over frames and over bands."""


def check_axis(axis: str) -> str:
    """``axis`` itself, or a ValueError when it is not one of :data:`AXES`."""
    if axis not in AXES:
        raise ValueError(f"axis must be 'time' or 'band', got {axis!r}")
    return axis


def attention_module(model, layer: int = 0, axis: str = "time", sublayer: int = 0):
    """The :class:`bsr.attention.Attention` of block ``layer``'s time or band transformer.

    ``sublayer`` picks the Transformer layer inside that transformer (the paper has one).
    """
    check_axis(axis)
    if not 0 <= layer < len(model.layers):
        raise ValueError(f"layer must be in 0..{len(model.layers) - 1}, got {layer}")
    block = model.layers[layer]
    transformer = block.time_transformer if axis == "time" else block.band_transformer
    if not 0 <= sublayer < len(transformer.layers):
        raise ValueError(f"sublayer must be in 0..{len(transformer.layers) - 1}, got {sublayer}")
    return transformer.layers[sublayer].attention


def model_batch(model, audio) -> torch.Tensor:
    """``(B, C, samples)`` float32: a batch as it is, one example as :func:`as_model_input`."""
    if torch.is_tensor(audio) and audio.dim() == 3 and audio.shape[1] == model.channels:
        return audio.float()
    return as_model_input(model, audio)


@contextmanager
def recording(model: nn.Module) -> Iterator[dict[Attention, torch.Tensor]]:
    """Collect the attention weights of every layer in ``model`` while the block runs.

    ``model`` is anything holding :class:`~bsr.attention.Attention` layers: a BSRoformer,
    one RoFormer block, or a single layer. Each of them gets a forward hook for the length
    of the ``with`` block; whenever a layer runs, its hook recomputes the weights from the
    same input on the explicit path (:meth:`~bsr.attention.Attention.explicit`) and stores
    them, detached, in the dict this yields: layer -> ``(batch, heads, seq, seq)`` of its
    last call. The layers themselves still compute on the fused kernel. On the way out,
    even after an error, the hooks are removed: the model is left as it was found::

        with torch.no_grad(), recording(model) as weights:
            model(audio)
        weights[attention_module(model, layer=1, axis="time")]  # (B*N, heads, T, T)
    """
    weights: dict[Attention, torch.Tensor] = {}

    def keep(layer: Attention, args: tuple, kwargs: dict, output) -> None:
        x, rope = args[0], args[1] if len(args) > 1 else kwargs.get("rope")
        with torch.no_grad():
            weights[layer] = layer.explicit(x, rope)[1].detach()

    layers = [m for m in model.modules() if isinstance(m, Attention)]
    handles = [layer.register_forward_hook(keep, with_kwargs=True) for layer in layers]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def record_attention(
    model,
    audio,
    layer: int = 0,
    axis: str = "time",
    sublayer: int = 0,
    use_rope: bool | None = None,
) -> torch.Tensor:
    """The attention weights of one attention module for ``audio``, float32 on the CPU.

    ``audio`` is one example (``(C, samples)``, ``(1, C, samples)`` or numpy ``(samples,
    C)``) or a batch ``(B, C, samples)``. Returns, with N bands and T frames,

    * ``axis="time"``: ``(B*N, heads, T, T)``, i.e. ``(bands, heads, frames, frames)`` for
      one example: ``w[n, h, i, j]`` is how much frame ``i`` of band ``n`` attends to frame ``j``;
    * ``axis="band"``: ``(B*T, heads, N, N)``, i.e. ``(frames, heads, bands, bands)``.

    The model runs once, in eval mode and without gradients, while :func:`recording`
    watches the chosen module. ``use_rope`` (if not None) switches RoPE on or off for
    this run only (``model.estimate_masks(spec, rope=use_rope)``). The training mode is
    restored afterwards; nothing else about the model changes.
    """
    module = attention_module(model, layer, axis, sublayer)
    device = next(model.parameters()).device
    x = model_batch(model, audio).to(device)
    was_training = model.training
    model.eval()
    try:
        with recording(module) as weights:
            model.estimate_masks(model.stft(x), rope=use_rope)
    finally:
        model.train(was_training)
    return weights[module].float().cpu()


@torch.no_grad()
def band_spectrogram(model, audio) -> np.ndarray:
    """``(N, T)`` energy of every band in every frame, in dB (channels averaged).

    The same frames and bands the attention works on, so it lines up with the maps.
    """
    device = next(model.parameters()).device
    spec = model.stft(model_batch(model, audio)[:1].to(device))[0]  # (C, F, T) complex
    power = spec.abs().square().mean(0)  # (F, T)
    rows = [power[list(bins)].mean(0) for bins in model.layout.bins]
    return (10 * torch.log10(torch.stack(rows) + 1e-10)).cpu().numpy()
