"""The data the course notebooks use, made on first use and reused afterwards.

Every notebook starts with ``practice, examples = ensure_course_data(DATA, SONGS, SECONDS)``,
where ``DATA`` is the course folder's ``data/`` (:mod:`bsr.home`, ``$BSR_HOME``):

* a generated practice set in MUSDB18HQ layout (:func:`bsr.data.synth.write_practice_set`),
  ``songs`` songs of ``seconds`` seconds, in :func:`practice_folder`;
* ``DATA / "examples"``: the real MUSDB18 excerpts that need no download
  (:func:`bsr.data.examples.write_examples`).

A notebook gets exactly the practice set its parameter cell asks for. A set is reused only
when its manifest records the same settings; a folder holding anything else (a set made
with other settings, say by ``bsr data synth --songs 6 --seconds 20``, or your own songs) is
kept as it is, and the notebook's set goes to a folder named after its settings beside it,
``DATA / "practice-4x10s-seed7"``. Nothing is deleted or overwritten: each set costs a few
megabytes, while a rebuilt folder could be the one you were training on.
"""

from __future__ import annotations

from pathlib import Path

from bsr.data.examples import FALCON, write_examples
from bsr.data.synth import (
    holds_practice_set,
    practice_settings,
    read_manifest,
    write_practice_set,
)
from bsr.home import course_folder


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


def settings_name(songs: int, seconds: float, seed: int) -> str:
    """The folder name of a practice set made with these settings: ``practice-4x10s-seed7``."""
    return f"practice-{songs}x{seconds:g}s-seed{seed}"


def describe_folder(folder: Path) -> str:
    """What ``folder`` holds, in words, for the line that says why it is not used."""
    manifest = read_manifest(folder)
    if manifest is None:
        return "files that are not a bsr practice set"
    seconds = manifest.get("seconds")
    length = f"{seconds:g}" if isinstance(seconds, int | float) else seconds
    songs, seed = manifest.get("songs"), manifest.get("seed")
    return f"a practice set of {songs} x {length} s songs (seed {seed})"


def practice_folder(root: str | Path, songs: int, seconds: float, seed: int) -> Path:
    """Where the practice set of these settings lives under ``root``.

    ``root / "practice"`` when it is absent, empty or holds exactly this set; otherwise
    (another set, or files bsr did not make) ``root / settings_name(...)``, so that the
    folder someone else filled is never touched.
    """
    default = Path(root) / "practice"
    settings = practice_settings(songs, seconds, seed)
    if not default.exists() or not any(default.iterdir()):
        return default
    if holds_practice_set(default, settings):
        return default
    return Path(root) / settings_name(songs, seconds, seed)


def ensure_practice_set(
    root: str | Path, songs: int, seconds: float, seed: int, indent: str = ""
) -> Path:
    """The practice set of exactly these settings under ``root``, made if absent.

    Prints one line after ``indent``: found, or made (and, when ``root / "practice"`` holds
    something else, that it was left as it is).
    """
    folder = practice_folder(root, songs, seconds, seed)
    wanted = f"{songs} x {seconds:g} s songs (seed {seed})"
    if holds_practice_set(folder, practice_settings(songs, seconds, seed)):
        print(f"{indent}found the practice set of {wanted} in {folder}")
        return folder
    write_practice_set(folder, songs=songs, seconds=seconds, seed=seed)
    default = Path(root) / "practice"
    made = f"made the practice set of {wanted} in {folder}"
    if folder != default:
        made = f"{default} holds {describe_folder(default)}, left as it is; {made}"
    print(indent + made)
    return folder


def ensure_course_data(
    root: str | Path | None = None, songs: int = 4, seconds: float = 10.0, seed: int = 7
) -> tuple[Path, Path]:
    """Make the practice set and the real examples under ``root`` if absent.

    ``root`` defaults to the course folder's ``data/``. Returns ``(practice set folder,
    root / "examples")``; the practice set is the one these ``songs``, ``seconds`` and
    ``seed`` make (:func:`ensure_practice_set`). Prints one line per data set saying whether
    it was made or found, and where.
    """
    root = Path(root if root is not None else course_folder("data"))
    return ensure_practice_set(root, songs, seconds, seed), ensure_examples(root)
