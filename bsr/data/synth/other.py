"""The "other" stem: a chord bed and a lead layer, everything but vocals, drums and bass.

The bed is detuned saws (a pad), an organ or an FM electric piano; the lead plays
Karplus-Strong plucked arpeggios, FM bells, square arpeggios or guitar-like strums. Both
voice every chord near a fixed centre, so that the voices move by small steps.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bsr.data.synth.plan import Song, choice
from bsr.data.synth.sound import (
    NoteCache,
    butterworth,
    echo,
    envelope,
    fm,
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
        freq = float(midi_hz(p))
        if kind == "pad":  # two detuned saws per note, one left and one right: width
            table = saw_table(freq, sr)
            for side, cents in ((0, -params["detune"]), (1, params["detune"])):
                f = freq * 2.0 ** (cents / 1200.0)
                out[:, side] += oscillator(table, f, n, sr, rng.random())
        elif kind == "organ":  # drawbars: a few harmonics, always the same mix
            table = params["organ_table"]
            out += oscillator(table, freq, n, sr, rng.random())[:, None] * 0.7
        else:  # "epiano": FM with ratio 1, bright attack
            tone = fm(freq, n, sr, 1.0, params["index"], 1.2, 0.25)
            out += tone[:, None] * 0.8
    if kind == "pad":
        out = butterworth(out, sr, "lowpass", params["cutoff"])
        env = envelope(n, sr, params["attack"], 1.0, 1.0, hold)
    elif kind == "organ":
        env = envelope(n, sr, 0.01, 1.0, 1.0, hold)
    else:
        env = envelope(n, sr, 0.002, 5.0, 1.0, hold)
    return out * env[:, None] / len(pitches) ** 0.5


def _lead_note(kind: str, midi: int, n: int, sr: int, params: dict, rng) -> np.ndarray:
    """One note of the lead layer, shape (n,)."""
    freq = float(midi_hz(midi))
    if kind in ("pluck", "strum"):
        tone = karplus_strong(freq, n, sr, params["pluck_decay"], params["brightness"], rng)
        return tone / (np.max(np.abs(tone)) + 1e-9)
    if kind == "bell":
        return fm(freq, n, sr, params["bell_ratio"], params["index"], 0.5, 0.15)
    tone = oscillator(square_table(freq, sr), freq, n, sr)
    return tone * envelope(n, sr, 0.003, 0.1, 0.25, n / sr - 0.06)


def render_other(song: Song, rng: np.random.Generator) -> np.ndarray:
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
        "organ_table": wavetable(harmonics),
        "index": rng.uniform(0.8, 2.5),
        "bell_ratio": choice(rng, (1.4, 2.76, 3.5)),
        "pluck_decay": rng.uniform(0.25, 0.8),
        "brightness": rng.uniform(0.4, 0.95),
    }
    bed_centre = int(rng.integers(52, 62))
    lead_centre = int(rng.integers(64, 74))
    bed_pan = rng.uniform(-0.3, 0.3)
    lead_pan = -np.sign(bed_pan) * rng.uniform(0.2, 0.6)
    arp_order = rng.permutation(8)
    arp_rate = choice(rng, (2, 4))  # notes per beat
    comp = choice(rng, ((0, 3, 6), (1, 3, 5, 7), (0, 2, 3, 5, 6)))  # strum / e-piano hits
    bed_cache, lead_cache = NoteCache(), NoteCache()
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
                size = seconds_to_samples(hold + 0.4, sr)
                make = partial(_bed_chord, bed_kind, pitches, size, hold, sr, params, rng)
                chord_tone = bed_cache.get((tuple(pitches), size), make)
                start = seconds_to_samples(chord.start + offset, sr)
                place(out, start, chord_tone, 0.5 * bed * pan(bed_pan))
        if lead > 0:
            tones = _voicing(chord.pitch_classes, lead_centre)
            tones = tones + [t + 12 for t in tones]
            if lead_kind == "strum":  # a guitar-like strum: strings a few ms apart
                for e in comp:
                    if e * eighth >= chord.duration:
                        continue
                    for k, p in enumerate(_voicing(chord.pitch_classes, lead_centre - 7)):
                        size = seconds_to_samples(0.8, sr)
                        make = partial(_lead_note, lead_kind, p, size, sr, params, rng)
                        note = lead_cache.get((p, size), make)
                        when = chord.start + e * eighth + 0.012 * k
                        gain = 0.3 * lead * rng.uniform(0.8, 1.0)
                        place(lead_bus, seconds_to_samples(when, sr), note, gain)
                continue
            step = song.beat / arp_rate
            count = int(round(chord.duration / step))
            for j in range(count):
                p = tones[arp_order[j % 8] % len(tones)]
                size = seconds_to_samples(0.6 if lead_kind != "square" else 1.5 * step, sr)
                make = partial(_lead_note, lead_kind, p, size, sr, params, rng)
                note = lead_cache.get((p, size), make)
                accent = 1.0 if j % arp_rate == 0 else 0.75
                when = chord.start + j * step
                gain = 0.35 * lead * accent * rng.uniform(0.85, 1.0)
                place(lead_bus, seconds_to_samples(when, sr), note, gain)
    out += lead_bus[:, None] * pan(lead_pan)
    return echo(out, sr, 0.75 * song.beat, 0.3, 2)
