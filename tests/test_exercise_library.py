"""No exercise can be passed by calling the library it asks the learner to write.

Every check compares the learner's answer with the library, so an answer that *is* the
library would pass, and nothing would have been learnt. :data:`LIBRARY_ANSWERS` gives, for
every exercise whose piece the library has, the answer a learner could import or call
instead of writing it; each must fail, and the failure must say that the library was
called. Exercises without a library counterpart are listed in :data:`NO_LIBRARY` with
the reason, and the two lists together must cover every registered exercise.

The same machinery must not get in the way of honest answers: hand-written answers that
use other library pieces pass, and the profiler is gone after a check.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import check_fails

import bsr.check
from bsr.attention import explicit_attention
from bsr.audio import excerpt
from bsr.band_split import BandSplit
from bsr.bands import paper_band_sizes
from bsr.check.nb01 import _manual_stft
from bsr.evaluate import usdr
from bsr.loss import multi_resolution_stft_loss
from bsr.mask_estimator import BandMask
from bsr.norm import RMSNorm
from bsr.roformer import RoFormerBlock
from bsr.rope import RotaryEmbedding
from bsr.separate import separate_tensor
from bsr.stft import STFT, complex_to_features
from bsr.train import lr_factor
from bsr.viz.attention import mean_attention_distance, record_attention, uniform_attention_distance


def _rms_norm(x, gamma):
    norm = RMSNorm(x.shape[-1])
    with torch.no_grad():
        norm.gamma.copy_(gamma)
        return norm(x)


def _band_split(features, feature_sizes, gammas, weights, biases):
    module = BandSplit(feature_sizes, weights[0].shape[0])
    with torch.no_grad():
        for band, gamma, weight, bias in zip(module.bands, gammas, weights, biases):
            band.norm.gamma.copy_(gamma)
            band.linear.weight.copy_(weight)
            band.linear.bias.copy_(bias)
        return module(features)


def _roformer_block(x, time_transformer, band_transformer, time_rope, band_rope):
    block = RoFormerBlock(1, 1, dim=x.shape[-1], heads=2, dim_head=8, attn_dropout=0.0,
                          ff_dropout=0.0, ff_mult=1, gates=False)  # fmt: skip
    block.time_transformer, block.band_transformer = time_transformer, band_transformer
    return block(x, time_rope, band_rope)


def _band_mask(x, gamma, w1, b1, w2, b2):
    head = BandMask(x.shape[-1], w2.shape[0] // 2, depth=2, expansion=w1.shape[0] // x.shape[-1],
                    norm=True)  # fmt: skip
    first, second = head.mlp[0], head.mlp[2]
    params = (head.norm.gamma, first.weight, first.bias, second.weight, second.bias)
    with torch.no_grad():
        for p, value in zip(params, (gamma, w1, b1, w2, b2)):
            p.copy_(value)
        return head(x)


def _overlap_add(model, audio, window, hop, weights):
    return separate_tensor(model, audio, window, hop, "hann")


LIBRARY_ANSWERS = {
    "01.1": lambda audio, n_fft, hop: STFT(n_fft, hop)(audio),
    "02.1": paper_band_sizes,
    "02.2": complex_to_features,
    "02.3": _rms_norm,
    "02.4": _band_split,
    "03.1": lambda dim_head, theta: RotaryEmbedding(dim_head, theta).inv_freq,
    "03.2": lambda x, theta: RotaryEmbedding(x.shape[-1], theta)(x),
    "04.1": explicit_attention,
    "04.2": lambda x, layer, rope: layer(x, rope),
    "04.3": _roformer_block,
    "05.1": _band_mask,
    "05.2": lambda masks, spec: masks * spec.unsqueeze(1),
    "05.3": lambda model, spec: model.estimate_masks(spec),
    "06.1": multi_resolution_stft_loss,
    "06.2": lr_factor,
    "07.1": _overlap_add,
    "07.2": usdr,
    "08.1": lambda model, audio, layer: record_attention(model, audio, layer),
    "08.2": lambda w: mean_attention_distance(w) / uniform_attention_distance(w.shape[-1]),
    "09.1": excerpt,
}

# The same exercises answered with the other library route a learner might find.
OTHER_LIBRARY_ANSWERS = {
    "01.1": lambda audio, n_fft, hop: torch.stft(
        audio.reshape(-1, audio.shape[-1]),
        n_fft,
        hop,
        window=torch.hann_window(n_fft),
        return_complex=True,
    ).reshape(*audio.shape[:-1], n_fft // 2 + 1, -1),
    "02.3": lambda x, gamma: F.rms_norm(x, (x.shape[-1],), gamma, eps=1e-12),
    "04.1": lambda q, k, v: (
        F.scaled_dot_product_attention(q, k, v),
        (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1),
    ),
    "04.2": lambda x, layer, rope: layer.explicit(x, rope)[0],
}

NO_LIBRARY = {
    "01.2": "ideal ratio masks of given stem spectrograms: the library's oracles start from audio",
    "01.3": "ideal binary masks of given stem spectrograms: the library's oracles start from audio",
    "01.4": "the complex ratio mask S / X: the library has no such oracle (it was removed)",
    "09.2": "karaoke, mixture - vocals: one subtraction, no library function to call",
}


def test_every_exercise_is_covered():
    bsr.check._load_all()
    # Predictions (NN.P) are answered with a value, not code: nothing to watch for.
    registered = {name for name in bsr.check.EXERCISES if not name.endswith(".P")}
    assert not set(LIBRARY_ANSWERS) & set(NO_LIBRARY)
    assert set(LIBRARY_ANSWERS) | set(NO_LIBRARY) == registered
    assert set(OTHER_LIBRARY_ANSWERS) <= registered
    for exercise_id in LIBRARY_ANSWERS:
        assert bsr.check.LIBRARY[exercise_id], f"{exercise_id} names no library to watch for"


@pytest.mark.parametrize("exercise_id", sorted(LIBRARY_ANSWERS))
def test_library_answer_fails(exercise_id):
    """The library's own version, handed in as the answer, fails and is named."""
    message = check_fails(exercise_id, LIBRARY_ANSWERS[exercise_id], f"exercise {exercise_id}")
    assert "library" in message or "complex tensors" in message, message


@pytest.mark.parametrize("exercise_id", sorted(OTHER_LIBRARY_ANSWERS))
def test_other_library_route_fails(exercise_id):
    message = check_fails(exercise_id, OTHER_LIBRARY_ANSWERS[exercise_id], "library")
    assert exercise_id in message


def test_library_call_hidden_in_a_helper_is_found():
    """A call from the learner's own helper function is still the learner's call."""

    def helper(audio, n_fft, hop):
        return STFT(n_fft, hop)(audio)

    def stft(audio, n_fft, hop):
        return helper(audio, n_fft, hop)

    check_fails("01.1", stft, "bsr.stft.STFT")


def test_honest_answers_pass_and_leave_no_profiler(capsys):
    """Hand-written answers pass, even where the check itself runs the library."""

    def stft(audio, n_fft, hop):  # frames and rfft (the check's own builder of slips)
        return _manual_stft(audio, n_fft, hop, torch.hann_window(n_fft), "reflect")

    def apply_complex_mask(masks, spec):
        spec = spec.unsqueeze(1)  # the check's own reference multiplies complex tensors
        real = masks.real * spec.real - masks.imag * spec.imag
        return torch.complex(real, masks.real * spec.imag + masks.imag * spec.real)

    def lr(step, warmup_steps, decay, decay_every):
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        return warm * decay ** (step // decay_every)

    before = sys.getprofile()
    bsr.check.exercise("01.1", stft)
    bsr.check.exercise("05.2", apply_complex_mask)
    bsr.check.exercise("06.2", lr)
    assert capsys.readouterr().out.count("passed") == 3
    check_fails("06.2", lr_factor, "library")
    assert sys.getprofile() is before


def test_multi_head_attention_may_use_the_rope_it_is_given():
    """04.2 hands the learner a RotaryEmbedding: calling it is the point, not a shortcut."""

    def multi_head_attention(x, layer, rope):
        batch, seq, _ = x.shape
        qkv = layer.to_qkv(layer.norm(x)).view(batch, seq, 3, layer.heads, layer.dim_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, seq, dim_head)
        q, k = rope(q), rope(k)
        weights = (q @ k.transpose(-2, -1) / layer.dim_head**0.5).softmax(-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, seq, -1)
        return layer.to_out(out)

    bsr.check.exercise("04.2", multi_head_attention)
