"""``bsr bench data``: how fast practice songs are written and training chunks drawn."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bsr.bench.common import Table, check_positive, machine_summary, software_summary
from bsr.errors import BsrError


def bench_data(
    songs: int = 3,
    song_seconds: float = 10.0,
    segment_seconds: float = 3.0,
    items: int = 16,
    sample_rate: int = 44100,
    seed: int = 0,
) -> Table:
    """Practice-set generation and :class:`~bsr.data.sampler.TrainingSet` throughput.

    Writes a practice set of ``songs`` songs into a temporary folder (timed: composing
    and writing the wav files), then draws ``items`` random-mix training chunks of
    ``segment_seconds`` from it, reading from disk and from a RAM cache.
    """
    from bsr.data.sampler import TrainingSet
    from bsr.data.synth import write_practice_set

    if isinstance(songs, bool) or not isinstance(songs, int) or songs < 1:
        raise BsrError(f"--songs must be a whole number >= 1, got {songs!r}")
    check_positive(song_seconds=song_seconds, segment_seconds=segment_seconds, items=items)
    if segment_seconds > song_seconds:
        raise BsrError(
            f"--segment-seconds {segment_seconds} is longer than the songs "
            f"({song_seconds} s): make it shorter"
        )
    table = Table(
        title="bsr bench data",
        columns=["what", "items", "audio s", "seconds", "items/s", "audio s/s"],
        header=[
            machine_summary(),
            software_summary(),
            f"config: {songs} practice songs of {song_seconds:g} s at {sample_rate} Hz (seed "
            f"{seed}); {items} training chunks of {segment_seconds:g} s, main process",
        ],
    )

    def add(what: str, count: int, audio_seconds: float, elapsed: float) -> None:
        table.rows.append(
            {
                "what": what,
                "items": count,
                "audio s": audio_seconds,
                "seconds": elapsed,
                "items/s": count / elapsed,
                "audio s/s": audio_seconds / elapsed,
            }
        )

    with tempfile.TemporaryDirectory(prefix="bsr-bench-") as folder:
        root = Path(folder) / "practice"
        start = time.perf_counter()
        write_practice_set(root, songs, song_seconds, seed, sample_rate=sample_rate)
        elapsed = time.perf_counter() - start
        add("practice set (compose + write 5 wavs)", songs, songs * song_seconds, elapsed)
        for cache in (False, True):
            data = TrainingSet(
                root, seconds=segment_seconds, steps_per_epoch=items, seed=seed, cache=cache
            )
            data[0]  # warm-up: file handles, page cache
            start = time.perf_counter()
            for index in range(items):
                data[index]
            elapsed = time.perf_counter() - start
            where = "RAM cache" if cache else "disk"
            add(f"TrainingSet random mix ({where})", items, items * segment_seconds, elapsed)
    table.notes = [
        "audio s/s = seconds of audio made per second (x real time); a training chunk is "
        "4 stems, a practice song 5 files (mixture + 4 stems)",
    ]
    return table
