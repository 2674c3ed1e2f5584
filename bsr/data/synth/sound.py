"""The synthesiser's building blocks: oscillators, envelopes, filters, placing sounds.

Every instrument (:mod:`~bsr.data.synth.drums`, :mod:`~bsr.data.synth.bass`,
:mod:`~bsr.data.synth.other`, :mod:`~bsr.data.synth.vocals`) is made of these textbook
pieces, numpy and scipy only. Two habits keep them fast: music repeats, so a note is
rendered once and *copied* to every place it occurs (:class:`NoteCache`, :func:`place`);
and whatever runs along the whole song is a few array operations, never a Python loop
per sample. A mono signal is ``(samples,)``, a stereo one ``(samples, 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import signal

TABLE_SIZE = 4096


def midi_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Frequency in Hz of a MIDI note number (69 = A4 = 440 Hz, 12 numbers per octave)."""
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def wavetable(amplitudes: np.ndarray) -> np.ndarray:
    """One period of the wave with harmonic ``amplitudes`` (k = 1, 2, ...), shape (TABLE_SIZE,).

    Building a wave from harmonics lets us stop below the Nyquist frequency, so the
    oscillator does not *alias* (fold harmonics above sample_rate / 2 back down).
    """
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=complex)
    k = min(len(amplitudes), TABLE_SIZE // 2 - 1)
    spectrum[1 : k + 1] = -1j * np.asarray(amplitudes[:k])  # sine phase
    table = np.fft.irfft(spectrum, TABLE_SIZE) * (TABLE_SIZE / 2)
    return table / np.max(np.abs(table))


def _harmonics(freq: float, sample_rate: int, limit: int = 400) -> np.ndarray:
    """Harmonic numbers 1..K of ``freq`` that stay below 0.45 * sample_rate."""
    count = int(0.45 * sample_rate / max(freq, 1.0))
    return np.arange(1, max(1, min(count, limit)) + 1, dtype=float)


def saw_table(freq: float, sample_rate: int) -> np.ndarray:
    k = _harmonics(freq, sample_rate)
    return wavetable(1.0 / k)


def square_table(freq: float, sample_rate: int) -> np.ndarray:
    k = _harmonics(freq, sample_rate)
    return wavetable(np.where(k % 2 == 1, 1.0 / k, 0.0))


def oscillator(table: np.ndarray, freq: float, n: int, sample_rate: int, phase: float = 0.0):
    """Play a wavetable at a fixed ``freq`` for ``n`` samples, shape (n,)."""
    position = (phase * TABLE_SIZE) + (freq * TABLE_SIZE / sample_rate) * np.arange(n)
    return table[position.astype(np.intp) & (TABLE_SIZE - 1)]  # wrap round the table


def envelope(n: int, sample_rate: int, attack: float, decay: float, sustain: float, hold: float):
    """An ADSR envelope, shape (n,): rise in ``attack`` s, fall towards ``sustain`` with time
    constant ``decay`` s, and after ``hold`` s fade linearly to zero by the end of the sound."""
    t = np.arange(n) / sample_rate
    env = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    env *= np.minimum(t / max(attack, 1e-4), 1.0)
    release = max(n / sample_rate - hold, 1e-3)
    env *= np.clip(1.0 - (t - hold) / release, 0.0, 1.0)
    return env


@lru_cache(maxsize=256)
def _butter(kind: str, cutoff: float | tuple[float, float], sample_rate: int, order: int):
    nyquist = 0.5 * sample_rate
    edges = np.clip(np.asarray(cutoff, dtype=float), 20.0, 0.95 * nyquist)
    return signal.butter(order, edges, btype=kind, fs=sample_rate, output="sos")


def butterworth(x: np.ndarray, sample_rate: int, kind: str, cutoff, order: int = 2) -> np.ndarray:
    """A Butterworth filter along time (axis 0); ``kind`` is lowpass/highpass/bandpass."""
    key = tuple(float(c) for c in cutoff) if np.ndim(cutoff) else float(cutoff)
    return signal.sosfilt(_butter(kind, key, sample_rate, order), x, axis=0)


def one_pole(x: np.ndarray, sample_rate: int, seconds: float, initial: float = 0.0):
    """Smooth ``x`` (shape (n,)) with time constant ``seconds``: glides, click-free envelopes."""
    a = math.exp(-1.0 / max(seconds * sample_rate, 1.0))
    y, _ = signal.lfilter([1.0 - a], [1.0, -a], x, zi=[a * initial])
    return y


def pan(position: float) -> np.ndarray:
    """Constant-power gains (left, right) for ``position`` in [-1 (left), 1 (right)]."""
    angle = (position + 1.0) * math.pi / 4.0
    return np.array([math.cos(angle), math.sin(angle)], dtype=np.float32) * np.float32(2**0.5)


def place(buffer: np.ndarray, start: int, sound: np.ndarray, gains) -> None:
    """Add ``sound`` ((n,) mono or (n, 2) stereo) into ``buffer`` ((samples,) or (samples, 2))
    at ``start``, scaled by ``gains`` (a number, or one per channel); whatever falls outside
    the buffer is dropped."""
    if start < 0:
        sound, start = sound[-start:], 0
    end = min(buffer.shape[0], start + sound.shape[0])
    if end <= start:
        return
    part = sound[: end - start]
    if buffer.ndim == 1 or part.ndim == 2:
        buffer[start:end] += part * gains
    else:
        buffer[start:end] += part[:, None] * gains


def karplus_strong(
    freq: float, n: int, sample_rate: int, decay: float, brightness: float, rng
) -> np.ndarray:
    """A plucked string, shape (n,): the Karplus-Strong algorithm.

    A burst of noise one period long circulates in a delay line; each trip it is averaged
    with its neighbour (a gentle low-pass), so high harmonics die first, as on a real
    string. The loop ``y[i] = x[i] + g * (y[i-D] + y[i-D-1]) / 2`` is a recursive filter;
    instead of running it sample by sample we divide by its frequency response,
    ``Y = X / (1 - g (1 + e^{-jw}) / 2 e^{-jwD})``, which is exact as long as the sound
    has died away within the FFT length. It also allows a fractional delay ``D``, so the
    string is in tune.
    """
    period = sample_rate / freq
    size = scipy.fft.next_fast_len(2 * n, real=True)
    noise = rng.uniform(-1.0, 1.0, int(math.ceil(period)))
    # A darker pluck starts from smoother noise.
    excitation = one_pole(noise, sample_rate, (1.0 - brightness) * 4.0 / sample_rate + 1e-6)
    w = 2.0 * np.pi * np.fft.rfftfreq(size)
    g = math.exp(-period / (decay * sample_rate))  # loss per trip round the loop
    # (1 + e^{-jw}) / 2 = cos(w/2) e^{-jw/2}: the average delays by half a sample, so the
    # whole loop delays by exactly one period.
    loop = g * np.cos(0.5 * w) * np.exp(-1j * w * period)
    y = scipy.fft.irfft(scipy.fft.rfft(excitation, size) / (1.0 - loop), size)[:n]
    fade = np.minimum(1.0, (n - np.arange(n)) / (0.01 * sample_rate))
    return y * fade


def fm(freq: float, n: int, sample_rate: int, ratio: float, index: float, decay: float,
        index_decay: float) -> np.ndarray:  # fmt: skip
    """Frequency modulation (Chowning): a sine whose phase is wobbled by another sine.

    The modulator at ``ratio * freq`` adds sidebands; a non-integer ratio gives the
    inharmonic spectrum of a bell, a ratio of 1 an electric piano. The modulation
    ``index`` decays faster than the note, so the attack is bright and the tail pure.
    Shape (n,).
    """
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    w = np.float32(2.0 * np.pi * freq)
    modulator = index * np.exp(-t / index_decay) * np.sin(np.float32(ratio) * w * t)
    attack = np.minimum(t / 0.002, 1.0)
    return attack * np.exp(-t / decay) * np.sin(w * t + modulator)


class NoteCache:
    """Render each distinct note once per song and reuse it: songs repeat themselves."""

    def __init__(self) -> None:
        self._store: dict[tuple, np.ndarray] = {}

    def get(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._store:
            self._store[key] = make().astype(np.float32)  # half the memory traffic
        return self._store[key]


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return int(round(seconds * sample_rate))


def echo(x: np.ndarray, sample_rate: int, delay: float, feedback: float, taps: int):
    """Ping-pong echo: ``taps`` quieter, later copies that alternate left and right -- a
    cheap stand-in for a room that also widens the sound. ``x`` is (samples, 2) or mono
    (samples,) in the centre; returns (samples, 2)."""
    if x.ndim == 1:
        mono, out = x, np.repeat(x[:, None], 2, axis=1)
    else:
        mono, out = 0.5 * (x[:, 0] + x[:, 1]), x.copy()
    for tap in range(1, taps + 1):
        d = seconds_to_samples(delay * tap, sample_rate)
        if d >= len(x):
            break
        side = tap % 2
        out[d:, side] += np.float32(feedback**tap) * mono[:-d]
        out[d:, 1 - side] += np.float32(0.4 * feedback**tap) * mono[:-d]
    return out
