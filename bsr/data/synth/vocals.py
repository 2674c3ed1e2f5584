"""The vocal stem: a source-filter voice singing a melody of syllables.

A glottal pulse at the melody's pitch, with vibrato and glides, goes through resonators at
the *formant* frequencies of a vowel; the formants move at every syllable, and voiceless
consonants add short bursts of noise (:func:`render_vocals` spells out the steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import signal

from bsr.data.synth.plan import SCALES, Song, choice
from bsr.data.synth.sound import (
    TABLE_SIZE,
    NoteCache,
    butterworth,
    echo,
    midi_hz,
    one_pole,
    place,
    seconds_to_samples,
)

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
            rhythm, pos = [], int(choice(rng, (0, 0, 1)))
            while pos < length - rest:
                d = min(int(choice(rng, (1, 1, 2, 2, 2, 3, 4))), length - rest - pos)
                rhythm.append((pos, d))
                pos += d
        for i, (pos, d) in enumerate(rhythm):
            if pos >= length:
                break
            d = min(d, length - pos)
            degree = int(np.clip(degree + choice(rng, (-2, -1, -1, 0, 1, 1, 2)), low, high))
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
            vowel = choice(rng, ("a", "a", "e", "i", "o", "o", "u"))
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
    n = seconds_to_samples(length, sample_rate)
    noise = butterworth(rng.standard_normal(n), sample_rate, btype, band)
    t = np.arange(n) / n
    shape = np.minimum(t / 0.3, 1.0) if kind in ("s", "sh", "h") else np.exp(-4.0 * t)
    return level * noise * shape * np.minimum((1.0 - t) / 0.2, 1.0)


def render_vocals(song: Song, rng: np.random.Generator) -> np.ndarray:
    """The vocal stem, shape (samples, 2), step by step:

        syllables -> where they are sung -> pitch curve -> glottal source x loudness
                  -> formant filters -> consonant noise -> echo

    The steps draw from ``rng`` in this fixed order, so a seed always gives the same voice.
    """
    sr, n = song.sample_rate, song.samples
    line = [s for s in _vocal_line(song, rng) if s.start * sr < n - 1]
    if not line:
        return np.zeros((n, 2), dtype=np.float32)
    voice = _Voice.draw(song, rng)
    starts = np.array([max(0, seconds_to_samples(s.start, sr)) for s in line])
    holds = np.array([s.duration for s in line], dtype=np.float32) * 0.92
    sung = _SungTime.of(starts, holds, n, sr)
    pitch = _pitch_curve(line, sung, voice, n, sr, rng)
    source = _glottal_source(pitch, line, sr, rng)
    loudness = _loudness(line, sung, holds, sr)
    noise = rng.standard_normal(len(sung.keep), dtype=np.float32)
    voiced = loudness * (source + np.float32(voice.breath) * noise)
    full = np.zeros(n, dtype=np.float32)
    full[sung.keep] = _formant_filter(voiced, line, sung.begins, voice.formant_scale, sr)
    _add_consonants(full, line, starts, sr, rng)
    return echo(full, sr, 1.5 * song.beat, rng.uniform(0.15, 0.3), 3)


@dataclass(frozen=True)
class _Voice:
    """One song's singer: the random choices that make the voice, drawn once."""

    formant_scale: float  # a higher voice has its formants some 15 % higher
    vibrato_rate: float  # Hz
    vibrato_depth: float  # semitones
    glide: float  # seconds: how fast the voice slides to a new note
    breath: float  # level of the breath noise beside the glottal pulse

    @classmethod
    def draw(cls, song: Song, rng: np.random.Generator) -> _Voice:
        high = song.instruments["singer"] == "high"
        scale_formants = rng.uniform(1.1, 1.2) if high else rng.uniform(0.95, 1.05)
        vibrato_rate, vibrato_depth = rng.uniform(4.8, 6.2), rng.uniform(0.2, 0.5)
        glide = rng.uniform(0.03, 0.07)
        breath = rng.uniform(0.03, 0.1)
        return cls(scale_formants, vibrato_rate, vibrato_depth, glide, breath)


@dataclass(frozen=True)
class _SungTime:
    """The sung spans of the song gathered into one shorter, "compressed" timeline.

    Synthesising only where the singer sings saves most of the work; the result goes back
    into the song at ``keep``. Arrays over compressed time have ``m = len(keep)`` samples.
    """

    keep: np.ndarray  # (m,) the song's sample index of each compressed sample
    begins: np.ndarray  # (syllables,) where each syllable starts, in compressed time
    owner: np.ndarray  # (m,) the syllable each sample belongs to: the last one that started
    since: np.ndarray  # (m,) float32 seconds since that syllable started

    @classmethod
    def of(cls, starts: np.ndarray, holds: np.ndarray, n: int, sr: int) -> _SungTime:
        """From the syllables' start samples and held seconds in a song of ``n`` samples."""
        tail = seconds_to_samples(0.12, sr)  # release and formant ring after a note
        ends = np.minimum(starts + (holds * sr).astype(np.intp) + tail, n)
        edge = np.zeros(n + 1, dtype=np.int32)
        np.add.at(edge, starts, 1)
        np.add.at(edge, ends, -1)
        keep = np.flatnonzero(np.cumsum(edge[:n]) > 0)
        m = keep.size
        begins = np.searchsorted(keep, starts)
        owner = np.repeat(np.arange(len(starts)), np.diff(np.append(begins, m)))
        # Everything along the song is float32: half the memory traffic of float64 and
        # plenty of precision for audio.
        since = (np.arange(m) - begins[owner]).astype(np.float32) / np.float32(sr)
        return cls(keep, begins, owner, since)


def _pitch_curve(
    line: list[_Syllable], sung: _SungTime, voice: _Voice, n: int, sr: int, rng
) -> np.ndarray:
    """Pitch in MIDI numbers over compressed time, float32 ``(m,)``.

    Held between notes, smoothed (portamento), with vibrato that grows during long notes
    and a slow wander so that no two notes are exactly alike.
    """
    midis = np.array([s.midi for s in line], dtype=np.float32)
    clock = sung.keep.astype(np.float32) / np.float32(sr)  # real time, seconds
    pitch = one_pole(midis[sung.owner], sr, voice.glide, initial=midis[0] - 1.0)
    pitch = pitch.astype(np.float32)
    vibrato = np.sin(np.float32(2 * np.pi * voice.vibrato_rate) * clock)
    pitch += np.float32(voice.vibrato_depth) * np.clip((sung.since - 0.15) / 0.3, 0, 1) * vibrato
    wander = rng.normal(0.0, 0.08, n // 2048 + 2).astype(np.float32)
    pitch += wander[sung.keep // 2048]
    return pitch


def _glottal_source(pitch: np.ndarray, line: list[_Syllable], sr: int, rng) -> np.ndarray:
    """The buzz of the vocal folds at ``pitch`` (MIDI numbers), float32 ``(m,)``."""
    # Integrating frequency gives phase (in cycles); float64 here, as it grows large.
    phase = np.cumsum(midi_hz(pitch) / np.float32(sr), dtype=np.float64)
    midis = np.array([s.midi for s in line], dtype=np.float32)
    # As many harmonics as stay below 0.45 * sr at the highest note (no aliasing).
    harmonics = int(0.45 * sr / float(midi_hz(midis.max() + 1.0)))
    table = _glottal_table(rng.uniform(0.5, 0.7), harmonics).astype(np.float32)
    return table[((phase % 1.0) * TABLE_SIZE).astype(np.intp)]


def _loudness(line: list[_Syllable], sung: _SungTime, holds: np.ndarray, sr: int) -> np.ndarray:
    """The loudness envelope over compressed time, float32 ``(m,)``.

    Each syllable swells in and dies away after its note; legato syllables only dip a
    little. Smoothing the envelope removes clicks where a syllable starts.
    """
    owner, since = sung.owner, sung.since
    floors = np.array([0.6 if s.consonant in ("", "l") else 0.15 for s in line], np.float32)
    velocity = np.array([s.velocity for s in line], dtype=np.float32)
    attack = np.clip(since / 0.04, 0.0, 1.0)
    env = floors[owner] + (1.0 - floors[owner]) * attack
    env *= np.clip(1.0 - (since - holds[owner]) / 0.08, 0.0, 1.0) * velocity[owner]
    return one_pole(env, sr, 0.006).astype(np.float32)


def _formant_filter(
    voiced: np.ndarray, line: list[_Syllable], begins: np.ndarray, scale: float, sr: int
) -> np.ndarray:
    """Filter each syllable with the resonances of its vowel; float32 ``(m,)``, unit RMS.

    The formants glide in from the consonant (or the previous vowel) over the first 60 ms
    in small steps. The four resonators are applied as one filter (the product of their
    transfer functions), its state carried from block to block.
    """
    m = voiced.size
    sung = np.zeros(m, dtype=np.float32)
    state = np.zeros(8)
    block = seconds_to_samples(0.015, sr)
    previous = np.array(VOWELS["a"] + (F4,)) * scale
    for i, syl in enumerate(line):
        begin = begins[i]
        end = begins[i + 1] if i + 1 < len(line) else m
        if end <= begin:
            continue
        target = np.array(VOWELS[syl.vowel] + (F4,)) * scale
        origin = previous
        if syl.consonant in CONSONANT_LOCI:
            origin = np.array(CONSONANT_LOCI[syl.consonant] + (F4,)) * scale
        elif syl.consonant:
            origin = 0.5 * (previous + target)
        edges = [begin + k * block for k in range(4) if begin + k * block < end] + [end]
        for k in range(len(edges) - 1):
            formants = origin + (target - origin) * min(1.0, (k + 1) / 4)
            b, a = _vocal_tract(formants, scale, sr)
            sung[edges[k] : edges[k + 1]], state = signal.lfilter(
                b, a, voiced[edges[k] : edges[k + 1]], zi=state
            )
        previous = target
    sung /= np.sqrt(np.dot(sung, sung) / m) + 1e-12
    return sung


def _add_consonants(
    full: np.ndarray, line: list[_Syllable], starts: np.ndarray, sr: int, rng
) -> None:
    """Add the noise of voiceless consonants into ``full`` ``(samples,)``, in place.

    Each burst ends just after its vowel starts, as singers put it before the beat.
    """
    bursts = NoteCache()
    for i, syl in enumerate(line):
        if syl.consonant in NOISE_CONSONANTS:
            variant = int(rng.integers(3))
            make = partial(_consonant_burst, syl.consonant, sr, rng)
            burst = bursts.get((syl.consonant, variant), make)
            where = starts[i] - burst.size + seconds_to_samples(0.01, sr)
            place(full, where, burst, syl.velocity)
