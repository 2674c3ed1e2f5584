"""Training and validation datasets that read a MUSDB18HQ-layout wav folder.

A MUSDB18 root (``.stem.mp4`` files) works too: it is read through its wav cache, converted
on first use (:func:`bsr.data.wavcache.wav_root`).

:class:`TrainingSet` builds every training example from scratch, as in the BS-RoFormer
paper: each of the four stems comes from an independently chosen song and offset
("random mixing"), gets a random gain and may be silenced, and the model's input mixture
is the *sum* of the returned stems. So many more distinct mixtures exist than songs.

:class:`ValidationSet` is the opposite: fixed chunks, no augmentation, the stored mixture.

Reproducibility: item ``i`` of epoch ``e`` is drawn from ``np.random.default_rng([seed, e,
i])`` and from nothing else. DataLoader workers hand out indices in whatever order and
split; since no random state is carried from one item to the next, the result is the same
for 0, 1 or 8 workers and needs no ``worker_init_fn``. (The usual pitfall, workers forked
with identical global NumPy states returning identical "random" items, cannot happen.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from bsr.data.musdb import STEMS, WavSong, validate_wav_root
from bsr.data.wavcache import wav_root
from bsr.errors import BsrError


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dBFS of an array of any shape (a full-scale sine is about -3 dB).

    Silence gives -200 dB rather than -inf, so comparisons stay well defined.
    """
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-10))


def read_chunk(path: Path, start: int, frames: int) -> np.ndarray:
    """Read ``frames`` samples from ``start`` (only those, not the whole file).

    Returns float32 ``(channels, frames)``, zero-padded if the file ends early.
    """
    audio, _ = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    chunk = np.zeros((audio.shape[1], frames), dtype=np.float32)
    chunk[:, : audio.shape[0]] = audio.T
    return chunk


def common_rate(songs: list[WavSong], root: str | Path) -> int:
    """The one sample rate of all ``songs`` (mixing songs at different rates is wrong)."""
    rates = sorted({song.rate for song in songs})
    if len(rates) > 1:
        raise BsrError(f"songs in {root} mix sample rates {rates}: resample them all to one rate")
    return rates[0]


def check_probability(name: str, value: float) -> None:
    """Raise if ``value`` is not a probability."""
    if not 0.0 <= value <= 1.0:
        raise BsrError(f"{name}={value} is not a probability: use a value between 0 and 1")


class TrainingSet(Dataset):
    """Random-mix training chunks from a MUSDB18HQ-layout folder, as float32 tensors.

    Each item is ``(stems=4, channels=2, samples)`` in the order vocals, drums, bass, other;
    the training mixture is ``item.sum(0)`` (so it matches the stems exactly, unlike the
    stored mixture.wav). ``len(dataset) == steps_per_epoch * batch_size``, so a DataLoader
    with that ``batch_size`` yields ``steps_per_epoch`` batches; the index only seeds the draw.

    Args:
        root: folder with ``train/<song>/{mixture,vocals,drums,bass,other}.wav``, or a
            MUSDB18 root with ``train/<song>.stem.mp4`` (read through its wav cache).
        seconds: chunk length. Songs shorter than this are left out (see ``too_short``).
        split: ``'train'`` leaves out musdb's 14 validation songs; ``None`` uses all.
        cache: load every stem into RAM once (for small sets: full MUSDB18HQ needs ~30 GB).
        gain_db: each stem's gain is uniform in ``[-gain_db, +gain_db]`` dB.
        p_silence: probability that a stem is silenced (the model must output silence).
        p_swap: probability that left and right channels are swapped (all stems together);
            not in the paper, a common community augmentation (``train.p_swap``).
        p_same_song: probability that all four stems come from one song at one offset.
        min_db: a stem's chunk whose RMS is below this (dBFS) is replaced by another song's
            (the paper skips silent segments); None keeps all. Silencing comes after.
        max_tries: reads allowed per stem before giving up with an error.
    """

    def __init__(
        self,
        root: str | Path,
        seconds: float = 3.0,
        steps_per_epoch: int = 1000,
        batch_size: int = 1,
        seed: int = 0,
        subset: str = "train",
        split: str | None = None,
        cache: bool = False,
        gain_db: float = 3.0,
        p_silence: float = 0.1,
        p_swap: float = 0.0,
        p_same_song: float = 0.0,
        min_db: float | None = -50.0,
        max_tries: int = 100,
    ) -> None:
        if seconds <= 0 or steps_per_epoch < 1 or batch_size < 1 or max_tries < 1:
            raise BsrError("seconds, steps_per_epoch, batch_size and max_tries must be positive")
        if seed < 0 or gain_db < 0:
            raise BsrError(f"seed={seed} and gain_db={gain_db} must not be negative")
        probabilities = {"p_silence": p_silence, "p_swap": p_swap, "p_same_song": p_same_song}
        for name, value in probabilities.items():
            check_probability(name, value)
        root = self.root = wav_root(root, subset)  # a MUSDB18 root: its wav cache
        songs = validate_wav_root(root, subset, split)
        self.rate = common_rate(songs, root)
        self.chunk = round(seconds * self.rate)
        self.songs = [song for song in songs if song.frames >= self.chunk]
        self.too_short = [song.name for song in songs if song.frames < self.chunk]
        if not self.songs:
            longest = max(song.frames for song in songs) / self.rate
            raise BsrError(
                f"all {len(songs)} songs in {root} are shorter than the {seconds} s chunk "
                f"(longest {longest:.2f} s): use a smaller seconds"
            )
        self.length = steps_per_epoch * batch_size
        self.seed = seed
        self.gain_db, self.p_silence, self.p_swap = gain_db, p_silence, p_swap
        self.p_same_song, self.min_db, self.max_tries = p_same_song, min_db, max_tries
        self.frames = np.array([song.frames for song in self.songs])
        self.cache = self.load_all() if cache else None
        # A shared-memory tensor, so that set_epoch also reaches persistent DataLoader workers.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def load_all(self) -> dict[tuple[int, str], np.ndarray]:
        """Every stem of every song in RAM: ``(song id, stem) -> (channels, samples)``."""
        return {
            (i, stem): read_chunk(song.path(stem), 0, song.frames)
            for i, song in enumerate(self.songs)
            for stem in STEMS
        }

    def __len__(self) -> int:
        return self.length

    @property
    def epoch(self) -> int:
        """The epoch that seeds the draws (set it with :meth:`set_epoch`)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Draw different chunks in each epoch; call before iterating the DataLoader."""
        if epoch < 0:
            raise BsrError(f"epoch={epoch} is negative: epochs count from 0")
        self._epoch[0] = epoch

    def __getitem__(self, index: int) -> torch.Tensor:
        """Item ``index`` as a float32 tensor ``(4, 2, samples)``."""
        return self.draw(index)[0]

    def plan(self, rng: np.random.Generator) -> dict[str, Any]:
        """Choose songs, offsets and augmentations for one attempt (no audio is read).

        The same number of random values is drawn on every path, so that changing one
        probability does not reshuffle everything else.
        """
        same = rng.random() < self.p_same_song
        song_ids = rng.integers(len(self.songs), size=len(STEMS))
        where = rng.random(len(STEMS))  # position in the song, as a fraction
        if same:
            song_ids[:], where[:] = song_ids[0], where[0]
        room = self.frames[song_ids] - self.chunk + 1  # valid offsets per stem
        return {
            "same_song": bool(same),
            "song_ids": song_ids,
            "songs": [self.songs[i].name for i in song_ids],
            "offsets": (where * room).astype(np.int64),
            "gains_db": rng.uniform(-self.gain_db, self.gain_db, size=len(STEMS)),
            "silenced": rng.random(len(STEMS)) < self.p_silence,
            "swap": bool(rng.random() < self.p_swap),
        }

    def read(self, song_id: int, stem: str, offset: int) -> np.ndarray:
        """One stem's chunk, float32 ``(channels, chunk)``, from RAM or from disk."""
        if self.cache is not None:
            return self.cache[song_id, stem][:, offset : offset + self.chunk]
        return read_chunk(self.songs[song_id].path(stem), int(offset), self.chunk)

    def read_stems(self, plan: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Read the plan's four chunks, replacing silent ones: float32 ``(4, 2, chunk)``.

        As in the paper, a stem's segment quieter than ``min_db`` is skipped: that stem
        alone gets another song and place (the plan is updated), so the model is not taught
        that a stem is absent merely because its song is quiet there. Returns the chunks
        and the number of reads this took.
        """
        chunks, reads = [], 0
        for s, stem in enumerate(STEMS):
            for _ in range(self.max_tries):
                reads += 1
                chunk = self.read(plan["song_ids"][s], stem, plan["offsets"][s])
                if self.min_db is None or rms_db(chunk) >= self.min_db:
                    break
                song_id = int(rng.integers(len(self.songs)))
                plan["song_ids"][s], plan["songs"][s] = song_id, self.songs[song_id].name
                plan["offsets"][s] = int(rng.random() * (self.frames[song_id] - self.chunk + 1))
            else:
                raise BsrError(
                    f"no {stem} chunk louder than {self.min_db} dB in {self.max_tries} tries: "
                    f"the {stem} stems in {self.root} are (nearly) silent; check them or "
                    "lower min_db"
                )
            chunks.append(chunk)
        return np.stack(chunks), reads

    def augment(self, stems: np.ndarray, plan: dict[str, Any]) -> np.ndarray:
        """Apply a plan's gains, silencing and channel swap to ``(4, 2, chunk)`` stems."""
        scale = 10.0 ** (plan["gains_db"] / 20.0) * ~plan["silenced"]
        stems = stems * scale.astype(np.float32)[:, None, None]  # a new array: cache untouched
        if plan["swap"]:
            stems = stems[:, ::-1]
        return np.ascontiguousarray(stems)

    def draw(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Item ``index`` of the current epoch and how it was made.

        Returns ``(stems, info)``: stems is float32 ``(4, 2, samples)``; info holds the
        plan (``song_ids``, ``songs``, ``offsets``, ``gains_db``, ``silenced``, ``swap``,
        ``same_song``), the mixture level ``mixture_db`` and the number of chunk reads
        ``tries`` (4 when no stem was silent).
        """
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        plan = self.plan(rng)
        raw, reads = self.read_stems(plan, rng)
        stems = self.augment(raw, plan)
        level = rms_db(stems.sum(axis=0))
        return torch.from_numpy(stems), {**plan, "mixture_db": level, "tries": reads}


class ValidationSet(Dataset):
    """Fixed, un-augmented chunks: ``chunks_per_song`` evenly spaced chunks of every song.

    Item ``i`` is ``(mixture, stems)``: float32 tensors ``(2, samples)`` and
    ``(4, 2, samples)`` (vocals, drums, bass, other). The mixture is mixture.wav as stored.
    Songs shorter than the chunk are zero-padded rather than dropped, so every song counts.
    ``items[i]`` is ``(song name, offset in samples)``.
    """

    def __init__(
        self,
        root: str | Path,
        seconds: float = 10.0,
        subset: str = "train",
        split: str | None = "valid",
        chunks_per_song: int = 1,
    ) -> None:
        if seconds <= 0 or chunks_per_song < 1:
            raise BsrError("seconds and chunks_per_song must be positive")
        root = wav_root(root, subset)  # a MUSDB18 root: its wav cache
        songs = validate_wav_root(root, subset, split)
        self.rate = common_rate(songs, root)
        self.chunk = round(seconds * self.rate)
        self.songs = {song.name: song for song in songs}
        self.items = [
            (song.name, offset) for song in songs for offset in self.offsets(song, chunks_per_song)
        ]

    def offsets(self, song: WavSong, count: int) -> list[int]:
        """Start samples of ``count`` chunks centred in equal parts of the song."""
        room = song.frames - self.chunk
        if room <= 0:
            return [0]
        return [int(room * (j + 0.5) / count) for j in range(count)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixture (2, samples), stems (4, 2, samples))`` of chunk ``index``."""
        name, offset = self.items[index]
        song = self.songs[name]
        mixture = read_chunk(song.path("mixture"), offset, self.chunk)
        stems = np.stack([read_chunk(song.path(stem), offset, self.chunk) for stem in STEMS])
        return torch.from_numpy(mixture), torch.from_numpy(stems)
