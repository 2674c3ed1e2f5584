import numpy as np
import torch

from bsr.stft import STFT, complex_to_features, features_to_complex


def test_round_trip_returns_input_of_any_length():
    stft = STFT(n_fft=512, hop_length=128)
    for samples in (4096, 4097, 5000):
        audio = torch.randn(2, 2, samples)
        spec = stft(audio)
        assert spec.shape == (2, 2, 257, samples // 128 + 1)
        back = stft.inverse(spec, samples)
        assert back.shape == audio.shape
        assert torch.allclose(back, audio, atol=1e-5)


def test_stft_matches_numpy_reference():
    """A float64 numpy STFT (reflect pad, periodic Hann, rfft) is an independent check."""
    n_fft, hop = 256, 64
    audio = torch.randn(1000, dtype=torch.float64)
    ours = STFT(n_fft, hop)(audio.float()).numpy()
    x = np.pad(audio.numpy(), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = [x[t * hop : t * hop + n_fft] * window for t in range(1000 // hop + 1)]
    reference = np.fft.rfft(np.stack(frames), axis=-1).T
    assert np.allclose(ours, reference, atol=1e-4)


def test_features_are_frequency_major_then_channel_then_real_imag():
    spec = torch.randn(1, 2, 3, 4, dtype=torch.complex64)  # (batch, channels, bins, frames)
    features = complex_to_features(spec)
    assert features.shape == (1, 4, 3 * 2 * 2)
    for t in range(4):
        for f in range(3):
            for c in range(2):
                assert features[0, t, 2 * (2 * f + c)] == spec[0, c, f, t].real
                assert features[0, t, 2 * (2 * f + c) + 1] == spec[0, c, f, t].imag
    assert torch.equal(features_to_complex(features, channels=2), spec)
