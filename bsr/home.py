"""The course folder: one place for everything the course makes, wherever bsr is installed.

A learner runs the course from a clone, from ``pip install`` on a JupyterHub, or on Colab;
only the first has a repository around the notebooks. So nothing the notebooks or the
command line generate is put next to them. It all goes under one folder::

    $BSR_HOME                  (default: ~/bsr-course)
        data/practice/         the generated practice songs (notebooks 00-08); a set
                               with other settings goes beside it, named after them
                               (data/practice-6x20s-seed7/, see bsr.coursedata)
        data/examples/         the real MUSDB18 excerpts (`bsr data example`)
        data/runs/             training runs (notebook 06)
        data/cache/            MUSDB18 roots (.stem.mp4) converted once to wav for training
        downloads/             community checkpoints (`bsr pretrained download`; $BSR_CACHE
                               moves just these)
        models/mine.pt         your model: notebook 06's GPU run (notebooks 07-09 use it)
        separated/             the stems of your own songs (notebook 09)
        uploads/               songs uploaded in notebook 09

Set ``BSR_HOME`` to move it (a shared disk on a JupyterHub, Google Drive on Colab).
``bsr doctor`` says where it is and what it holds.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = Path("~") / "bsr-course"

CONTENTS = {
    "data/practice": "generated practice songs",
    "data/examples": "real MUSDB18 excerpts",
    "data/runs": "training runs",
    "data/cache": "MUSDB18 .stem.mp4 roots converted to wav",
    "downloads": "community checkpoints",
    "models": "your trained models",
    "separated": "separated songs",
    "uploads": "uploaded songs",
}
"""The course folder's parts, each with what it is for (``bsr doctor`` lists them)."""


def course_folder(*parts: str) -> Path:
    """The course folder (``$BSR_HOME``, else ``~/bsr-course``), or a path inside it.

    >>> course_folder("data")        # doctest: +SKIP
    PosixPath('/home/me/bsr-course/data')

    Nothing is created: whoever writes there makes the folder it needs.
    """
    root = Path(os.environ.get("BSR_HOME") or DEFAULT).expanduser()
    return root.joinpath(*parts)


def folder_size(path: Path) -> tuple[int, int]:
    """``(files, bytes)`` under ``path`` (0, 0 when it does not exist)."""
    files = total = 0
    for item in path.rglob("*") if path.is_dir() else ():
        if item.is_file():
            files += 1
            total += item.stat().st_size
    return files, total


def describe() -> list[str]:
    """Lines for ``bsr doctor``: where the course folder is and what each part holds."""
    root = course_folder()
    how = "$BSR_HOME" if os.environ.get("BSR_HOME") else "default; set BSR_HOME to move it"
    lines = [f"course folder: {root} ({how})"]
    if not root.exists():
        return [*lines, "  empty: the notebooks and `bsr data` make what they need"]
    cache = os.environ.get("BSR_CACHE")
    for part, meaning in CONTENTS.items():
        moved = part == "downloads" and bool(cache)  # $BSR_CACHE moves just the downloads
        folder = Path(cache).expanduser() if moved else root / part
        files, size = folder_size(folder)
        where = f" (in $BSR_CACHE, {folder})" if moved else ""
        plural = "" if files == 1 else "s"
        state = f"{files} file{plural}, {size / 2**20:.1f} MB" if files else "empty"
        lines.append(f"  {part + '/':<15} {meaning}: {state}{where}")
    return lines


def learner_model() -> Path | None:
    """Notebook 06's GPU model (``models/mine.pt`` in the course folder), if there is one."""
    path = course_folder("models", "mine.pt")
    return path if path.is_file() else None


def default_model() -> tuple[str, str]:
    """The model notebooks 07-09 use when told nothing: ``(name or path, why, in words)``.

    The learner's own model from notebook 06 when it exists, else the shipped course model.
    """
    mine = learner_model()
    if mine is not None:
        return str(mine), f"using your model from notebook 06: {mine}"
    return "course", "using the shipped course model (notebook 06 on a GPU makes your own)"
