"""The drum stem: a kit of synthesised hits placed on a 16-step grid.

A kick is a sine whose pitch sweeps down; a snare is a short tone plus band-passed noise;
hats and cymbals are high-passed noise with a few inharmonic square waves for the metallic
ring. Hits are rendered once per song and *placed* with swing, accents and fills.
"""

from __future__ import annotations

import math

import numpy as np

from bsr.data.synth.plan import Song, choice
from bsr.data.synth.sound import butterworth, pan, place, seconds_to_samples


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
    click = butterworth(rng.standard_normal(t.size) * np.exp(-t / 0.002), sr, "lowpass", 5000)
    kit["kick"] = np.tanh(drive * body) / math.tanh(drive) + 0.3 * click
    # Snare: a short tone (the drum head) plus band-passed noise (the snare wires).
    t = time_axis(rng.uniform(0.2, 0.35))
    head = rng.uniform(160, 240)
    tone = (np.sin(2 * np.pi * head * t) + 0.5 * np.sin(2 * np.pi * 1.6 * head * t)) * np.exp(
        -t / rng.uniform(0.03, 0.07)
    )
    band = (rng.uniform(1200, 2500), rng.uniform(6000, 9000))
    wires = butterworth(rng.standard_normal(t.size), sr, "bandpass", band)
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
        kit[name] = butterworth(noise, sr, "highpass", cutoff) * np.exp(-t / tau)
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


def render_drums(song: Song, rng: np.random.Generator) -> np.ndarray:
    """The drum stem, shape (samples, 2)."""
    sr, n = song.sample_rate, song.samples
    out = np.zeros((n, 2), dtype=np.float32)
    kit = _drum_kit(sr, rng)
    kick = KICK_PATTERNS[int(rng.integers(len(KICK_PATTERNS)))]
    busy_kick = KICK_PATTERNS[int(rng.integers(len(KICK_PATTERNS)))]
    song.extras["busy_16ths"] = bool(rng.random() < 0.5)
    song.extras["open_hats"] = bool(rng.random() < 0.5)
    hat_side = choice(rng, (-1.0, 1.0)) * rng.uniform(0.2, 0.45)
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
                place(out, seconds_to_samples(when, sr), kit[name], gain * pan(pans[name]))
    return out
