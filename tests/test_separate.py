"""Chunked separation: equal to one pass where a window covers the song, no clicks."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_config

from bsr.errors import BsrError
from bsr.model import BSRoformer
from bsr.separate import read_audio, separate, separate_files, separate_tensor


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BSRoformer(tiny_config(stems=["vocals", "other"])).eval()


class Identity(torch.nn.Module):
    """A 'model' whose stems are the input times fixed gains: separation must return them."""

    stems = ["a", "b"]

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.stack([0.25 * x, 0.75 * x], dim=1)


def test_chunked_equals_one_pass_when_the_window_covers_the_input(model):
    audio = torch.randn(2, 4000)
    with torch.inference_mode():
        whole = model(audio[None])[0]
    assert torch.equal(separate_tensor(model, audio, window=4000, hop=2000), whole)


def test_overlap_add_is_exact_for_a_linear_model():
    audio = torch.randn(2, 10_001)
    for shape in ("hann", "triangle", "rectangle"):
        out = separate_tensor(Identity(), audio, window=1000, hop=300, shape=shape, batch_size=3)
        assert out.shape == (2, 2, 10_001)
        assert torch.allclose(out[0], 0.25 * audio, atol=1e-6)
        assert torch.allclose(out[1], 0.75 * audio, atol=1e-6)


def test_smooth_input_shows_no_jump_at_chunk_borders(model):
    """A slow sine in; the output's sample-to-sample steps at borders look like elsewhere."""
    rate, window, hop = 44100, 4410, 2205
    t = np.arange(5 * window) / rate
    audio = torch.from_numpy(np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32))
    out = separate_tensor(model, audio, window, hop)[0, 0].numpy()
    steps = np.abs(np.diff(out))
    borders = [b for b in range(hop, out.size - 1, hop)]
    typical = np.percentile(steps, 99.9)
    assert max(steps[b - 1 : b + 1].max() for b in borders) <= typical * 1.5
    # Naive concatenation of separately separated chunks does jump.
    naive = np.concatenate(
        [
            model(audio[None, :, s : s + window])[0, 0, 0].detach().numpy()
            for s in range(0, audio.shape[1], window)
        ]
    )
    naive_steps = np.abs(np.diff(naive))
    assert max(naive_steps[b - 1] for b in range(window, naive.size - 1, window)) > typical * 1.5


def test_any_rate_and_mono_input_keep_the_input_shape(model):
    mono = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
    stems = separate(mono, 22050, model, window_seconds=0.2, hop_seconds=0.1)
    assert set(stems) == {"vocals", "other"}
    assert stems["vocals"].shape == (1, 22050)
    silence = separate(np.zeros((2, 44100), np.float32), 44100, model)
    assert np.isfinite(silence["vocals"]).all()


def test_bad_audio_is_refused(model):
    with pytest.raises(BsrError, match="empty"):
        separate(np.zeros((2, 0), np.float32), 44100, model)
    bad = np.zeros((2, 1000), np.float32)
    bad[0, 10] = np.nan
    with pytest.raises(BsrError, match="NaN"):
        separate(bad, 44100, model)


def test_files_are_written_once_and_never_overwritten(model, tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((4410, 2), np.float32) + 0.01, 44100)
    written = separate_files([song], model, tmp_path / "out")
    assert sorted(p.name for p in written) == ["other.wav", "vocals.wav"]
    with pytest.raises(BsrError, match="already exists: pass --force"):
        separate_files([song], model, tmp_path / "out")
    separate_files([song], model, tmp_path / "out", force=True)
    text = tmp_path / "notes.wav"
    text.write_text("this is text")
    with pytest.raises(BsrError, match="cannot read"):
        read_audio(text)
    with pytest.raises(BsrError, match="is a directory"):
        read_audio(tmp_path)


# ---------------------------------------------------------------------------- memory rewrite


def previous_separate_tensor(model, audio, window, hop, shape="hann", batch_size=4):
    """``separate_tensor`` as it was before the bounded-memory rewrite (padded copy of the
    input, full-length output divided into a new tensor): the new one must equal it."""
    import math

    import torch.nn.functional as F

    from bsr.separate import chunk_weights

    channels, length = audio.shape
    if length <= window:
        return model(audio[None]).float()[0]
    pad = window - hop
    steps = math.ceil((length + pad) / hop)
    total = (steps - 1) * hop + window
    padded = F.pad(audio, (pad, total - length - pad))
    weights = chunk_weights(window, shape)
    out = torch.zeros(len(model.stems), channels, total)
    norm = torch.zeros(total)
    starts = list(range(0, total - window + 1, hop))
    for i in range(0, len(starts), batch_size):
        group = starts[i : i + batch_size]
        estimates = model(torch.stack([padded[:, s : s + window] for s in group])).float()
        for s, estimate in zip(group, estimates):
            out[..., s : s + window] += estimate * weights
            norm[s : s + window] += weights
    return (out / norm)[..., pad : pad + length]


class Toy(torch.nn.Module):
    """Nonlinear and context-dependent: each window's output depends on the whole window."""

    stems = ["a", "b", "c"]

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):  # (batch, channels, samples) -> (batch, stems, channels, samples)
        level = x.abs().mean(dim=(1, 2), keepdim=True)
        return torch.stack([torch.tanh(3 * x) * level, x.flip(1) - level, x * x], dim=1)


def float64_overlap_add(model, audio, window, hop, shape):
    """The textbook overlap-add in float64: pad, separate every window, weight, divide."""
    from bsr.separate import chunk_weights

    channels, length = audio.shape
    pad = window - hop
    padded = np.zeros((channels, length + 2 * window))
    padded[:, pad : pad + length] = audio.numpy()
    weights = chunk_weights(window, shape).double().numpy()
    out = np.zeros((len(model.stems), channels, padded.shape[1]))
    norm = np.zeros(padded.shape[1])
    start = 0
    while start < pad + length:  # every window that touches the song
        chunk = torch.from_numpy(padded[None, :, start : start + window].astype(np.float32))
        with torch.inference_mode():
            estimate = model(chunk)[0].double().numpy()
        out[..., start : start + window] += estimate * weights
        norm[start : start + window] += weights
        start += hop
    return out[..., pad : pad + length] / norm[pad : pad + length]


@pytest.mark.parametrize("shape", ["hann", "triangle", "rectangle"])
def test_overlap_add_equals_a_float64_reference(shape):
    audio = torch.randn(2, 7_777)
    for window, hop, batch in ((1000, 500, 4), (1000, 300, 3), (640, 640, 2), (999, 37, 16)):
        ours = separate_tensor(Toy(), audio, window, hop, shape=shape, batch_size=batch)
        reference = float64_overlap_add(Toy(), audio, window, hop, shape)
        assert ours.shape == (3, 2, audio.shape[1])
        np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


def test_overlap_add_is_bit_for_bit_what_it_was(model):
    for length in (3_000, 4_000, 12_345):
        audio = torch.randn(2, length)
        for window, hop, batch in ((4000, 2000, 4), (4000, 1500, 3), (2048, 2048, 1)):
            for shape in ("hann", "rectangle"):
                before = previous_separate_tensor(model, audio, window, hop, shape, batch)
                with torch.inference_mode():
                    before = before.clone()
                after = separate_tensor(model, audio, window, hop, shape, batch)
                assert torch.equal(after, before), (length, window, hop, batch, shape)


def test_output_is_one_array_of_views_without_copies(model):
    audio = np.random.default_rng(1).standard_normal((2, 20_000)).astype(np.float32) * 0.1
    stems = separate(audio, 44100, model, window_seconds=0.1, hop_seconds=0.05)
    vocals, other = stems["vocals"], stems["other"]
    assert vocals.dtype == np.float32 and vocals.flags.c_contiguous
    assert vocals.base is not None and vocals.base is other.base  # views of one array
    with torch.inference_mode():
        chunked = separate_tensor(model, torch.from_numpy(audio), 4410, 2205)
    assert np.array_equal(vocals, chunked[0].numpy())


# ---------------------------------------------------------------------------- channels


def test_many_channels_go_through_a_stereo_model_in_pairs(model):
    rng = np.random.default_rng(2)
    six = (0.1 * rng.standard_normal((6, 9_000))).astype(np.float32)
    options = dict(window_seconds=0.1, hop_seconds=0.05)
    stems = separate(six, 44100, model, **options)
    assert stems["vocals"].shape == (6, 9_000)
    for first in (0, 2, 4):
        pair = separate(six[first : first + 2], 44100, model, **options)
        assert np.array_equal(stems["vocals"][first : first + 2], pair["vocals"])
    # (samples, channels), as soundfile returns it, is recognised even for 6 channels.
    transposed = separate(np.ascontiguousarray(six.T), 44100, model, **options)
    assert np.array_equal(transposed["other"], stems["other"])
    # An odd last channel goes through the mono path: duplicated, averaged back.
    five = separate(six[:5], 44100, model, **options)
    mono = separate(six[4], 44100, model, **options)
    assert five["vocals"].shape == (5, 9_000)
    assert np.array_equal(five["vocals"][4:], mono["vocals"])
    assert np.array_equal(five["vocals"][:4], stems["vocals"][:4])


def test_mono_through_a_stereo_model_is_the_mean_of_the_duplicate(model):
    mono = (0.1 * np.random.default_rng(3).standard_normal(9_000)).astype(np.float32)
    stems = separate(mono, 44100, model, window_seconds=0.1, hop_seconds=0.05)
    both = torch.from_numpy(mono)[None].expand(2, -1)
    with torch.inference_mode():
        expected = separate_tensor(model, both, 4410, 2205).mean(dim=1, keepdim=True)
    assert np.array_equal(stems["vocals"], expected[0].numpy())


def test_a_mono_model_takes_any_channel_count():
    torch.manual_seed(0)
    mono_model = BSRoformer(tiny_config(channels=1, stems=["vocals"])).eval()
    three = (0.1 * np.random.default_rng(4).standard_normal((3, 6_000))).astype(np.float32)
    stems = separate(three, 44100, mono_model, window_seconds=0.1, hop_seconds=0.05)
    assert stems["vocals"].shape == (3, 6_000)
    alone = separate(three[1], 44100, mono_model, window_seconds=0.1, hop_seconds=0.05)
    assert np.array_equal(stems["vocals"][1:2], alone["vocals"])


def test_channel_layout_guess():
    from bsr.separate import as_channels_first, channel_groups

    assert as_channels_first(np.zeros((441_000, 6))).shape == (6, 441_000)
    assert as_channels_first(np.zeros((6, 441_000))).shape == (6, 441_000)
    assert as_channels_first(np.zeros(100)).shape == (1, 100)
    assert as_channels_first(np.zeros((3, 2)), channels_hint=2).shape == (2, 3)
    with pytest.raises(BsrError, match="at most 64 channels"):
        as_channels_first(np.zeros((100, 1000)))
    with pytest.raises(BsrError, match="not \\(channels, samples\\)"):
        as_channels_first(np.zeros((2, 3, 4)))
    assert channel_groups(6, 2) == [[0, 1], [2, 3], [4, 5]]
    assert channel_groups(3, 2) == [[0, 1], [2, 2]]
    assert channel_groups(1, 2) == [[0, 0]]
    assert channel_groups(2, 1) == [[0], [1]]
