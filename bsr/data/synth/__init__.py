"""Practice songs made from a seed: music with separate stems and no download.

Source separation needs *stems*: the vocals, drums, bass and "other" parts of a song as
separate recordings, so that a model can learn to pull them out of their sum. MUSDB18 is
the standard set, but it is a 20 GB download behind a licence form. This package composes
small songs instead, MUSDB18-style, from nothing but a random seed.

How a song is made, one module per step:

1. **Plan** (:mod:`~bsr.data.synth.plan`). The seed picks a tempo, a key and mode, chord
   progressions, a form and which instruments play in each section, so that the stems
   *take turns*.
2. **Render** each stem with textbook synthesis (:mod:`~bsr.data.synth.sound` holds the
   oscillators, envelopes and filters): :mod:`~bsr.data.synth.drums`,
   :mod:`~bsr.data.synth.bass`, :mod:`~bsr.data.synth.other` (a chord bed and a lead) and
   :mod:`~bsr.data.synth.vocals` (a source-filter voice singing syllables).
3. **Mix** (:mod:`~bsr.data.synth.mix`). Each stem is scaled to a realistic loudness, the
   song fades out, and the stems are scaled together so that the mixture never clips.

Then :mod:`~bsr.data.synth.practice_set` writes songs as a MUSDB18HQ-style folder (or
streams them forever), and :mod:`~bsr.data.synth.measure` times the generator and measures
how separable the songs are. A 20-second song takes about 0.2 s of one CPU core (some
100x real time).

To listen: ``soundfile.write("song.wav", mixture_of(compose_song(0, 20.0)), 44100)``.

Shapes: a mono signal is ``(samples,)``, a stem is ``(samples, channels)`` with two
channels, exactly like ``musdb``'s ``track.targets["vocals"].audio``.

The public functions, all importable from here:

* :func:`compose_song` -- one song's stems, ``{"vocals": (samples, 2), ...}``.
* :func:`write_practice_set` -- a MUSDB18HQ-style folder that ``musdb`` opens;
  :func:`practice_settings` and :func:`holds_practice_set` tell whether a folder already
  holds the set of given settings (its manifest, :func:`read_manifest`).
* :func:`endless_source` and :class:`SynthStems` -- new songs forever, for training
  without a disk.
* :func:`oracle_sdr` -- how well an ideal mask and a fixed equaliser separate a song.
* :func:`benchmark` -- how many times faster than real time :func:`compose_song` runs.
"""

from bsr.data.synth.measure import benchmark, oracle_sdr, sdr
from bsr.data.synth.mix import STEMS, compose_song, mixture_of
from bsr.data.synth.plan import Chord, Section, Song, plan_song
from bsr.data.synth.practice_set import (
    MANIFEST,
    SynthStems,
    endless_source,
    holds_practice_set,
    practice_settings,
    read_manifest,
    song_folder_name,
    song_seed,
    write_float_wav,
    write_practice_set,
)

__all__ = [
    "MANIFEST",
    "STEMS",
    "Chord",
    "Section",
    "Song",
    "SynthStems",
    "benchmark",
    "compose_song",
    "endless_source",
    "holds_practice_set",
    "mixture_of",
    "oracle_sdr",
    "plan_song",
    "practice_settings",
    "read_manifest",
    "sdr",
    "song_folder_name",
    "song_seed",
    "write_float_wav",
    "write_practice_set",
]
