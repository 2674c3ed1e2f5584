"""Running the course notebooks in tests: read, inject parameters, execute, read outputs.

The fixtures ``course_data`` and ``executed`` (in ``conftest.py``, so that every test module
shares one run of each notebook) are built from these helpers.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from book.execute import execute

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


@pytest.fixture(scope="session")
def course_data(tmp_path_factory) -> Path:
    """One data folder for every executed notebook (made by the first one that runs)."""
    return tmp_path_factory.mktemp("course-data")


def _inject(nb, data: Path) -> None:
    """Papermill-style: after the parameters cell, override the parameters a test must set."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = nb.cells[index].source
    overrides = []
    if re.search(r"^DATA\s*=", source, re.MULTILINE):
        overrides.append(f"DATA = Path({str(data)!r})")
    if overrides:
        source = "# injected by tests\nfrom pathlib import Path\n\n" + "\n".join(overrides)
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(index + 1, cell)


def _execute(nb, cwd: Path, allow_errors: bool = False) -> float:
    """Execute ``nb`` in place as ``make book`` does (``book.execute``); return the seconds."""
    return execute(nb, cwd, allow_errors)


def _mimetypes(cell) -> set[str]:
    """The MIME types of a code cell's rich outputs (display data and execute results)."""
    return {kind for output in cell.get("outputs", []) for kind in output.get("data", {})}


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "\n".join(parts)


@pytest.fixture(scope="session")
def executed(course_data):
    """``executed(path) -> (notebook with outputs, seconds)``: each notebook runs once a session.

    The tests that read a notebook's outputs share its one run instead of each paying for it.
    """
    runs: dict[Path, tuple] = {}

    def run(path: Path) -> tuple:
        if path not in runs:
            nb = _read(path)
            _inject(nb, course_data)
            runs[path] = nb, _execute(nb, NOTEBOOKS)
        return runs[path]

    return run
