"""Practice songs made from a seed: music with separate stems and no download.

Source separation needs *stems*: the vocals, drums, bass and "other" parts of a song as
separate recordings, so that a model can learn to pull them out of their sum. MUSDB18 is
the standard set, but it is a 20 GB download behind a licence form. This module composes
small songs instead, MUSDB18-style, from nothing but a random seed.

How a song is made
------------------
1. **Plan** (:func:`plan_song`). The seed picks a tempo, a key and mode, chord
   progressions, a form (intro, verse, chorus, break, bridge, outro) and which
   instruments play in each section. Sections are what make the stems *take turns*:
   drums and bass stop in the break, the bass waits for the first verse, the singer
   rests between phrases and sits out the intro.
2. **Render** each stem, with textbook synthesis (numpy and scipy only):

   * drums -- a kick is a sine whose pitch sweeps down; a snare is a short tone plus
     band-passed noise; hats and cymbals are high-passed noise with a few inharmonic
     square waves for the metallic ring. Hits are rendered once per song and *placed*
     on a 16-step grid, with swing, accents and fills.
   * bass -- the chord roots in the low register: a sine, a saw through a low-pass
     whose brightness decays, a square, or a plucked string.
   * other -- a chord bed (detuned saws, an organ, an FM electric piano) and a lead
     layer (Karplus-Strong plucked arpeggios, FM bells, square arpeggios, strums).
   * vocals -- a source-filter voice: a glottal pulse at the melody pitch, with
     vibrato and glides, sent through resonators at the *formant* frequencies of a vowel;
     the formants move at every syllable and consonants add short noise bursts.

3. **Mix**. Each stem is scaled to a realistic loudness, the song fades out, and all
   stems are scaled together so that their sum (the mixture) never clips.

Speed comes from two habits. Music repeats, so notes are rendered once and *copied* to
every place they occur (see :class:`_NoteCache`); and everything that runs along the
whole song is a handful of numpy array operations, never a Python loop per sample.
A 20-second song takes about 0.2 s of one CPU core (some 100x real time).

Why bother with time structure? A separator that only knew *where in frequency* each
stem lives would be a fixed equaliser. :func:`oracle_sdr` measures the best such
equaliser against an ideal time-frequency mask: on these songs the mask is some 5 dB
better, as on real music, so a model has to learn to follow the music in time.

To listen: ``soundfile.write("song.wav", mixture_of(compose_song(0, 20.0)), 44100)``.

Shapes: a mono signal is ``(samples,)``, a stem is ``(samples, channels)`` with two
channels, exactly like ``musdb``'s ``track.targets["vocals"].audio``.

The public functions:

* :func:`compose_song` -- one song's stems, ``{"vocals": (samples, 2), ...}``.
* :func:`write_practice_set` -- a MUSDB18HQ-style folder that ``musdb`` opens.
* :func:`endless_source` and :class:`SynthStems` -- new songs forever, for training
  without a disk.
* :func:`oracle_sdr` -- how well an ideal mask and a fixed equaliser separate a song.
* :func:`benchmark` -- how many times faster than real time :func:`compose_song` runs.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from scipy import signal
from torch.utils.data import IterableDataset, get_worker_info

from bsr.errors import BsrError

STEMS = ("vocals", "drums", "bass", "other")

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}

# Chord progressions as scale degrees (0 = the tonic chord), four chords each. Each mode
# avoids its diminished chord (degree 6 in major, 1 in minor, 5 in dorian).
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 3, 5, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 6), (0, 3, 4, 0), (5, 6, 0, 0), (0, 2, 3, 5)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 2, 3, 0), (0, 3, 6, 4), (0, 1, 2, 3), (3, 0, 6, 0)),
}

MOODS = {
    "major": ("Golden", "Sunny", "Open", "Bright", "Morning", "Easy"),
    "minor": ("Midnight", "Shadow", "Minor", "Rainy", "Velvet", "Distant"),
    "dorian": ("Smoky", "Cool", "Blue", "Late", "Hazy", "Dusty"),
}
NOUNS = (
    "Groove", "Drive", "Echo", "Parade", "Lights", "Steps", "Signal",
    "Garden", "Harbour", "Circuit", "Waves", "Letters", "Avenue", "Machine",
)  # fmt: skip

# Vowel formants F1, F2, F3 in Hz for an adult male voice (classic Peterson-Barney values);
# a higher voice scales them up by about 15 %.
VOWELS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
FORMANT_BANDWIDTHS = (80.0, 90.0, 120.0, 150.0)  # Hz, for F1..F4
F4 = 3300.0  # a fixed fourth formant adds "presence"

# Voiced consonants: the formants a syllable glides *from* ("ma" starts nasal and dark).
CONSONANT_LOCI = {
    "m": (250.0, 1000.0, 2200.0),
    "n": (250.0, 1500.0, 2500.0),
    "l": (360.0, 1300.0, 2700.0),
    "d": (400.0, 1700.0, 2600.0),
}
# Voiceless consonants are noise: (filter type, band in Hz, length in s, level).
NOISE_CONSONANTS = {
    "s": ("highpass", 5000.0, 0.08, 0.25),
    "sh": ("bandpass", (2000.0, 5000.0), 0.08, 0.3),
    "t": ("highpass", 3000.0, 0.025, 0.5),
    "k": ("bandpass", (1500.0, 3500.0), 0.03, 0.45),
    "p": ("lowpass", 1500.0, 0.015, 0.5),
    "h": ("bandpass", (600.0, 3000.0), 0.06, 0.15),
}
CONSONANTS = ("", "", "m", "n", "l", "d", "t", "k", "s", "p", "h", "sh")
CONSONANT_WEIGHTS = np.array([3, 3, 2, 2, 2, 1.5, 1.5, 1, 0.6, 1, 0.6, 0.4])
CONSONANT_WEIGHTS = CONSONANT_WEIGHTS / CONSONANT_WEIGHTS.sum()

MANIFEST = "practice_set.json"


# ---------------------------------------------------------------------------------------
# The plan: everything about a song that is decided before any sound is made
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A stretch of the song, ``bars`` long, starting at bar ``start_bar``."""

    kind: str  # "intro", "verse", "chorus", "break", "bridge" or "outro"
    start_bar: int
    bars: int


@dataclass(frozen=True)
class Chord:
    """A chord: ``degree`` of the scale, its pitch classes (root first), and when it plays."""

    start: float  # seconds
    duration: float  # seconds
    degree: int
    pitch_classes: tuple[int, ...]
    section: int  # index into Song.sections


@dataclass
class Song:
    """The score of one practice song (no audio yet); see :func:`plan_song`."""

    seed: int
    title: str
    seconds: float
    sample_rate: int
    bpm: float
    tonic: int  # pitch class, 0 = C
    mode: str
    swing: float  # how late the off-beat 16ths come, as a fraction of a 16th
    chords_per_bar: int
    progressions: dict[str, tuple[int, ...]]
    sections: list[Section]
    chords: list[Chord]
    arrangement: dict[str, dict[str, object]]  # section kind -> what plays
    instruments: dict[str, str]  # "bass", "bed", "lead", "singer" -> timbre
    sevenths: bool = False
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def beat(self) -> float:
        """Length of one beat (a quarter note) in seconds."""
        return 60.0 / self.bpm

    @property
    def bar(self) -> float:
        """Length of one 4/4 bar in seconds."""
        return 4.0 * self.beat

    @property
    def samples(self) -> int:
        """Length of the audio in samples."""
        return max(1, int(round(self.seconds * self.sample_rate)))

    def key_name(self) -> str:
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        return f"{names[self.tonic]} {self.mode}"

    def chord_degree(self, kind: str, bar: int, eighth: float) -> int:
        """The scale degree of the chord playing at ``eighth`` (0-7) of ``bar`` of a section."""
        progression = self.progressions[kind]
        slot = bar * self.chords_per_bar + int(eighth // (8 // self.chords_per_bar))
        return progression[slot % len(progression)]


def _choice(rng: np.random.Generator, options):
    """One element of ``options`` (any sequence), drawn with ``rng``."""
    return options[int(rng.integers(len(options)))]


def _triad(tonic: int, mode: str, degree: int, seventh: bool) -> tuple[int, ...]:
    """Pitch classes of the chord built in thirds on a scale degree, root first."""
    scale = SCALES[mode]
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return tuple((tonic + scale[(degree + s) % 7]) % 12 for s in steps)


def _arrangement(rng: np.random.Generator) -> dict[str, dict[str, object]]:
    """What plays in each kind of section; this is what makes the stems take turns."""
    verse_layer = _choice(rng, ("bed", "lead"))
    intro_layer = _choice(rng, ("bed", "lead"))
    break_layer = _choice(rng, ("bed", "lead"))
    return {
        "intro": {
            "drums": _choice(rng, ("off", "hats")),
            "bass": _choice(rng, ("off", "off", "long")),
            "bed": 0.8 if intro_layer == "bed" else 0.0,
            "lead": 0.8 if intro_layer == "lead" else 0.0,
            "vocals": 0.0,
        },
        "verse": {
            "drums": _choice(rng, ("groove", "groove", "half")),
            "bass": "groove",
            "bed": 0.55 if verse_layer == "bed" else 0.0,
            "lead": 0.5 if verse_layer == "lead" else 0.0,
            "vocals": 0.8,
        },
        "chorus": {"drums": "busy", "bass": "busy", "bed": 1.0, "lead": 0.8, "vocals": 1.0},
        "break": {  # the breakdown: drums and bass drop out
            "drums": "off",
            "bass": "off",
            "bed": 0.7 if break_layer == "bed" else 0.0,
            "lead": 0.6 if break_layer == "lead" else 0.0,
            "vocals": 0.0,
        },
        "bridge": {"drums": "half", "bass": "long", "bed": 0.7, "lead": 0.6, "vocals": 0.9},
        "outro": {"drums": "groove", "bass": "groove", "bed": 0.8, "lead": 0.0, "vocals": 0.0},
    }


def _form(total_bars: int, rng: np.random.Generator) -> list[Section]:
    """Sections covering ``total_bars``: intro, then verse/chorus/break cycles, then outro.

    Section lengths scale with the song so that even a 20-second song has its verse,
    chorus and break (one or two bars each); a three-minute song has 4- and 8-bar ones.
    """
    if total_bars < 4:  # too short for a form: one chorus, so every stem sounds
        return [Section("chorus", 0, total_bars)]
    unit = 1 if total_bars < 24 else (2 if total_bars < 48 else 4)
    middle = [("verse", 2), ("chorus", 2), ("break", 1), ("verse", 2), ("chorus", 2)]
    middle += [(_choice(rng, ("bridge", "break")), 1), ("chorus", 2)]
    sections = [Section("intro", 0, unit)]
    bar = unit
    for kind, units in itertools.cycle(middle):
        if bar >= total_bars - unit:
            break
        bars = min(units * unit, total_bars - bar)
        sections.append(Section(kind, bar, bars))
        bar += bars
    if bar < total_bars:
        sections.append(Section("outro", bar, total_bars - bar))
    return sections


def plan_song(seed: int, seconds: float, sample_rate: int = 44100) -> Song:
    """Decide everything about the song for ``seed``: tempo, key, form, chords, instruments.

    The first decisions do not depend on ``seconds``, so a song keeps its title, tempo,
    key and sound whatever its length.
    """
    _check_song_args(seed, seconds, sample_rate)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    bpm = float(rng.integers(84, 137))
    tonic = int(rng.integers(12))
    mode = _choice(rng, ("major", "major", "minor", "minor", "dorian"))
    title = f"{_choice(rng, MOODS[mode])} {_choice(rng, NOUNS)}"
    family = PROGRESSIONS[mode]
    verse, chorus, bridge = (family[i] for i in rng.permutation(len(family))[:3])
    progressions = {"verse": verse, "chorus": chorus, "bridge": bridge}
    progressions.update(intro=verse, outro=chorus, **{"break": verse})
    instruments = {
        "bass": _choice(rng, ("sub", "saw", "square", "pluck")),
        "bed": _choice(rng, ("pad", "organ", "epiano")),
        "lead": _choice(rng, ("pluck", "bell", "square", "strum")),
        "singer": _choice(rng, ("low", "high")),
    }
    swing = float(_choice(rng, (0.0, 0.0, 0.12, 0.25)))
    chords_per_bar = 2 if rng.random() < 0.25 else 1
    sevenths = bool(rng.random() < 0.3)
    arrangement = _arrangement(rng)
    bar = 240.0 / bpm
    total_bars = max(1, math.ceil(seconds / bar))
    sections = _form(total_bars, rng)
    if max(s.bars for s in sections) < 4:
        chords_per_bar = 2  # short sections still go through the whole progression
    chords = []
    for index, section in enumerate(sections):
        slots = section.bars * chords_per_bar
        for slot in range(slots):
            degree = progressions[section.kind][slot % 4]
            start = (section.start_bar + slot / chords_per_bar) * bar
            pcs = _triad(tonic, mode, degree, sevenths)
            chords.append(Chord(start, bar / chords_per_bar, degree, pcs, index))
    return Song(
        seed=int(seed),
        title=title,
        seconds=float(seconds),
        sample_rate=int(sample_rate),
        bpm=bpm,
        tonic=tonic,
        mode=mode,
        swing=swing,
        chords_per_bar=chords_per_bar,
        progressions=progressions,
        sections=sections,
        chords=chords,
        arrangement=arrangement,
        instruments=instruments,
        sevenths=sevenths,
    )


# ---------------------------------------------------------------------------------------
# Building blocks: oscillators, envelopes, filters, placing sounds on a timeline
# ---------------------------------------------------------------------------------------

TABLE_SIZE = 4096


def _midi_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Frequency in Hz of a MIDI note number (69 = A4 = 440 Hz, 12 numbers per octave)."""
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def _wavetable(amplitudes: np.ndarray) -> np.ndarray:
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


def _saw_table(freq: float, sample_rate: int) -> np.ndarray:
    k = _harmonics(freq, sample_rate)
    return _wavetable(1.0 / k)


def _square_table(freq: float, sample_rate: int) -> np.ndarray:
    k = _harmonics(freq, sample_rate)
    return _wavetable(np.where(k % 2 == 1, 1.0 / k, 0.0))


def _oscillator(table: np.ndarray, freq: float, n: int, sample_rate: int, phase: float = 0.0):
    """Play a wavetable at a fixed ``freq`` for ``n`` samples, shape (n,)."""
    position = (phase * TABLE_SIZE) + (freq * TABLE_SIZE / sample_rate) * np.arange(n)
    return table[position.astype(np.intp) & (TABLE_SIZE - 1)]  # wrap round the table


def _envelope(n: int, sample_rate: int, attack: float, decay: float, sustain: float, hold: float):
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


def _filter(x: np.ndarray, sample_rate: int, kind: str, cutoff, order: int = 2) -> np.ndarray:
    """A Butterworth filter along time (axis 0); ``kind`` is lowpass/highpass/bandpass."""
    key = tuple(float(c) for c in cutoff) if np.ndim(cutoff) else float(cutoff)
    return signal.sosfilt(_butter(kind, key, sample_rate, order), x, axis=0)


def _one_pole(x: np.ndarray, sample_rate: int, seconds: float, initial: float = 0.0):
    """Smooth ``x`` (shape (n,)) with time constant ``seconds``: glides, click-free envelopes."""
    a = math.exp(-1.0 / max(seconds * sample_rate, 1.0))
    y, _ = signal.lfilter([1.0 - a], [1.0, -a], x, zi=[a * initial])
    return y


def _pan(position: float) -> np.ndarray:
    """Constant-power gains (left, right) for ``position`` in [-1 (left), 1 (right)]."""
    angle = (position + 1.0) * math.pi / 4.0
    return np.array([math.cos(angle), math.sin(angle)], dtype=np.float32) * np.float32(2**0.5)


def _place(buffer: np.ndarray, start: int, sound: np.ndarray, gains) -> None:
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


def _karplus_strong(
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
    excitation = _one_pole(noise, sample_rate, (1.0 - brightness) * 4.0 / sample_rate + 1e-6)
    w = 2.0 * np.pi * np.fft.rfftfreq(size)
    g = math.exp(-period / (decay * sample_rate))  # loss per trip round the loop
    # (1 + e^{-jw}) / 2 = cos(w/2) e^{-jw/2}: the average delays by half a sample, so the
    # whole loop delays by exactly one period.
    loop = g * np.cos(0.5 * w) * np.exp(-1j * w * period)
    y = scipy.fft.irfft(scipy.fft.rfft(excitation, size) / (1.0 - loop), size)[:n]
    fade = np.minimum(1.0, (n - np.arange(n)) / (0.01 * sample_rate))
    return y * fade


def _fm(freq: float, n: int, sample_rate: int, ratio: float, index: float, decay: float,
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


class _NoteCache:
    """Render each distinct note once per song and reuse it: songs repeat themselves."""

    def __init__(self) -> None:
        self._store: dict[tuple, np.ndarray] = {}

    def get(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._store:
            self._store[key] = make().astype(np.float32)  # half the memory traffic
        return self._store[key]


def _seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return int(round(seconds * sample_rate))


def _echo(x: np.ndarray, sample_rate: int, delay: float, feedback: float, taps: int):
    """Ping-pong echo: ``taps`` quieter, later copies that alternate left and right -- a
    cheap stand-in for a room that also widens the sound. ``x`` is (samples, 2) or mono
    (samples,) in the centre; returns (samples, 2)."""
    if x.ndim == 1:
        mono, out = x, np.repeat(x[:, None], 2, axis=1)
    else:
        mono, out = 0.5 * (x[:, 0] + x[:, 1]), x.copy()
    for tap in range(1, taps + 1):
        d = _seconds_to_samples(delay * tap, sample_rate)
        if d >= len(x):
            break
        side = tap % 2
        out[d:, side] += np.float32(feedback**tap) * mono[:-d]
        out[d:, 1 - side] += np.float32(0.4 * feedback**tap) * mono[:-d]
    return out


# ---------------------------------------------------------------------------------------
# Drums
# ---------------------------------------------------------------------------------------


def _metallic(n: int, sample_rate: int, scale: float) -> np.ndarray:
    """Six square waves at inharmonic ratios (as in the TR-808): the ring of a cymbal."""
    t = np.arange(n) / sample_rate
    ratios = np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0]) * scale
    return np.sign(np.sin(2.0 * np.pi * ratios[:, None] * t)).sum(axis=0) / 6.0


def _drum_kit(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One song's drum sounds, each a mono hit of shape (n,)."""
    sr = sample_rate

    def time_axis(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    kit = {}
    # Kick: a sine sweeping from ~150 Hz down to ~50 Hz, plus a click for the beater.
    t = time_axis(rng.uniform(0.3, 0.5))
    low, high, sweep = rng.uniform(42, 58), rng.uniform(110, 200), rng.uniform(0.02, 0.05)
    freq = low + (high - low) * np.exp(-t / sweep)
    body = np.sin(2.0 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / (t[-1] * 0.35))
    drive = rng.uniform(1.0, 3.0)
    click = _filter(rng.standard_normal(t.size) * np.exp(-t / 0.002), sr, "lowpass", 5000)
    kit["kick"] = np.tanh(drive * body) / math.tanh(drive) + 0.3 * click
    # Snare: a short tone (the drum head) plus band-passed noise (the snare wires).
    t = time_axis(rng.uniform(0.2, 0.35))
    head = rng.uniform(160, 240)
    tone = (np.sin(2 * np.pi * head * t) + 0.5 * np.sin(2 * np.pi * 1.6 * head * t)) * np.exp(
        -t / rng.uniform(0.03, 0.07)
    )
    band = (rng.uniform(1200, 2500), rng.uniform(6000, 9000))
    wires = _filter(rng.standard_normal(t.size), sr, "bandpass", band)
    wires *= np.exp(-t / rng.uniform(0.05, 0.12))
    kit["snare"] = 0.6 * tone + rng.uniform(0.8, 1.4) * wires
    # Hats and crash: high-passed noise plus the metallic ring, short or long.
    ring = _metallic(int(1.8 * sr), sr, rng.uniform(0.8, 1.3))
    for name, length, tau, cutoff in (
        ("hat", 0.08, rng.uniform(0.012, 0.03), rng.uniform(6000, 8500)),
        ("open_hat", 0.4, rng.uniform(0.1, 0.2), rng.uniform(5500, 8000)),
        ("crash", 1.8, rng.uniform(0.4, 0.8), rng.uniform(3500, 5500)),
    ):
        t = time_axis(length)
        noise = rng.standard_normal(t.size) + 0.5 * ring[: t.size]
        kit[name] = _filter(noise, sr, "highpass", cutoff) * np.exp(-t / tau)
    # Toms: a gentler kick, tuned higher, for fills.
    for name, pitch in (("tom_high", 1.5), ("tom_low", 1.0)):
        t = time_axis(0.35)
        f = rng.uniform(95, 130) * pitch
        kit[name] = np.sin(2 * np.pi * np.cumsum(f * (1 + 0.5 * np.exp(-t / 0.02))) / sr)
        kit[name] *= np.exp(-t / 0.12)
    for name in kit:  # every hit peaks at 1; the patterns set the loudness
        kit[name] = (kit[name] / np.max(np.abs(kit[name]))).astype(np.float32)
    return kit


KICK_PATTERNS = ((0, 8), (0, 10), (0, 7, 10), (0, 3, 8, 10), (0, 4, 8, 12), (0, 6, 8))


def _drum_bar(song: Song, style: str, kick: tuple, busy_kick: tuple, rng, fill: bool):
    """The hits of one bar: a list of (16th step, drum name, velocity)."""
    hits = []
    if style == "hats":
        hits += [(s, "hat", 0.6 if s % 4 else 0.8) for s in range(0, 16, 2)]
        return hits
    kick_steps = busy_kick if style == "busy" else kick
    if style == "half":
        kick_steps, snare_steps = (0,), (8,)
    else:
        snare_steps = (4, 12)
    hits += [(s, "kick", 1.0) for s in kick_steps]
    hits += [(s, "snare", 0.9) for s in snare_steps]
    hat_steps = range(16) if (style == "busy" and song.extras["busy_16ths"]) else range(0, 16, 2)
    for s in hat_steps:
        velocity = 0.8 if s % 4 == 0 else (0.6 if s % 2 == 0 else 0.45)
        hits.append((s, "hat", velocity))
    if style == "busy":
        if song.extras["open_hats"]:
            hits += [(s, "open_hat", 0.6) for s in (2, 6, 10, 14)]
        hits += [(s, "snare", 0.25) for s in (7, 15) if rng.random() < 0.3]  # ghost notes
    if fill:  # the last two beats become a run of snare and toms, getting louder
        hits = [h for h in hits if h[0] < 8]
        names = ("snare", "snare", "tom_high", "tom_high", "tom_low", "tom_low", "snare", "snare")
        for i, s in enumerate(range(8, 16)):
            if i % 2 == 1 and rng.random() < 0.35:
                continue
            hits.append((s, names[i], 0.5 + 0.06 * i))
    return hits


def _render_drums(song: Song, rng: np.random.Generator) -> np.ndarray:
    """The drum stem, shape (samples, 2)."""
    sr, n = song.sample_rate, song.samples
    out = np.zeros((n, 2), dtype=np.float32)
    kit = _drum_kit(sr, rng)
    kick = KICK_PATTERNS[int(rng.integers(len(KICK_PATTERNS)))]
    busy_kick = KICK_PATTERNS[int(rng.integers(len(KICK_PATTERNS)))]
    song.extras["busy_16ths"] = bool(rng.random() < 0.5)
    song.extras["open_hats"] = bool(rng.random() < 0.5)
    hat_side = _choice(rng, (-1.0, 1.0)) * rng.uniform(0.2, 0.45)
    pans = {"kick": 0.0, "snare": 0.05, "hat": hat_side, "open_hat": hat_side}
    pans.update(crash=-0.6 * hat_side, tom_high=-0.35, tom_low=0.35)
    step = song.beat / 4.0
    for index, section in enumerate(song.sections):
        style = song.arrangement[section.kind]["drums"]
        if style == "off":
            continue
        following = song.sections[index + 1] if index + 1 < len(song.sections) else None
        fill_before_next = following is not None and following.kind != section.kind
        for bar in range(section.bars):
            fill = fill_before_next and bar == section.bars - 1 and style != "hats"
            hits = _drum_bar(song, style, kick, busy_kick, rng, fill)
            if bar == 0 and section.kind in ("chorus", "bridge", "outro"):
                hits.append((0, "crash", 0.8))
            bar_start = (section.start_bar + bar) * song.bar
            for s, name, velocity in hits:
                swing = song.swing * step if s % 2 == 1 else 0.0
                when = bar_start + s * step + swing + rng.normal(0.0, 0.002)  # a human drummer
                gain = velocity * rng.uniform(0.85, 1.0)
                _place(out, _seconds_to_samples(when, sr), kit[name], gain * _pan(pans[name]))
    return out


# ---------------------------------------------------------------------------------------
# Bass
# ---------------------------------------------------------------------------------------

# Patterns for one chord: (start in eighths, length in eighths, which note).
# R = root, O = octave above, F = fifth, A = approach (the next chord's root).
BASS_PATTERNS = {
    "long": (((0, 8, "R"),),),
    "groove": (
        ((0, 3, "R"), (3, 1, "R"), (4, 2, "R"), (6, 2, "F")),
        ((0, 2, "R"), (2, 2, "R"), (4, 2, "O"), (6, 2, "R")),
        ((0, 3, "R"), (3, 3, "R"), (6, 2, "A")),
        ((0, 4, "R"), (4, 3, "F"), (7, 1, "A")),
    ),
    "busy": (
        tuple((i, 1, "R") for i in range(7)) + ((7, 1, "A"),),
        ((0, 1, "R"), (1, 1, "O"), (2, 1, "R"), (3, 1, "R"), (4, 1, "F"), (5, 1, "R"),
         (6, 1, "O"), (7, 1, "A")),
        ((0, 2, "R"), (2, 1, "R"), (3, 1, "O"), (4, 2, "R"), (6, 1, "F"), (7, 1, "A")),
    ),
}  # fmt: skip


def _bass_midi(pitch_class: int) -> int:
    """The bass register: E1 (MIDI 28) up to D#2 (39)."""
    return 28 + (pitch_class - 4) % 12


def _bass_tone(kind: str, midi: int, n: int, sr: int, params: dict, rng) -> np.ndarray:
    """A bass note of timbre ``kind`` before its loudness envelope, shape (n,)."""
    freq = float(_midi_hz(midi))
    if kind == "pluck":
        tone = _karplus_strong(freq, n, sr, params["decay"], 0.3, rng)
        tone = _filter(tone, sr, "lowpass", 4 * params["cutoff"] / 3)  # a bass, not a guitar
        tone = tone / (np.max(np.abs(tone)) + 1e-9)
        return tone + 0.5 * _oscillator(_wavetable(np.array([1.0])), freq, n, sr)  # weight
    if kind == "sub":
        return _oscillator(_wavetable(np.array([1.0, 0.3, 0.1])), freq, n, sr)
    table = _saw_table(freq, sr) if kind == "saw" else _square_table(freq, sr)
    raw = _oscillator(table, freq, n, sr)
    # A filter that closes after the attack; two fixed filters cross-faded are much cheaper
    # than one that changes its cutoff every sample.
    bright = _filter(raw, sr, "lowpass", params["cutoff"] * 3.0)
    dark = _filter(raw, sr, "lowpass", params["cutoff"])
    sweep = np.exp(-np.arange(n) / (0.08 * sr))
    return dark + (bright - dark) * sweep


def _bass_note(kind: str, tone: np.ndarray, hold: float, sr: int, params: dict) -> np.ndarray:
    """Shape a bass ``tone`` (n,) with its envelope: ``hold`` seconds, then a short release."""
    n = tone.size
    if kind == "pluck":
        return tone * _envelope(n, sr, 0.003, 0.5, 0.4, hold)
    env = _envelope(n, sr, 0.005, params["decay"], params["sustain"], hold)
    if kind == "sub":  # a little saturation adds harmonics that small speakers can play
        return np.tanh(params["drive"] * tone * env) / math.tanh(params["drive"])
    return tone * env


def _render_bass(song: Song, rng: np.random.Generator) -> np.ndarray:
    """The bass stem, shape (samples, 2) (mono in the centre, as bass is mixed)."""
    sr, n = song.sample_rate, song.samples
    out = np.zeros(n, dtype=np.float32)  # mono: bass sits in the centre
    kind = song.instruments["bass"]
    params = {
        "decay": rng.uniform(0.15, 0.6),
        "sustain": rng.uniform(0.3, 0.8),
        "drive": rng.uniform(1.0, 2.5),
        "cutoff": rng.uniform(350.0, 1200.0),
    }
    patterns = {k: v[int(rng.integers(len(v)))] for k, v in BASS_PATTERNS.items()}
    cache, tones = _NoteCache(), _NoteCache()
    eighth = song.beat / 2.0
    gate = rng.uniform(0.75, 0.95)
    longest = _seconds_to_samples(8 * eighth * gate + 0.05, sr) + 1
    for i, chord in enumerate(song.chords):
        style = song.arrangement[song.sections[chord.section].kind]["bass"]
        if style == "off":
            continue
        root = _bass_midi(chord.pitch_classes[0])
        following = song.chords[i + 1] if i + 1 < len(song.chords) else chord
        notes = {"R": root, "O": root + 12, "F": root + 7}
        notes["A"] = _bass_midi(following.pitch_classes[0])
        slot_eighths = round(chord.duration / eighth)
        for start, length, which in patterns[style]:
            if start >= slot_eighths:
                continue
            length = min(length, slot_eighths - start)
            hold = length * eighth * gate
            size = _seconds_to_samples(hold + 0.05, sr)
            midi = notes[which]
            # Render each pitch once at the longest length, then cut and shape it per use.
            raw = tones.get((midi,), partial(_bass_tone, kind, midi, longest, sr, params, rng))
            tone = cache.get((midi, size), partial(_bass_note, kind, raw[:size], hold, sr, params))
            when = chord.start + start * eighth
            velocity = (0.95 if start % 2 == 0 else 0.8) * rng.uniform(0.9, 1.0)
            _place(out, _seconds_to_samples(when, sr), tone, velocity)
    return out[:, None] * _pan(0.0)


# ---------------------------------------------------------------------------------------
# Other: a chord bed and a lead layer
# ---------------------------------------------------------------------------------------


def _voicing(pitch_classes: tuple[int, ...], centre: int) -> list[int]:
    """MIDI pitches for the chord, all within a fifth or so of ``centre``.

    Putting every chord near the same centre makes the voices move by small steps from
    chord to chord (voice leading), as a keyboard player's hand would.
    """
    low = centre - 6
    return sorted(low + (pc - low) % 12 for pc in pitch_classes)


def _bed_chord(kind: str, pitches: list[int], n: int, hold: float, sr: int, params: dict, rng):
    """A sustained chord of timbre ``kind``, shape (n, 2)."""
    out = np.zeros((n, 2))
    for p in pitches:
        freq = float(_midi_hz(p))
        if kind == "pad":  # two detuned saws per note, one left and one right: width
            table = _saw_table(freq, sr)
            for side, cents in ((0, -params["detune"]), (1, params["detune"])):
                f = freq * 2.0 ** (cents / 1200.0)
                out[:, side] += _oscillator(table, f, n, sr, rng.random())
        elif kind == "organ":  # drawbars: a few harmonics, always the same mix
            table = params["organ_table"]
            out += _oscillator(table, freq, n, sr, rng.random())[:, None] * 0.7
        else:  # "epiano": FM with ratio 1, bright attack
            tone = _fm(freq, n, sr, 1.0, params["index"], 1.2, 0.25)
            out += tone[:, None] * 0.8
    if kind == "pad":
        out = _filter(out, sr, "lowpass", params["cutoff"])
        env = _envelope(n, sr, params["attack"], 1.0, 1.0, hold)
    elif kind == "organ":
        env = _envelope(n, sr, 0.01, 1.0, 1.0, hold)
    else:
        env = _envelope(n, sr, 0.002, 5.0, 1.0, hold)
    return out * env[:, None] / len(pitches) ** 0.5


def _lead_note(kind: str, midi: int, n: int, sr: int, params: dict, rng) -> np.ndarray:
    """One note of the lead layer, shape (n,)."""
    freq = float(_midi_hz(midi))
    if kind in ("pluck", "strum"):
        tone = _karplus_strong(freq, n, sr, params["pluck_decay"], params["brightness"], rng)
        return tone / (np.max(np.abs(tone)) + 1e-9)
    if kind == "bell":
        return _fm(freq, n, sr, params["bell_ratio"], params["index"], 0.5, 0.15)
    tone = _oscillator(_square_table(freq, sr), freq, n, sr)
    return tone * _envelope(n, sr, 0.003, 0.1, 0.25, n / sr - 0.06)


def _render_other(song: Song, rng: np.random.Generator) -> np.ndarray:
    """The "other" stem -- everything that is not vocals, drums or bass -- (samples, 2)."""
    sr, n = song.sample_rate, song.samples
    out = np.zeros((n, 2), dtype=np.float32)
    lead_bus = np.zeros(n, dtype=np.float32)  # mono, panned once at the end
    bed_kind, lead_kind = song.instruments["bed"], song.instruments["lead"]
    harmonics = np.zeros(8)
    harmonics[[0, 1, 2, 3, 5, 7]] = rng.uniform(0.1, 1.0, 6) * [1, 0.8, 0.6, 0.4, 0.3, 0.2]
    params = {
        "detune": rng.uniform(5, 15),  # cents
        "cutoff": rng.uniform(1200, 3500),
        "attack": rng.uniform(0.1, 0.5),
        "organ_table": _wavetable(harmonics),
        "index": rng.uniform(0.8, 2.5),
        "bell_ratio": _choice(rng, (1.4, 2.76, 3.5)),
        "pluck_decay": rng.uniform(0.25, 0.8),
        "brightness": rng.uniform(0.4, 0.95),
    }
    bed_centre = int(rng.integers(52, 62))
    lead_centre = int(rng.integers(64, 74))
    bed_pan = rng.uniform(-0.3, 0.3)
    lead_pan = -np.sign(bed_pan) * rng.uniform(0.2, 0.6)
    arp_order = rng.permutation(8)
    arp_rate = _choice(rng, (2, 4))  # notes per beat
    comp = _choice(rng, ((0, 3, 6), (1, 3, 5, 7), (0, 2, 3, 5, 6)))  # strum / e-piano hits
    bed_cache, lead_cache = _NoteCache(), _NoteCache()
    eighth = song.beat / 2.0
    for chord in song.chords:
        levels = song.arrangement[song.sections[chord.section].kind]
        bed, lead = float(levels["bed"]), float(levels["lead"])
        if bed > 0:
            pitches = _voicing(chord.pitch_classes, bed_centre)
            if bed_kind == "epiano":  # an electric piano plays rhythmic chords
                hits = [(e * eighth, 2.5 * eighth) for e in comp if e * eighth < chord.duration]
            else:
                hits = [(0.0, chord.duration)]
            for offset, hold in hits:
                size = _seconds_to_samples(hold + 0.4, sr)
                make = partial(_bed_chord, bed_kind, pitches, size, hold, sr, params, rng)
                chord_tone = bed_cache.get((tuple(pitches), size), make)
                start = _seconds_to_samples(chord.start + offset, sr)
                _place(out, start, chord_tone, 0.5 * bed * _pan(bed_pan))
        if lead > 0:
            tones = _voicing(chord.pitch_classes, lead_centre)
            tones = tones + [t + 12 for t in tones]
            if lead_kind == "strum":  # a guitar-like strum: strings a few ms apart
                for e in comp:
                    if e * eighth >= chord.duration:
                        continue
                    for k, p in enumerate(_voicing(chord.pitch_classes, lead_centre - 7)):
                        size = _seconds_to_samples(0.8, sr)
                        make = partial(_lead_note, lead_kind, p, size, sr, params, rng)
                        note = lead_cache.get((p, size), make)
                        when = chord.start + e * eighth + 0.012 * k
                        gain = 0.3 * lead * rng.uniform(0.8, 1.0)
                        _place(lead_bus, _seconds_to_samples(when, sr), note, gain)
                continue
            step = song.beat / arp_rate
            count = int(round(chord.duration / step))
            for j in range(count):
                p = tones[arp_order[j % 8] % len(tones)]
                size = _seconds_to_samples(0.6 if lead_kind != "square" else 1.5 * step, sr)
                make = partial(_lead_note, lead_kind, p, size, sr, params, rng)
                note = lead_cache.get((p, size), make)
                accent = 1.0 if j % arp_rate == 0 else 0.75
                when = chord.start + j * step
                gain = 0.35 * lead * accent * rng.uniform(0.85, 1.0)
                _place(lead_bus, _seconds_to_samples(when, sr), note, gain)
    out += lead_bus[:, None] * _pan(lead_pan)
    return _echo(out, sr, 0.75 * song.beat, 0.3, 2)


# ---------------------------------------------------------------------------------------
# Vocals: a source-filter voice
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Syllable:
    start: float  # seconds
    duration: float  # seconds
    midi: float
    consonant: str
    vowel: str
    velocity: float


def _melody(song: Song, kind: str, bars: int, tonic_midi: int, rng) -> list[tuple]:
    """A melody for a section: (start in eighths, length in eighths, MIDI, consonant, vowel).

    A random walk over the scale, mostly in steps, that lands on a chord tone on the
    beats and at the end of each phrase; phrases end with a rest to breathe.
    """
    scale = SCALES[song.mode]
    low, high = {"chorus": (0, 7), "bridge": (-1, 6)}.get(kind, (-3, 4))  # scale steps
    phrase_bars = 2 if bars >= 2 else 1
    degree = int(rng.integers(low + 2, high - 1))
    notes = []
    rhythm = None
    for phrase_start in range(0, bars, phrase_bars):
        length = min(phrase_bars, bars - phrase_start) * 8
        rest = int(rng.integers(2, 5)) if length >= 8 else 1
        if rhythm is None or rng.random() < 0.4:  # repeat the phrase rhythm more often than not
            rhythm, pos = [], int(_choice(rng, (0, 0, 1)))
            while pos < length - rest:
                d = min(int(_choice(rng, (1, 1, 2, 2, 2, 3, 4))), length - rest - pos)
                rhythm.append((pos, d))
                pos += d
        for i, (pos, d) in enumerate(rhythm):
            if pos >= length:
                break
            d = min(d, length - pos)
            degree = int(np.clip(degree + _choice(rng, (-2, -1, -1, 0, 1, 1, 2)), low, high))
            bar = phrase_start + pos // 8
            if pos % 2 == 0 or i == len(rhythm) - 1:  # strong beats sit on a chord tone
                chord = song.chord_degree(kind, bar, pos % 8)
                tones = {(chord + s) % 7 for s in (0, 2, 4)}
                degree = min(
                    (dg for dg in range(degree - 2, degree + 3) if dg % 7 in tones),
                    key=lambda dg: (abs(dg - degree), dg),
                )
            midi = tonic_midi + scale[degree % 7] + 12 * (degree // 7)
            consonant = CONSONANTS[int(rng.choice(len(CONSONANTS), p=CONSONANT_WEIGHTS))]
            vowel = _choice(rng, ("a", "a", "e", "i", "o", "o", "u"))
            notes.append((phrase_start * 8 + pos, d, midi, consonant, vowel))
    return notes


def _vocal_line(song: Song, rng) -> list[_Syllable]:
    """All sung syllables of the song; repeated sections repeat their melody and words."""
    centre = 56 if song.instruments["singer"] == "low" else 65  # tenor or alto-ish
    tonic_midi = centre - 5 + (song.tonic - (centre - 5)) % 12
    melodies: dict[tuple[str, int], list] = {}
    eighth = song.beat / 2.0
    line = []
    for section in song.sections:
        level = float(song.arrangement[section.kind]["vocals"])
        if level <= 0:
            continue
        key = (section.kind, section.bars)
        if key not in melodies:
            melodies[key] = _melody(song, section.kind, section.bars, tonic_midi, rng)
        start = section.start_bar * song.bar
        for pos, length, midi, consonant, vowel in melodies[key]:
            when = start + pos * eighth + rng.normal(0.0, 0.008)  # not quite on the grid
            velocity = level * rng.uniform(0.85, 1.0)
            line.append(_Syllable(when, length * eighth, midi, consonant, vowel, velocity))
    return line


def _glottal_table(open_quotient: float, harmonics: int) -> np.ndarray:
    """One period of the glottal source, shape (TABLE_SIZE,).

    The vocal folds open slowly and snap shut (a Rosenberg pulse); what we hear is the
    *derivative* of that airflow, whose sharp dip at closure gives the voice its buzz.
    Keeping only ``harmonics`` harmonics avoids aliasing at the highest sung pitch.
    """
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE
    rise = 0.6 * open_quotient
    closing = np.cos(0.5 * np.pi * (phase - rise) / (open_quotient - rise))
    opening = 0.5 * (1.0 - np.cos(np.pi * phase / rise))
    flow = np.where(phase < rise, opening, np.where(phase < open_quotient, closing, 0.0))
    spectrum = np.fft.rfft(np.diff(flow, append=flow[0]))
    spectrum[harmonics + 1 :] = 0.0
    spectrum[0] = 0.0
    table = np.fft.irfft(spectrum, TABLE_SIZE)
    return table / np.sqrt(np.mean(table**2))


def _resonator(freq: float, bandwidth: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A two-pole resonance (one formant) with unit gain at 0 Hz, as in Klatt's synthesiser.

    Returns (b, a) for :func:`scipy.signal.lfilter`.
    """
    r = math.exp(-math.pi * bandwidth / sample_rate)
    a1, a2 = -2.0 * r * math.cos(2.0 * math.pi * freq / sample_rate), r * r
    return np.array([1.0 + a1 + a2]), np.array([1.0, a1, a2])


def _vocal_tract(formants: np.ndarray, scale: float, sample_rate: int):
    """(b, a) of the four formant resonators in cascade, as one 8th-order filter."""
    b, a = np.ones(1), np.ones(1)
    for freq, bandwidth in zip(formants, FORMANT_BANDWIDTHS, strict=True):
        bf, af = _resonator(freq, bandwidth * scale, sample_rate)
        b, a = b * bf, np.convolve(a, af)
    return b, a


def _consonant_burst(kind: str, sample_rate: int, rng) -> np.ndarray:
    """The noise of a voiceless consonant ("s", "t", ...), shape (n,)."""
    btype, band, length, level = NOISE_CONSONANTS[kind]
    n = _seconds_to_samples(length, sample_rate)
    noise = _filter(rng.standard_normal(n), sample_rate, btype, band)
    t = np.arange(n) / n
    shape = np.minimum(t / 0.3, 1.0) if kind in ("s", "sh", "h") else np.exp(-4.0 * t)
    return level * noise * shape * np.minimum((1.0 - t) / 0.2, 1.0)


def _render_vocals(song: Song, rng: np.random.Generator) -> np.ndarray:
    """The vocal stem, shape (samples, 2): melody -> pitch curve -> glottal source ->
    formant filters, syllable by syllable, plus consonant noise and an echo."""
    sr, n = song.sample_rate, song.samples
    line = [s for s in _vocal_line(song, rng) if s.start * sr < n - 1]
    out = np.zeros((n, 2), dtype=np.float32)
    if not line:
        return out
    high = song.instruments["singer"] == "high"
    scale_formants = rng.uniform(1.1, 1.2) if high else rng.uniform(0.95, 1.05)
    vibrato_rate, vibrato_depth = rng.uniform(4.8, 6.2), rng.uniform(0.2, 0.5)  # Hz, semitones
    glide = rng.uniform(0.03, 0.07)  # seconds: how fast the voice slides to a new note
    breath = rng.uniform(0.03, 0.1)

    starts = np.array([max(0, _seconds_to_samples(s.start, sr)) for s in line])
    holds = np.array([s.duration for s in line], dtype=np.float32) * 0.92
    midis = np.array([s.midi for s in line], dtype=np.float32)
    tail = _seconds_to_samples(0.12, sr)  # release and formant ring after a note
    ends = np.minimum(starts + (holds * sr).astype(np.intp) + tail, n)

    # Synthesise only where the singer sings: gather the sung spans into one shorter
    # timeline ("compressed" time), render there, and put the result back at the end.
    edge = np.zeros(n + 1, dtype=np.int32)
    np.add.at(edge, starts, 1)
    np.add.at(edge, ends, -1)
    keep = np.flatnonzero(np.cumsum(edge[:n]) > 0)
    m = keep.size
    begins = np.searchsorted(keep, starts)  # syllable starts in compressed time

    # Which syllable owns each sample: the last one that started. Everything along the
    # song is float32: half the memory traffic of float64 and plenty of precision for audio.
    owner = np.repeat(np.arange(len(line)), np.diff(np.append(begins, m)))
    clock = keep.astype(np.float32) / np.float32(sr)  # real time, seconds
    since = (np.arange(m) - begins[owner]).astype(np.float32) / np.float32(sr)

    # Pitch in MIDI numbers: held between notes, smoothed (portamento), with vibrato that
    # grows during long notes and a slow wander so that no two notes are exactly alike.
    pitch = _one_pole(midis[owner], sr, glide, initial=midis[0] - 1.0).astype(np.float32)
    vibrato = np.sin(np.float32(2 * np.pi * vibrato_rate) * clock)
    pitch += np.float32(vibrato_depth) * np.clip((since - 0.15) / 0.3, 0, 1) * vibrato
    wander = rng.normal(0.0, 0.08, n // 2048 + 2).astype(np.float32)
    pitch += wander[keep // 2048]
    # Integrating frequency gives phase (in cycles); float64 here, as it grows large.
    phase = np.cumsum(_midi_hz(pitch) / np.float32(sr), dtype=np.float64)
    harmonics = int(0.45 * sr / float(_midi_hz(midis.max() + 1.0)))
    table = _glottal_table(rng.uniform(0.5, 0.7), harmonics).astype(np.float32)
    source = table[((phase % 1.0) * TABLE_SIZE).astype(np.intp)]

    # Loudness: each syllable swells in and dies away after its note; legato syllables
    # only dip a little. Smoothing the envelope removes clicks where a syllable starts.
    floors = np.array([0.6 if s.consonant in ("", "l") else 0.15 for s in line], np.float32)
    velocity = np.array([s.velocity for s in line], dtype=np.float32)
    attack = np.clip(since / 0.04, 0.0, 1.0)
    env = floors[owner] + (1.0 - floors[owner]) * attack
    env *= np.clip(1.0 - (since - holds[owner]) / 0.08, 0.0, 1.0) * velocity[owner]
    env = _one_pole(env, sr, 0.006).astype(np.float32)
    noise = rng.standard_normal(m, dtype=np.float32)
    voiced = env * (source + np.float32(breath) * noise)

    # Formants: filter each syllable with the resonances of its vowel, gliding in from the
    # consonant (or previous vowel) over the first 60 ms in small steps. The four
    # resonators are applied as one filter (the product of their transfer functions).
    sung = np.zeros(m, dtype=np.float32)
    state = np.zeros(8)
    block = _seconds_to_samples(0.015, sr)
    previous = np.array(VOWELS["a"] + (F4,)) * scale_formants
    for i, syl in enumerate(line):
        begin = begins[i]
        end = begins[i + 1] if i + 1 < len(line) else m
        if end <= begin:
            continue
        target = np.array(VOWELS[syl.vowel] + (F4,)) * scale_formants
        origin = previous
        if syl.consonant in CONSONANT_LOCI:
            origin = np.array(CONSONANT_LOCI[syl.consonant] + (F4,)) * scale_formants
        elif syl.consonant:
            origin = 0.5 * (previous + target)
        edges = [begin + k * block for k in range(4) if begin + k * block < end] + [end]
        for k in range(len(edges) - 1):
            formants = origin + (target - origin) * min(1.0, (k + 1) / 4)
            b, a = _vocal_tract(formants, scale_formants, sr)
            sung[edges[k] : edges[k + 1]], state = signal.lfilter(
                b, a, voiced[edges[k] : edges[k + 1]], zi=state
            )
        previous = target
    sung /= np.sqrt(np.dot(sung, sung) / m) + 1e-12
    full = np.zeros(n, dtype=np.float32)
    full[keep] = sung

    # Consonant noise just before the vowel starts, as singers put it before the beat.
    bursts = _NoteCache()
    for i, syl in enumerate(line):
        if syl.consonant in NOISE_CONSONANTS:
            variant = int(rng.integers(3))
            make = partial(_consonant_burst, syl.consonant, sr, rng)
            burst = bursts.get((syl.consonant, variant), make)
            where = starts[i] - burst.size + _seconds_to_samples(0.01, sr)
            _place(full, where, burst, syl.velocity)
    return _echo(full, sr, 1.5 * song.beat, rng.uniform(0.15, 0.3), 3)


# ---------------------------------------------------------------------------------------
# Mixing
# ---------------------------------------------------------------------------------------

# Loudness of each stem while it plays, relative to the drums (in dB), as in pop mixes.
STEM_LEVELS_DB = {"vocals": 0.0, "drums": 0.0, "bass": -2.0, "other": -3.0}


def _active_rms(x: np.ndarray, frame: int = 4096) -> float:
    """RMS of ``x`` (samples, 2) over the frames where it plays (not its silences)."""
    usable = (x.shape[0] // frame) * frame
    if usable == 0:
        return float(np.sqrt(np.mean(x**2)))
    power = np.mean(x[:usable].reshape(-1, frame * x.shape[1]) ** 2, axis=1)
    active = power[power > 1e-3 * power.max()] if power.max() > 0 else power
    return float(np.sqrt(np.mean(active)))


def _peak(x: np.ndarray) -> float:
    return float(max(x.max(), -x.min()))


def _mix(stems: dict[str, np.ndarray], song: Song, rng) -> dict[str, np.ndarray]:
    """Set stem levels, fade the ends, and scale so the mixture peaks below 1 (float32)."""
    sr, n = song.sample_rate, song.samples
    fade_in = min(n, _seconds_to_samples(0.005, sr))
    fade_out = min(n, _seconds_to_samples(min(3.0, 0.15 * song.seconds), sr))
    rise = (np.arange(fade_in, dtype=np.float32) / max(fade_in, 1))[:, None]
    fall = (np.linspace(1.0, 0.0, fade_out, dtype=np.float32) ** 2)[:, None]
    mixed = {}
    for name in STEMS:
        x = stems[name].astype(np.float32, copy=False)
        rms = _active_rms(x)
        gain_db = STEM_LEVELS_DB[name] + rng.normal(0.0, 1.5)
        x *= np.float32(10 ** (gain_db / 20.0) / rms if rms > 0 else 0.0)
        x[:fade_in] *= rise  # no click at the start
        x[n - fade_out :] *= fall  # and a fade-out at the end, as on a record
        mixed[name] = x
    peak = max([_peak(mixture_of(mixed))] + [_peak(x) for x in mixed.values()] + [1e-9])
    target = rng.uniform(0.6, 0.9)  # songs come at different loudness, as in MUSDB18
    for x in mixed.values():
        x *= np.float32(target / peak)
    return mixed


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def _check_song_args(seed: int, seconds: float, sample_rate: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise BsrError(f"seed must be a whole number >= 0, got {seed!r}; pick e.g. --seed 0")
    if not isinstance(seconds, int | float | np.number) or not 0 < seconds < math.inf:
        raise BsrError(f"seconds must be a number > 0, got {seconds!r}; use e.g. --seconds 20")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise BsrError(f"sample_rate must be a whole number, got {sample_rate!r}; use 44100")
    if sample_rate < 16000:
        raise BsrError(f"sample_rate must be at least 16000 Hz, got {sample_rate}; use 44100")


def compose_song(seed: int, seconds: float, sample_rate: int = 44100) -> dict[str, np.ndarray]:
    """Compose and render the song for ``seed``.

    Returns ``{"vocals", "drums", "bass", "other"}`` -> float32 arrays of shape
    (samples, 2), where samples = round(seconds * sample_rate). Their sum is the mixture;
    it peaks below 1. The same arguments always give bit-identical audio.
    """
    song = plan_song(seed, seconds, sample_rate)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))  # the sound's own dice
    stems = {
        "drums": _render_drums(song, rng),
        "bass": _render_bass(song, rng),
        "other": _render_other(song, rng),
        "vocals": _render_vocals(song, rng),
    }
    return _mix(stems, song, rng)


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The mixture: the float32 sum of the stems, always added in the order of STEMS."""
    total = np.zeros_like(stems[STEMS[0]], dtype=np.float32)
    for name in STEMS:
        total = total + stems[name].astype(np.float32)
    return total


def song_seed(seed: int, index: int, stream: int = 0) -> int:
    """The seed of song ``index`` derived from a set's ``seed`` (stream 0: practice sets,
    1: :func:`endless_source`), so the two never hand out the same sequence of songs."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def song_folder_name(seed: int, number: int) -> str:
    """A track name such as "Practice 007 - Minor Groove" (musdb reads "Artist - Title")."""
    return f"Practice {number:03d} - {plan_song(seed, 1.0).title}"


def _practice_layout(songs: int, seed: int, test_fraction: float) -> dict[str, list]:
    """Which song goes where: {"train": [(name, song seed), ...], "test": [...]}."""
    tests = 0 if songs < 2 else min(songs - 1, max(1, round(songs * test_fraction)))
    layout: dict[str, list] = {"train": [], "test": []}
    for index in range(songs):
        s = song_seed(seed, index)
        subset = "test" if index >= songs - tests else "train"
        layout[subset].append((song_folder_name(s, index + 1), s))
    return layout


def write_float_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write (samples, channels) audio as a 32-bit float WAV file, byte for byte reproducible.

    soundfile (libsndfile) writes the same format but stamps float files with the time of
    writing (a "PEAK" chunk), so the same song would give different bytes each time. A WAV
    file is simple enough to write by hand: a RIFF header, a "fmt " chunk (format 3 =
    IEEE float), a "fact" chunk (frames), then the interleaved little-endian samples.
    Any reader (soundfile, ffmpeg, musdb) opens it.
    """
    audio = np.ascontiguousarray(audio, dtype="<f4")
    frames, channels = audio.shape
    sample_rate = int(sample_rate)
    data = audio.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, channels, sample_rate, sample_rate * channels * 4,
                      channels * 4, 32, 0)  # fmt: skip
    chunks = [b"fmt ", struct.pack("<I", len(fmt)), fmt, b"fact", struct.pack("<II", 4, frames)]
    chunks += [b"data", struct.pack("<I", len(data)), data]
    body = b"WAVE" + b"".join(chunks)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _existing_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}


def write_practice_set(
    out: str | Path,
    songs: int,
    seconds: float,
    seed: int,
    test_fraction: float = 1 / 3,
    sample_rate: int = 44100,
    force: bool = False,
) -> Path:
    """Write a MUSDB18HQ-style practice set and return its folder.

    Layout: ``out/{train,test}/<Song Name>/{mixture,vocals,drums,bass,other}.wav``
    (stereo, 32-bit float), plus ``out/practice_set.json`` recording the arguments.
    ``mixture.wav`` is exactly the float32 sum of the four stems. About
    ``test_fraction`` of the songs (at least one, when there are two or more) go to test.
    Open it with ``musdb.DB(root=out, is_wav=True)``.

    Writing again with the same arguments rewrites the same bytes. A folder holding
    anything else is refused unless ``force`` (which replaces an older practice set's
    files but leaves other files alone).
    """
    if isinstance(songs, bool) or not isinstance(songs, int | np.integer) or songs < 1:
        raise BsrError(f"songs must be a whole number >= 1, got {songs!r}; use e.g. --songs 6")
    if not isinstance(test_fraction, int | float) or not 0.0 <= test_fraction < 1.0:
        raise BsrError(f"test_fraction must be in [0, 1), got {test_fraction!r}; e.g. 0.33")
    _check_song_args(seed, seconds, sample_rate)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BsrError(f"{out} is a file, not a folder; choose a folder for the practice set")
    settings = {
        "generator": "bsr.data.synth",
        "version": 1,
        "songs": int(songs),
        "seconds": float(seconds),
        "seed": int(seed),
        "test_fraction": float(test_fraction),
        "sample_rate": int(sample_rate),
    }
    layout = _practice_layout(int(songs), int(seed), float(test_fraction))
    wanted = {MANIFEST} | {
        f"{subset}/{name}/{stem}.wav"
        for subset, entries in layout.items()
        for name, _ in entries
        for stem in ("mixture", *STEMS)
    }
    _make_room(out, settings, wanted, force)
    for subset in ("train", "test"):
        (out / subset).mkdir(parents=True, exist_ok=True)  # musdb lists both
        for name, s in layout[subset]:
            folder = out / subset / name
            folder.mkdir(exist_ok=True)
            stems = compose_song(s, seconds, sample_rate)
            tracks = {"mixture": mixture_of(stems), **stems}
            for stem, audio in tracks.items():
                write_float_wav(folder / f"{stem}.wav", audio, sample_rate)
    settings["tracks"] = {k: [name for name, _ in v] for k, v in layout.items()}
    (out / MANIFEST).write_text(json.dumps(settings, indent=2) + "\n")
    return out


def _make_room(out: Path, settings: dict, wanted: set[str], force: bool) -> None:
    """Refuse to write over files we did not make (unless ``force``); remove stale ones."""
    if not out.exists():
        return
    existing = _existing_files(out)
    if not existing:
        return
    old = None
    if (out / MANIFEST).is_file():
        try:
            old = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            old = None
    same = old is not None and {k: old.get(k) for k in settings} == settings
    if same and existing <= wanted:
        return  # the same practice set: rewriting gives the same bytes
    if not force:
        what = "a different practice set" if old is not None else f"{len(existing)} other files"
        raise BsrError(f"{out} already holds {what}; use an empty folder or --force")
    if old is not None:  # forget the old set's songs so musdb does not list them
        for subset, names in old.get("tracks", {}).items():
            for name in names:
                folder = out / subset / name
                for stem in ("mixture", *STEMS):
                    path = folder / f"{stem}.wav"
                    if path.relative_to(out).as_posix() not in wanted:
                        path.unlink(missing_ok=True)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def endless_source(
    seed: int, seconds: float, sample_rate: int = 44100, *, start: int = 0, step: int = 1
) -> Iterator[dict[str, np.ndarray]]:
    """New songs forever: yields stem dicts as :func:`compose_song`, one fresh seed each.

    Song k (k = start, start + step, ...) uses ``song_seed(seed, k, stream=1)``; ``start``
    and ``step`` let several data-loading workers share out the songs between them.
    """
    _check_song_args(seed, seconds, sample_rate)
    if step < 1 or start < 0:
        raise BsrError(f"start must be >= 0 and step >= 1, got {start}, {step}")
    for index in itertools.count(start, step):
        yield compose_song(song_seed(seed, index, stream=1), seconds, sample_rate)


class SynthStems(IterableDataset):
    """An endless PyTorch dataset of practice songs, for training with no files at all.

    Each item is a float32 tensor of shape (4, 2, samples): (stem, channel, time), stems in
    the order vocals, drums, bass, other. With a DataLoader of W workers, worker w makes
    songs w, w + W, w + 2W, ... of :func:`endless_source`, so no two workers repeat a song
    and the whole run is the same every time.
    """

    def __init__(self, seed: int, seconds: float, sample_rate: int = 44100) -> None:
        super().__init__()
        _check_song_args(seed, seconds, sample_rate)
        self.seed, self.seconds, self.sample_rate = seed, seconds, sample_rate

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()  # None in the main process, else this worker's id and count
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        source = endless_source(self.seed, self.seconds, self.sample_rate, start=start, step=step)
        for stems in source:
            yield torch.from_numpy(np.stack([stems[name].T for name in STEMS]))


# ---------------------------------------------------------------------------------------
# Measuring: speed, and how hard the songs are to separate
# ---------------------------------------------------------------------------------------


def benchmark(seconds: float = 20.0, songs: int = 3) -> float:
    """How many times faster than real time :func:`compose_song` runs (songs 0..songs-1)."""
    started = time.perf_counter()
    for seed in range(songs):
        compose_song(seed, seconds)
    return songs * seconds / (time.perf_counter() - started)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-distortion ratio in dB: 10 log10(sum s^2 / sum (s - estimate)^2)."""
    reference = np.asarray(reference, dtype=np.float64)
    error = np.sum((reference - estimate) ** 2)
    return float(10.0 * np.log10(np.sum(reference**2) / max(error, 1e-20)))


def oracle_sdr(stems: dict[str, np.ndarray], n_fft: int = 4096) -> dict[str, dict[str, float]]:
    """Two yardsticks for how separable a song is, per stem: {"irm": dB, "eq": dB}.

    * ``irm``: the *ideal ratio mask*, ``|S_j| / sum_k |S_k|`` for every STFT bin, applied
      to the mixture. It knows the answer bin by bin, so it is near the best any mask can
      do; a good separator approaches it.
    * ``eq``: the best *fixed equaliser*, one real gain per stem and frequency,
      ``g_f = sum_t Re(S_j conj(X)) / sum_t |X|^2`` over the whole song. If the stems sat in
      separate frequency bands this would be as good as the mask. When it is far worse,
      separating needs what a mask can do and an EQ cannot: follow the music in time.

    ``stems`` maps names to (samples, channels) arrays; the STFT has ``n_fft`` points and
    hop ``n_fft // 4`` (torch.stft, Hann window).
    """

    names = [name for name in STEMS if name in stems]
    audio = {name: torch.from_numpy(np.ascontiguousarray(stems[name].T)) for name in names}
    mixture = torch.from_numpy(np.ascontiguousarray(mixture_of(stems).T))  # (channels, samples)
    window = torch.hann_window(n_fft)
    length = mixture.shape[-1]

    def stft(x: torch.Tensor) -> torch.Tensor:  # (channels, freqs, frames), complex64
        return torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True)

    def istft(spec: torch.Tensor) -> np.ndarray:
        return torch.istft(spec, n_fft, n_fft // 4, window=window, length=length).numpy()

    spectra = {name: stft(audio[name]) for name in names}
    mix_spec = stft(mixture)
    magnitude_sum = sum(s.abs() for s in spectra.values()) + 1e-12
    mix_power = mix_spec.abs().square().sum(dim=-1, keepdim=True) + 1e-12
    result = {}
    for name in names:
        mask = spectra[name].abs() / magnitude_sum
        gain = (spectra[name] * mix_spec.conj()).real.sum(dim=-1, keepdim=True) / mix_power
        reference = audio[name].numpy().astype(np.float64)
        result[name] = {
            "irm": sdr(reference, istft(mask * mix_spec)),
            "eq": sdr(reference, istft(gain * mix_spec)),
        }
    return result
