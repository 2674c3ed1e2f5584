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
