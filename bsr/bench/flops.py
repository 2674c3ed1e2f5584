"""The network's FLOPs, counted by hand from its matrix products: the numerator of MFU."""

from __future__ import annotations

from bsr.config import ModelConfig


def flop_breakdown(config: ModelConfig, batch: int, samples: int) -> dict[str, float]:
    """Forward-pass FLOPs of every matrix product in the network, by part.

    A product of an ``(m, k)`` and a ``(k, n)`` matrix is ``m * k * n`` multiply-adds,
    counted as 2 FLOPs each. With ``T`` frames, ``N`` bands and width ``D``, the
    Transformers see ``B * T * N`` tokens, whether the sequences run over time (length
    ``T``) or over bands (length ``N``).
    """
    from bsr.bands import make_layout

    layout = make_layout(config.bands, config.sample_rate, config.n_fft, config.num_mel_bands)
    frames = samples // config.hop_length + 1  # centred STFT
    bands = layout.num_bands
    features = [2 * config.channels * size for size in layout.sizes]  # per band, 2*C*F_b
    rows = batch * frames  # one row per (example, frame)
    tokens = rows * bands
    dim, inner = config.dim, config.heads * config.head_dim

    def linear(count: float, n_in: int, n_out: int) -> float:
        return 2.0 * count * n_in * n_out

    # One Transformer layer: projections and feed-forward per token, attention per pair.
    projections = linear(tokens, dim, 3 * inner) + linear(tokens, inner, dim)
    if config.gates:
        projections += linear(tokens, dim, config.heads)
    feed_forward = linear(tokens, dim, config.ff_mult * dim) + linear(
        tokens, config.ff_mult * dim, dim
    )

    def scores(seq: int) -> float:  # Q K^T and A V: each 2 * seq * inner per token
        return 2 * (2.0 * tokens * seq * inner)

    time_layers = config.depth * config.time_transformer_depth
    band_layers = config.depth * config.band_transformer_depth
    hidden = dim * config.mlp_expansion_factor
    mask = 0.0
    for size in features:
        widths = [dim] + [hidden] * (config.mask_estimator_depth - 1) + [2 * size]  # GLU: 2x
        mask += sum(linear(rows, a, b) for a, b in zip(widths[:-1], widths[1:]))
    return {
        "band split": sum(linear(rows, size, dim) for size in features),
        "attention projections": (time_layers + band_layers) * projections,
        "attention scores": time_layers * scores(frames) + band_layers * scores(bands),
        "feed-forward": (time_layers + band_layers) * feed_forward,
        "mask estimators": len(config.stems) * mask,
    }


def model_flops(config: ModelConfig, batch: int, samples: int) -> float:
    """Forward-pass FLOPs of the network on ``batch`` clips of ``samples`` samples.

    A training step (forward + backward) costs about three times this.
    """
    return sum(flop_breakdown(config, batch, samples).values())
