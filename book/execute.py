"""Executing the course notebooks, as a reader's own Jupyter would: top to bottom, one kernel.

The tests execute them the same way (``tests/notebook_tools.py`` calls :func:`execute`), so a
site built from the test run shows exactly what ``make book`` shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat

CELL_TIMEOUT = 600  # seconds per cell


def execute(nb, cwd: Path, allow_errors: bool = False) -> float:
    """Run every cell of ``nb`` in place with the working folder ``cwd``; return the seconds."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    started = time.perf_counter()
    client.execute()
    return time.perf_counter() - started


def execute_course(notebooks: Path, out: Path) -> dict[str, float]:
    """Execute every ``notebooks/*.ipynb`` in order into ``out/``; return name -> seconds."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        seconds[path.name] = execute(nb, notebooks)
        nbformat.write(nb, out / path.name)
        print(f"executed {path.name} in {seconds[path.name]:.1f} s", flush=True)
    return seconds
