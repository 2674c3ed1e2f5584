"""No exercise can be passed by calling *another* package's version of the piece either.

tests/test_exercise_library.py shows that an answer calling bsr's (or PyTorch's) own version
of an exercise's piece fails. Here the same piece comes from elsewhere, as a learner might
find it: librosa's or SciPy's STFT, ``nn.RMSNorm``, bs_roformer's band split or attention,
``rotary_embedding_torch``, ``F.fold``, museval. Each answer below is written as a learner
would write it with that package, and must fail with the message an answer calling bsr's
version gets; where the answer would otherwise *pass*, a second test shows that it does
once the peers are no longer watched, so the failure really comes from the watch.

Then the checks that had a way round them: 05.2's complex product written as a division,
08.1's hook left behind when the forward pass fails, 01.3's ties and silent bins; and the
notebooks' own reference answers, which must still pass every check.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, check_fails

import bsr.check
import bsr.check.watch as watch
from bsr.check.equivalents import PEERS


def _library_message(name: str) -> str:
    return f"your answer calls {name}, the library's own version"


def _need(module: str) -> None:
    """Skip unless ``module`` imports (museval also needs ffmpeg on PATH)."""
    if module.startswith("museval"):
        from bsr.ffmpeg import ensure_ffmpeg

        try:
            ensure_ffmpeg()
        except Exception as error:  # any reason means: it cannot be tested here
            pytest.skip(f"museval needs ffmpeg: {error}")
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module.split('.')[0]} is not installed")
    if not watch.installed(module):
        pytest.skip(f"{module} does not import here")


# -- 01.1 the STFT ---------------------------------------------------------------------------


def _librosa_stft(audio, n_fft, hop):
    import librosa

    spec = librosa.stft(audio.numpy(), n_fft=n_fft, hop_length=hop, pad_mode="reflect")
    return torch.from_numpy(spec)


def _scipy_stft(audio, n_fft, hop):
    from scipy import signal

    _, _, spec = signal.stft(
        audio.numpy(),
        window="hann",
        nperseg=n_fft,
        noverlap=n_fft - hop,
        boundary="even",
        padded=False,
    )
    return torch.from_numpy(spec * signal.get_window("hann", n_fft).sum())  # undo its scaling


def _scipy_short_time_fft(audio, n_fft, hop):
    from scipy import signal

    window = signal.get_window("hann", n_fft)  # phase measured from the frame's first sample:
    sft = signal.ShortTimeFFT(window, hop, fs=1, mfft=n_fft, phase_shift=n_fft // 2)
    spec = sft.stft(audio.numpy(), p0=0, p1=audio.shape[-1] // hop + 1, padding="even")
    return torch.from_numpy(spec).to(torch.complex64)


def _scipy_spectrogram(audio, n_fft, hop):
    from scipy import signal

    padded = np.pad(
        audio.numpy(), [(0, 0)] * (audio.dim() - 1) + [(n_fft // 2, n_fft // 2)], mode="reflect"
    )
    _, _, spec = signal.spectrogram(
        padded,
        window="hann",
        nperseg=n_fft,
        noverlap=n_fft - hop,
        detrend=False,
        mode="complex",
        scaling="spectrum",
    )
    return torch.from_numpy(spec * signal.get_window("hann", n_fft).sum())


def _torchaudio_spectrogram(audio, n_fft, hop):
    from torchaudio.transforms import Spectrogram

    return Spectrogram(n_fft, hop_length=hop, power=None, pad_mode="reflect")(audio)


# -- 02.3 RMSNorm, 02.4 the band split -------------------------------------------------------


def _torch_rms_norm(x, gamma):
    norm = torch.nn.RMSNorm(x.shape[-1])
    with torch.no_grad():
        norm.weight.copy_(gamma)
        return norm(x)


def _bs_roformer_rms_norm(module):
    def rms_norm(x, gamma):
        norm = importlib.import_module(module).RMSNorm(x.shape[-1])
        with torch.no_grad():
            norm.gamma.copy_(gamma)
            return norm(x)

    return rms_norm


def _bs_roformer_band_split(features, feature_sizes, gammas, weights, biases):
    from bs_roformer.bs_roformer import BandSplit

    split = BandSplit(weights[0].shape[0], tuple(feature_sizes))
    with torch.no_grad():
        for (norm, linear), gamma, weight, bias in zip(split.to_features, gammas, weights, biases):
            norm.gamma.copy_(gamma)
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        return split(features)


# -- 03.1 / 03.2 RoPE ------------------------------------------------------------------------


def _rotary_frequencies(dim_head, theta=10000.0):
    from rotary_embedding_torch import RotaryEmbedding

    return RotaryEmbedding(dim_head, theta=theta).freqs.detach()


def _rotary_rotate(x, theta=10000.0):
    from rotary_embedding_torch import RotaryEmbedding

    return RotaryEmbedding(x.shape[-1], theta=theta).rotate_queries_or_keys(x)


def _angles(x, theta):
    """(seq, dim_head): the angle m * w_i of every feature, each pair's twice."""
    seq, dim = x.shape[-2:]
    w = theta ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    return (torch.arange(seq, dtype=torch.float32)[:, None] * w).repeat_interleave(2, dim=-1)


def _apply_rotary_emb(x, theta=10000.0):
    from rotary_embedding_torch import apply_rotary_emb

    return apply_rotary_emb(_angles(x, theta), x)


def _rotate_half(x, theta=10000.0):
    from rotary_embedding_torch.rotary_embedding_torch import rotate_half

    angles = _angles(x, theta)
    return x * angles.cos() + rotate_half(x) * angles.sin()


# -- 04.1 / 04.2 attention -------------------------------------------------------------------


def _weights(q, k):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)


def _attend(q, k, v):
    from bs_roformer.attend import Attend

    return Attend(flash=False)(q, k, v), _weights(q, k)


def _multihead_attention(q, k, v):
    batch, heads, _, d = q.shape
    mha = torch.nn.MultiheadAttention(d, 1, bias=False, batch_first=True)
    with torch.no_grad():  # identity projections: just the attention
        mha.in_proj_weight.copy_(torch.eye(d).repeat(3, 1))
        mha.out_proj.weight.copy_(torch.eye(d))
        out, weights = mha(
            q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), average_attn_weights=False
        )
    return out.unflatten(0, (batch, heads)), weights[:, 0].unflatten(0, (batch, heads))


def _qkv(x, layer, rope):
    batch, seq, _ = x.shape
    qkv = layer.to_qkv(layer.norm(x)).view(batch, seq, 3, layer.heads, layer.dim_head)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (batch, heads, seq, dim_head) each
    return rope(q), rope(k), v


def _multihead_layer(x, layer, rope):
    batch, seq, _ = x.shape
    width = layer.heads * layer.dim_head
    q, k, v = (t.transpose(1, 2).reshape(batch, seq, width) for t in _qkv(x, layer, rope))
    mha = torch.nn.MultiheadAttention(width, layer.heads, bias=False, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.eye(width).repeat(3, 1))
        mha.out_proj.weight.copy_(layer.to_out.weight)
        return mha(q, k, v, need_weights=False)[0]


def _bs_roformer_attention_layer(x, layer, rope):
    from bs_roformer.bs_roformer import Attention
    from rotary_embedding_torch import RotaryEmbedding

    theirs = Attention(
        x.shape[-1],
        layer.heads,
        layer.dim_head,
        flash=False,
        rotary_embed=RotaryEmbedding(layer.dim_head),
    )
    with torch.no_grad():
        theirs.norm.gamma.copy_(layer.norm.gamma)
        theirs.to_qkv.weight.copy_(layer.to_qkv.weight)
        theirs.to_gates.weight.zero_()
        theirs.to_gates.bias.fill_(40.0)  # sigmoid(40) = 1: no gating
        theirs.to_out[0].weight.copy_(layer.to_out.weight)
        return theirs(x)


# -- 05.1 the mask head ----------------------------------------------------------------------


def _bs_roformer_mask_estimator(x, gamma, w1, b1, w2, b2):
    from bs_roformer.bs_roformer import MaskEstimator

    dim = x.shape[-1]
    head = MaskEstimator(dim, (w2.shape[0] // 2,), depth=2, mlp_expansion_factor=w1.shape[0] // dim)
    first, second = head.to_freqs[0][0][0], head.to_freqs[0][0][2]
    with torch.no_grad():
        for p, value in zip(
            (first.weight, first.bias, second.weight, second.bias), (w1, b1, w2, b2)
        ):
            p.copy_(value)
        x = F.normalize(x, dim=-1) * dim**0.5 * gamma  # the RMSNorm, written out
        return head(x[..., None, :])  # one band


# -- 07.1 overlap-add, 07.2 the SDR ----------------------------------------------------------


def _chunk_estimates(model, audio, window, hop):
    """(steps, stems, C, W) model outputs of the padded chunks, the padding, the total."""
    length = audio.shape[-1]
    pad = window - hop
    steps = math.ceil((length + pad) / hop)
    total = (steps - 1) * hop + window
    padded = F.pad(audio, (pad, total - length - pad))
    with torch.no_grad():
        return model(padded.unfold(-1, window, hop).transpose(0, 1)), pad, total


def _fold_overlap_add(model, audio, window, hop, weights):
    chunks, pad, total = _chunk_estimates(model, audio, window, hop)
    steps, stems, channels, _ = chunks.shape
    columns = (chunks * weights).permute(1, 2, 3, 0).reshape(1, -1, steps)  # (1, S*C*W, steps)
    out = F.fold(columns, (1, total), (1, window), stride=(1, hop)).reshape(stems, channels, -1)
    norm = F.fold(
        weights[None, :, None].expand(1, window, steps), (1, total), (1, window), stride=(1, hop)
    ).reshape(-1)
    return (out / norm)[..., pad : pad + audio.shape[-1]]


def _istft_overlap_add(model, audio, window, hop, weights):
    chunks, pad, total = _chunk_estimates(model, audio, window, hop)
    steps, stems, channels, _ = chunks.shape
    root = weights.sqrt()  # istft: sum(root * frame) / sum(root^2) = sum(w chunk) / sum(w)
    frames = torch.fft.rfft(chunks * root, dim=-1).permute(1, 2, 3, 0).flatten(0, 1)
    out = torch.istft(frames, window, hop, window=root, center=False, length=total)
    return out.reshape(stems, channels, -1)[..., pad : pad + audio.shape[-1]]


def _librosa_overlap_add(model, audio, window, hop, weights):
    import librosa

    chunks, pad, total = _chunk_estimates(model, audio, window, hop)
    steps, stems, channels, _ = chunks.shape
    root = weights.sqrt()
    frames = torch.fft.rfft(chunks * root, dim=-1).permute(1, 2, 3, 0).numpy()
    out = librosa.istft(
        frames, hop_length=hop, n_fft=window, window=root.numpy(), center=False, length=total
    )
    return torch.from_numpy(out)[..., pad : pad + audio.shape[-1]]


def _museval_sdr(reference, estimate):
    from museval import metrics

    sdr, *_ = metrics.bss_eval(
        reference[None],
        estimate[None],
        window=np.inf,
        hop=np.inf,
        compute_permutation=False,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    return float(sdr[0, 0])


def _museval_evaluate(reference, estimate):
    import museval

    sdr, *_ = museval.evaluate(reference[None], estimate[None], win=np.inf, hop=np.inf)
    return float(sdr[0, 0])


def _mir_eval_sdr(reference, estimate):
    from mir_eval.separation import bss_eval_images

    return float(bss_eval_images(reference[None], estimate[None])[0][0])


def _fast_bss_eval_sdr(reference, estimate):
    import fast_bss_eval

    return float(np.mean(fast_bss_eval.sdr(reference.T, estimate.T)))


def _torchmetrics_snr(reference, estimate):
    from torchmetrics.functional.audio import signal_noise_ratio

    preds, target = torch.from_numpy(estimate).flatten(), torch.from_numpy(reference).flatten()
    return float(signal_noise_ratio(preds, target, zero_mean=False))


# (exercise, the peer the message names, the answer, whether it would pass unwatched; only
# answers seen to pass say True)
PEER_ANSWERS = [
    ("01.1", "librosa.stft", _librosa_stft, True),
    ("01.1", "scipy.signal.stft", _scipy_stft, True),
    ("01.1", "scipy.signal.ShortTimeFFT", _scipy_short_time_fft, True),
    ("01.1", "scipy.signal.spectrogram", _scipy_spectrogram, True),
    ("01.1", "torchaudio.transforms.Spectrogram", _torchaudio_spectrogram, False),  # unverified
    ("02.3", "torch.nn.RMSNorm", _torch_rms_norm, False),  # caught before, as F.rms_norm
    (
        "02.3",
        "bs_roformer.bs_roformer.RMSNorm",
        _bs_roformer_rms_norm("bs_roformer.bs_roformer"),
        True,
    ),
    (
        "02.3",
        "bs_roformer.mel_band_roformer.RMSNorm",
        _bs_roformer_rms_norm("bs_roformer.mel_band_roformer"),
        True,
    ),
    ("02.4", "bs_roformer.bs_roformer.BandSplit", _bs_roformer_band_split, True),
    ("03.1", "rotary_embedding_torch.RotaryEmbedding", _rotary_frequencies, True),
    ("03.2", "rotary_embedding_torch.RotaryEmbedding", _rotary_rotate, True),
    ("03.2", "rotary_embedding_torch.apply_rotary_emb", _apply_rotary_emb, True),
    ("03.2", "rotary_embedding_torch.rotary_embedding_torch.rotate_half", _rotate_half, True),
    ("04.1", "bs_roformer.attend.Attend", _attend, True),
    ("04.1", "torch.nn.MultiheadAttention", _multihead_attention, True),
    ("04.2", "torch.nn.MultiheadAttention", _multihead_layer, True),
    ("04.2", "bs_roformer.bs_roformer.Attention", _bs_roformer_attention_layer, True),
    ("05.1", "bs_roformer.bs_roformer.MaskEstimator", _bs_roformer_mask_estimator, True),
    ("07.1", "torch.nn.functional.fold", _fold_overlap_add, True),
    ("07.1", "torch.istft", _istft_overlap_add, True),
    ("07.1", "librosa.istft", _librosa_overlap_add, True),
    ("07.2", "museval.metrics.bss_eval", _museval_sdr, False),  # an SDR, but not the uSDR
    ("07.2", "museval.evaluate", _museval_evaluate, False),
    # Not installed where these tests were written: each is only expected to be refused.
    ("07.2", "mir_eval.separation.bss_eval_images", _mir_eval_sdr, False),
    ("07.2", "fast_bss_eval.sdr", _fast_bss_eval_sdr, False),
    ("07.2", "torchmetrics.functional.audio.signal_noise_ratio", _torchmetrics_snr, False),
]


def _cases(only_passing: bool = False):
    return [
        pytest.param(exercise_id, peer, answer, id=f"{exercise_id}-{peer}")
        for exercise_id, peer, answer, passes in PEER_ANSWERS
        if passes or not only_passing
    ]


@pytest.mark.parametrize("exercise_id, peer, answer", _cases())
def test_peer_answer_fails_like_the_library(exercise_id, peer, answer):
    _need(peer)
    message = check_fails(exercise_id, answer, f"exercise {exercise_id}", _library_message(peer))
    assert "write it yourself" in message


@pytest.mark.parametrize("exercise_id, peer, answer", _cases(only_passing=True))
def test_peer_answer_would_pass_unwatched(exercise_id, peer, answer, monkeypatch, capsys):
    """Without the peers table the same answer passes: the peer really is the piece, and the
    failure above comes from the watch, not from a wrong answer."""
    _need(peer)
    monkeypatch.setattr(watch, "PEERS", {})
    bsr.check.exercise(exercise_id, answer)
    assert f"exercise {exercise_id}: passed" in capsys.readouterr().out


def test_every_peer_key_is_a_name_some_check_refuses():
    bsr.check._load_all()
    refused = {name for names in bsr.check.LIBRARY.values() for name in names}
    assert set(PEERS) <= refused, sorted(set(PEERS) - refused)


def test_every_peer_of_an_installed_package_resolves():
    """A misspelt peer would silently never be watched; spelt right, it resolves."""
    from bsr.ffmpeg import ensure_ffmpeg

    peers = {peer for group in PEERS.values() for peer in group}
    present = [p for p in sorted(peers) if importlib.util.find_spec(p.split(".")[0])]
    try:
        ensure_ffmpeg()  # museval imports stempeg, which refuses to import without ffmpeg
    except Exception:
        present = [p for p in present if not p.startswith("museval")]
    assert any(p.startswith("librosa") for p in present)  # the test looks at something
    missing = [p for p in present if not watch.installed(p)]
    assert not missing, f"installed packages without these names: {missing}"


def test_a_peer_that_does_not_import_is_not_watched(monkeypatch):
    table = {
        "bsr.stft.STFT": ("no_such_package.stft", "torch.nn.functional.no_such_thing", "torch.stft")
    }
    monkeypatch.setattr(watch, "PEERS", table)
    assert watch.with_peers(["bsr.stft.STFT"]) == ("bsr.stft.STFT", "torch.stft")


def test_an_installed_peer_handed_in_directly_fails():
    """The check calls such an answer from bsr's code: the answer itself is looked at."""
    _need("torch.nn.RMSNorm")
    check_fails("02.3", torch.nn.RMSNorm(20), _library_message("torch.nn.RMSNorm"))


# -- 05.2: a division is a product too -----------------------------------------------------


def _via_complex(masks, spec):
    """Rebuild both as complex tensors from their parts, then multiply."""
    a = torch.view_as_complex(torch.stack((masks.real, masks.imag), -1))
    b = torch.view_as_complex(torch.stack((spec.real, spec.imag), -1)).unsqueeze(1)
    return torch.mul(a, b)


def _in_place(masks, spec):
    out = masks.clone()
    out *= spec.unsqueeze(1)
    return out


SPELLINGS = {
    "a / (1 / b)": lambda m, s: m / (1 / s.unsqueeze(1)),
    "torch.div": lambda m, s: torch.div(m, 1 / s.unsqueeze(1)),
    "reciprocal, div_": lambda m, s: m.clone().div_(s.unsqueeze(1).reciprocal()),
    "view_as_complex, torch.mul": _via_complex,
    "in place *=": _in_place,
    "einsum": lambda m, s: torch.einsum("bsxft,bxft->bsxft", m, s),
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_complex_product_in_another_spelling_fails(spelling):
    check_fails("05.2", SPELLINGS[spelling], "exercise 05.2", "divides) two complex tensors")


# -- 08.1: the hook goes even when the forward pass fails ----------------------------------


def _time_attention(finally_remove: bool):
    def time_attention(model, audio, layer):
        attention = model.layers[layer].time_transformer.layers[0].attention
        caught = []

        def hook(module, inputs, output):
            caught.append(module.explicit(*inputs)[1])

        handle = attention.register_forward_hook(hook)
        if finally_remove:
            try:
                with torch.no_grad():
                    model(audio)
            finally:
                handle.remove()
        else:  # removed only when all went well
            with torch.no_grad():
                model(audio)
            handle.remove()
        return caught[-1]

    return time_attention


def test_hook_removed_only_on_success_fails(capsys):
    bsr.check.exercise("08.1", _time_attention(finally_remove=True))
    assert "exercise 08.1: passed" in capsys.readouterr().out
    check_fails("08.1", _time_attention(finally_remove=False), "forward pass fails", "finally")


# -- 01.3: ties and silent bins ------------------------------------------------------------


def _binary(rule: str):
    def binary_masks(stem_specs):
        mags = stem_specs.abs()
        if rule == "all loudest":  # every stem that ties for the loudest gets a 1
            return (mags == mags.amax(dim=0, keepdim=True)).float()
        if rule == "last of the loudest":
            last = mags.shape[0] - 1 - mags.flip(0).argmax(dim=0, keepdim=True)
            return torch.zeros(mags.shape).scatter_(0, last, 1.0)
        first = torch.zeros(mags.shape).scatter_(0, mags.argmax(dim=0, keepdim=True), 1.0)
        if rule == "silent bins 0":
            return torch.where(mags.sum(dim=0) > 0, first, 0.0)
        return first  # "argmax", the notebook's answer

    return binary_masks


@pytest.mark.parametrize(
    "rule, fragment",
    [
        ("all loudest", "only one gets the 1"),
        ("last of the loudest", "first of them"),
        ("silent bins 0", "every stem is silent"),
    ],
)
def test_binary_mask_ties_and_silent_bins(rule, fragment, capsys):
    check_fails("01.3", _binary(rule), "binary_masks", fragment)
    bsr.check.exercise("01.3", _binary("argmax"))
    assert "exercise 01.3: passed" in capsys.readouterr().out


# -- the notebooks' own answers still pass -------------------------------------------------

NOTEBOOKS = REPO / "notebooks"
SOLUTION = re.compile(r"^# Exercise (\d\d\.\d+)", re.MULTILINE)


def _solutions() -> list:
    """(notebook, exercise ID, solution source, check source) for every exercise."""
    out = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        for cell, following in zip(cells, cells[1:]):
            source = "".join(cell["source"])
            found = SOLUTION.search(source)
            if found and "BEGIN SOLUTION" in source:
                check = "".join(following["source"])
                out.append(pytest.param(path, source, check, id=found.group(1)))
    return out


def _imports(path) -> str:
    """Every top-level import statement of the notebook's code cells."""
    statements = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # a cell with IPython magics holds no import we need
            continue
        statements += [
            ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
        ]
    return "\n".join(statements)


@pytest.mark.parametrize("path, solution, check", _solutions())
def test_notebook_reference_answer_passes(path, solution, check, capsys):
    """Each notebook's reference answer passes its check (without running the notebook)."""
    assert "bsr.check.exercise(" in check
    namespace: dict = {}
    exec(compile(_imports(path), f"<{path.name} imports>", "exec"), namespace)
    exec(compile(solution, str(path), "exec"), namespace)
    exec(compile(check, str(path), "exec"), namespace)
    assert "passed" in capsys.readouterr().out
