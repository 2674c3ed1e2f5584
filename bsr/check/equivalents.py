"""The same piece elsewhere: other packages' versions of what an exercise asks for.

A check names, in ``library=``, what its answer must not call: bsr's own version of the
piece and PyTorch's (:func:`bsr.check.register`). A learner who finds the piece in another
package, librosa's STFT or ``rotary_embedding_torch``'s RoPE, has not written it either. So
every name a check refuses brings its *peers* from :data:`PEERS`, and
:func:`bsr.check.watch.watching` refuses those too, with the same message. A peer whose
package is not installed, or does not import, is not watched: an answer cannot call it.

A peer is the same *piece*, at the same size, not a building block of it: in 04.1 (the
attention weights) PyTorch's fused attention is the piece, while in 04.2 (a whole
multi-head layer) it is a building block the answer may use, just as it may use bsr's
``explicit_attention``; there only whole layers, such as ``nn.MultiheadAttention``, count.

Pieces deliberately without peers:

* 01.2-01.4, the oracle masks: no package the course installs turns given stem
  spectrograms into masks.
* 06.1, the multi-resolution STFT loss: an STFT *inside* the loss is allowed. The exercise
  is the loss; the STFT was 01.1's, and the notebook's own answer calls ``torch.stft``.
  No package computes this loss (a complex L1 with ``n_fft = max(window, 2048)``); auraloss's
  multi-resolution losses, for one, compare magnitudes.
* 02.1, 02.2, 04.3, 05.2, 05.3, 06.2, 08.x, 09.x: the other packages write these inline
  (a constant table, a ``rearrange``, a product in a model's ``forward``) or not at all.
"""

from __future__ import annotations

STFT = (
    "torch.stft",
    "torch.istft",
    "librosa.stft",
    "librosa.istft",
    "scipy.signal.stft",
    "scipy.signal.istft",
    "scipy.signal.spectrogram",  # mode="complex" is an STFT
    "scipy.signal.ShortTimeFFT",  # every method: stft, istft, spectrogram, ...
    "torchaudio.functional.spectrogram",
    "torchaudio.functional.inverse_spectrogram",
    "torchaudio.transforms.Spectrogram",
    "torchaudio.transforms.InverseSpectrogram",
)
"""01.1: the STFT (and its inverse, which bsr's STFT class holds too)."""

RMS_NORM = (
    "torch.nn.RMSNorm",
    "torch.nn.functional.rms_norm",
    "torch.rms_norm",
    "bs_roformer.bs_roformer.RMSNorm",
    "bs_roformer.mel_band_roformer.RMSNorm",
)
"""02.3: RMSNorm. (02.4 and 05.1 may normalise any way they like: their piece is bigger.)"""

BAND_SPLIT = ("bs_roformer.bs_roformer.BandSplit", "bs_roformer.mel_band_roformer.BandSplit")
"""02.4: one RMSNorm and one Linear per band."""

ROPE = (
    "rotary_embedding_torch.RotaryEmbedding",  # its frequencies (03.1) and its rotation (03.2)
    "rotary_embedding_torch.apply_rotary_emb",
    # The pair swap (x1, x2) -> (-x2, x1) that the rotation is built from, the peer of
    # bsr.rope.as_complex_pairs.
    "rotary_embedding_torch.rotary_embedding_torch.rotate_half",
)
"""03.1 and 03.2: rotary position embeddings, as bs_roformer gets them."""

ATTENTION = ("torch.nn.functional.scaled_dot_product_attention", "bs_roformer.attend.Attend")
"""04.1: ``softmax(q k^T / sqrt(d)) v`` for given queries, keys and values."""

ATTENTION_LAYER = (
    "torch.nn.MultiheadAttention",
    "torch.nn.functional.multi_head_attention_forward",
    "bs_roformer.bs_roformer.Attention",
    "bs_roformer.mel_band_roformer.Attention",
)
"""04.1 and 04.2: a whole multi-head attention layer (projections, heads, attention)."""

MASK_ESTIMATOR = (
    "bs_roformer.bs_roformer.MaskEstimator",
    "bs_roformer.mel_band_roformer.MaskEstimator",
)
"""05.1: the per-band MLP and GLU that turn features into a mask."""

OVERLAP_ADD = (
    "torch.nn.functional.fold",  # sums overlapping windows: overlap-add itself
    "torch.nn.Fold",
    # An inverse STFT is a weighted overlap-add too: with the window sqrt(weights) and
    # frames rfft(chunk * sqrt(weights)), it returns sum(w * chunk) / sum(w).
    "torch.istft",
    "librosa.istft",
    "scipy.signal.istft",
    "scipy.signal.ShortTimeFFT.istft",
    "torchaudio.functional.inverse_spectrogram",
    "torchaudio.transforms.InverseSpectrogram",
)
"""07.1: chunked inference, put back together by weighted overlap-add."""

SDR = (
    "museval.evaluate",
    "museval.metrics.bss_eval",
    "museval.metrics.bss_eval_sources",
    "museval.metrics.bss_eval_images",
    "museval.metrics.bss_eval_sources_framewise",
    "museval.metrics.bss_eval_images_framewise",
    "mir_eval.separation.bss_eval_sources",
    "mir_eval.separation.bss_eval_images",
    "mir_eval.separation.bss_eval_sources_framewise",
    "mir_eval.separation.bss_eval_images_framewise",
    "fast_bss_eval.sdr",
    "fast_bss_eval.bss_eval_sources",
    "torchmetrics.functional.audio.signal_distortion_ratio",
    "torchmetrics.functional.audio.signal_noise_ratio",  # without zero_mean it IS the uSDR
)
"""07.2: signal-to-distortion ratios (BSS Eval's are not the uSDR, but they are an SDR)."""

PEERS: dict[str, tuple[str, ...]] = {
    "bsr.stft.STFT": STFT,
    "torch.stft": STFT,
    "torch.istft": STFT,
    "bsr.norm.RMSNorm.forward": RMS_NORM,
    "torch.nn.functional.rms_norm": RMS_NORM,
    "torch.rms_norm": RMS_NORM,
    "bsr.band_split.BandSplit": BAND_SPLIT,
    "bsr.rope.RotaryEmbedding": ROPE,
    "bsr.rope.as_complex_pairs": ROPE,
    "bsr.attention.explicit_attention": ATTENTION,
    "torch.nn.functional.scaled_dot_product_attention": ATTENTION,
    "bsr.attention.Attention": ATTENTION_LAYER,
    "bsr.attention.Attention.forward": ATTENTION_LAYER,
    "bsr.attention.Attention.explicit": ATTENTION_LAYER,
    "bsr.mask_estimator.BandMask.forward": MASK_ESTIMATOR,
    "bsr.mask_estimator.MaskEstimator": MASK_ESTIMATOR,
    "bsr.separate.separate_tensor": OVERLAP_ADD,
    "bsr.separate.separate": OVERLAP_ADD,
    "bsr.evaluate.metrics.usdr": SDR,
    "bsr.evaluate.metrics.bss_eval_v4": SDR,
}
"""A name a check refuses -> the same piece in other packages (and in PyTorch)."""
