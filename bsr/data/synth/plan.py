"""Planning a practice song: everything decided before any sound is made.

The seed picks a tempo, a key and mode, chord progressions, a form (intro, verse, chorus,
break, bridge, outro) and which instruments play in each section (:func:`plan_song`).
Sections are what make the stems *take turns*: drums and bass stop in the break, the bass
waits for the first verse, the singer rests between phrases and sits out the intro. The
result is a :class:`Song`, a score without audio, that the instrument modules render.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from bsr.errors import BsrError

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


def choice(rng: np.random.Generator, options):
    """One element of ``options`` (any sequence), drawn with ``rng``."""
    return options[int(rng.integers(len(options)))]


def _triad(tonic: int, mode: str, degree: int, seventh: bool) -> tuple[int, ...]:
    """Pitch classes of the chord built in thirds on a scale degree, root first."""
    scale = SCALES[mode]
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return tuple((tonic + scale[(degree + s) % 7]) % 12 for s in steps)


def _arrangement(rng: np.random.Generator) -> dict[str, dict[str, object]]:
    """What plays in each kind of section; this is what makes the stems take turns."""
    verse_layer = choice(rng, ("bed", "lead"))
    intro_layer = choice(rng, ("bed", "lead"))
    break_layer = choice(rng, ("bed", "lead"))
    return {
        "intro": {
            "drums": choice(rng, ("off", "hats")),
            "bass": choice(rng, ("off", "off", "long")),
            "bed": 0.8 if intro_layer == "bed" else 0.0,
            "lead": 0.8 if intro_layer == "lead" else 0.0,
            "vocals": 0.0,
        },
        "verse": {
            "drums": choice(rng, ("groove", "groove", "half")),
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
    middle += [(choice(rng, ("bridge", "break")), 1), ("chorus", 2)]
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
    check_song_args(seed, seconds, sample_rate)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    bpm = float(rng.integers(84, 137))
    tonic = int(rng.integers(12))
    mode = choice(rng, ("major", "major", "minor", "minor", "dorian"))
    title = f"{choice(rng, MOODS[mode])} {choice(rng, NOUNS)}"
    family = PROGRESSIONS[mode]
    verse, chorus, bridge = (family[i] for i in rng.permutation(len(family))[:3])
    progressions = {"verse": verse, "chorus": chorus, "bridge": bridge}
    progressions.update(intro=verse, outro=chorus, **{"break": verse})
    instruments = {
        "bass": choice(rng, ("sub", "saw", "square", "pluck")),
        "bed": choice(rng, ("pad", "organ", "epiano")),
        "lead": choice(rng, ("pluck", "bell", "square", "strum")),
        "singer": choice(rng, ("low", "high")),
    }
    swing = float(choice(rng, (0.0, 0.0, 0.12, 0.25)))
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


def check_song_args(seed: int, seconds: float, sample_rate: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise BsrError(f"seed must be a whole number >= 0, got {seed!r}; pick e.g. --seed 0")
    if not isinstance(seconds, int | float | np.number) or not 0 < seconds < math.inf:
        raise BsrError(f"seconds must be a number > 0, got {seconds!r}; use e.g. --seconds 20")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise BsrError(f"sample_rate must be a whole number, got {sample_rate!r}; use 44100")
    if sample_rate < 16000:
        raise BsrError(f"sample_rate must be at least 16000 Hz, got {sample_rate}; use 44100")
