"""The bass stem: the chord roots in the low register, in one of four timbres.

A sine, a saw through a low-pass whose brightness decays, a square, or a plucked string,
playing a per-song pattern (root, octave, fifth, approach note) for every chord.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from bsr.data.synth.plan import Song
from bsr.data.synth.sound import (
    NoteCache,
    butterworth,
    envelope,
    karplus_strong,
    midi_hz,
    oscillator,
    pan,
    place,
    saw_table,
    seconds_to_samples,
    square_table,
    wavetable,
)

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
    freq = float(midi_hz(midi))
    if kind == "pluck":
        tone = karplus_strong(freq, n, sr, params["decay"], 0.3, rng)
        tone = butterworth(tone, sr, "lowpass", 4 * params["cutoff"] / 3)  # a bass, not a guitar
        tone = tone / (np.max(np.abs(tone)) + 1e-9)
        return tone + 0.5 * oscillator(wavetable(np.array([1.0])), freq, n, sr)  # weight
    if kind == "sub":
        return oscillator(wavetable(np.array([1.0, 0.3, 0.1])), freq, n, sr)
    table = saw_table(freq, sr) if kind == "saw" else square_table(freq, sr)
    raw = oscillator(table, freq, n, sr)
    # A filter that closes after the attack; two fixed filters cross-faded are much cheaper
    # than one that changes its cutoff every sample.
    bright = butterworth(raw, sr, "lowpass", params["cutoff"] * 3.0)
    dark = butterworth(raw, sr, "lowpass", params["cutoff"])
    sweep = np.exp(-np.arange(n) / (0.08 * sr))
    return dark + (bright - dark) * sweep


def _bass_note(kind: str, tone: np.ndarray, hold: float, sr: int, params: dict) -> np.ndarray:
    """Shape a bass ``tone`` (n,) with its envelope: ``hold`` seconds, then a short release."""
    n = tone.size
    if kind == "pluck":
        return tone * envelope(n, sr, 0.003, 0.5, 0.4, hold)
    env = envelope(n, sr, 0.005, params["decay"], params["sustain"], hold)
    if kind == "sub":  # a little saturation adds harmonics that small speakers can play
        return np.tanh(params["drive"] * tone * env) / math.tanh(params["drive"])
    return tone * env


def render_bass(song: Song, rng: np.random.Generator) -> np.ndarray:
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
    cache, tones = NoteCache(), NoteCache()
    eighth = song.beat / 2.0
    gate = rng.uniform(0.75, 0.95)
    longest = seconds_to_samples(8 * eighth * gate + 0.05, sr) + 1
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
            size = seconds_to_samples(hold + 0.05, sr)
            midi = notes[which]
            # Render each pitch once at the longest length, then cut and shape it per use.
            raw = tones.get((midi,), partial(_bass_tone, kind, midi, longest, sr, params, rng))
            tone = cache.get((midi, size), partial(_bass_note, kind, raw[:size], hold, sr, params))
            when = chord.start + start * eighth
            velocity = (0.95 if start % 2 == 0 else 0.8) * rng.uniform(0.9, 1.0)
            place(out, seconds_to_samples(when, sr), tone, velocity)
    return out[:, None] * pan(0.0)
