"""The data the course notebooks use, made on first use and reused afterwards.

Every notebook starts with ``practice, examples = ensure_course_data(DATA, SONGS, SECONDS)``,
where ``DATA`` is the course folder's ``data/`` (:mod:`bsr.home`, ``$BSR_HOME``):

* ``DATA / "practice"``: a generated practice set in MUSDB18HQ layout
  (:func:`bsr.data.synth.write_practice_set`), ``songs`` songs of ``seconds`` seconds;
* ``DATA / "examples"``: the real MUSDB18 excerpts that need no download
  (:func:`bsr.data.examples.write_examples`).

Whatever is already there is kept: a practice set made earlier with other settings (say by
``bsr data synth --songs 6 --seconds 20``) is used as it is rather than overwritten, and
the notebooks crop what they load to their own ``SECONDS``. Delete the folder to start over.
"""

from __future__ import annotations

import json
from pathlib import Path

from bsr.data.examples import FALCON, write_examples
from bsr.data.synth import MANIFEST, write_practice_set
from bsr.home import course_folder


def _practice_settings(folder: Path) -> dict | None:
    """The settings recorded in a practice set's manifest, or None if there is none."""
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def ensure_examples(root: str | Path | None = None) -> Path:
    """Make the real examples under ``root / "examples"`` if absent; returns that folder.

    ``root`` defaults to the course folder's ``data/``.
    """
    examples = Path(root if root is not None else course_folder("data")) / "examples"
    if not (examples / "test" / FALCON / "mixture.wav").is_file():
        write_examples(examples)
        print(f"made the real examples in {examples}")
    else:
        print(f"found the real examples in {examples}")
    return examples


def ensure_course_data(
    root: str | Path | None = None, songs: int = 4, seconds: float = 10.0, seed: int = 7
) -> tuple[Path, Path]:
    """Make the practice set and the real examples under ``root`` if absent.

    ``root`` defaults to the course folder's ``data/``. Returns ``(root / "practice",
    root / "examples")``. Prints one line per data set saying whether it was made or found.
    """
    root = Path(root if root is not None else course_folder("data"))
    practice = root / "practice"
    old = _practice_settings(practice)
    if old is None:
        write_practice_set(practice, songs=songs, seconds=seconds, seed=seed)
        print(f"made the practice set: {songs} x {seconds:g} s songs in {practice}")
    else:
        print(
            f"found a practice set in {practice}: {old.get('songs')} x {old.get('seconds'):g} s "
            f"songs (seed {old.get('seed')}); delete the folder to make a new one"
        )
    return practice, ensure_examples(root)
