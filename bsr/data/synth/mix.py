"""Mixing: the four rendered stems at pop-mix levels, and :func:`compose_song`, the whole path.

    plan_song(seed)  ->  render drums, bass, other, vocals  ->  mix_stems  ->  stems

Each stem is scaled to a realistic loudness, the song fades out, and all stems are scaled
together so that their sum (the mixture, :func:`mixture_of`) never clips.
"""

from __future__ import annotations

import numpy as np

from bsr.data.synth.bass import render_bass
from bsr.data.synth.drums import render_drums
from bsr.data.synth.other import render_other
from bsr.data.synth.plan import Song, plan_song
from bsr.data.synth.sound import seconds_to_samples
from bsr.data.synth.vocals import render_vocals

STEMS = ("vocals", "drums", "bass", "other")


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


def mix_stems(stems: dict[str, np.ndarray], song: Song, rng) -> dict[str, np.ndarray]:
    """Set stem levels, fade the ends, and scale so the mixture peaks below 1 (float32)."""
    sr, n = song.sample_rate, song.samples
    fade_in = min(n, seconds_to_samples(0.005, sr))
    fade_out = min(n, seconds_to_samples(min(3.0, 0.15 * song.seconds), sr))
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


def compose_song(seed: int, seconds: float, sample_rate: int = 44100) -> dict[str, np.ndarray]:
    """Compose and render the song for ``seed``.

    Returns ``{"vocals", "drums", "bass", "other"}`` -> float32 arrays of shape
    (samples, 2), where samples = round(seconds * sample_rate). Their sum is the mixture;
    it peaks below 1. The same arguments always give bit-identical audio.
    """
    song = plan_song(seed, seconds, sample_rate)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))  # the sound's own dice
    stems = {
        "drums": render_drums(song, rng),
        "bass": render_bass(song, rng),
        "other": render_other(song, rng),
        "vocals": render_vocals(song, rng),
    }
    return mix_stems(stems, song, rng)


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The mixture: the float32 sum of the stems, always added in the order of STEMS."""
    total = np.zeros_like(stems[STEMS[0]], dtype=np.float32)
    for name in STEMS:
        total = total + stems[name].astype(np.float32)
    return total
