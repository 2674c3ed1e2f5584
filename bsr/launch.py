"""Where the course runs: the launch badge and the set-up cell of every notebook.

A notebook opened on Colab or a fresh JupyterHub has no bsr. So every notebook carries, right
under its title, an "Open in Colab" badge, and as its first code cell a set-up cell that
installs bsr from the repository only where it is missing (elsewhere it just says which bsr
it found) and says whether a GPU is there. Both are built from one address, the
``Repository`` entry of ``[project.urls]`` in ``pyproject.toml``:

    python -m bsr.launch https://github.com/OWNER/bsr notebooks/*.ipynb

rewrites them in place (a test checks that every notebook agrees with ``pyproject.toml``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n?", re.MULTILINE)
SETUP_TAG = "setup"


def colab_url(repository: str, notebook: str, branch: str = "main") -> str:
    """Colab's address for ``notebooks/<notebook>`` of a GitHub ``repository``."""
    path = repository.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{notebook}"


def badge(repository: str, notebook: str) -> str:
    """The Markdown of the "Open in Colab" badge of one notebook."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repository, notebook)})"


def setup_source(repository: str) -> str:
    """The set-up cell: installs bsr where it is missing, then names bsr and the device."""
    return f'''# Set-up: on Colab or a fresh JupyterHub this installs bsr (once, a few minutes);
# where bsr is installed already (a clone, `pip install`) it only says which one it found.
import importlib.util
import subprocess
import sys

import torch

REPOSITORY = "{repository}"
if importlib.util.find_spec("bsr") is None:
    print(f"bsr is not installed here: installing it from {{REPOSITORY}}")
    command = [sys.executable, "-m", "pip", "install", "--quiet", f"bsr @ git+{{REPOSITORY}}"]
    subprocess.run(command, check=True)
print("bsr:", importlib.util.find_spec("bsr").origin)
if torch.cuda.is_available():
    print("device: GPU,", torch.cuda.get_device_name())
else:
    print("device: CPU (on Colab, Runtime > Change runtime type > GPU gives a GPU)")'''


def is_setup_cell(cell) -> bool:
    return cell.cell_type == "code" and SETUP_TAG in cell.metadata.get("tags", [])


def add_launch_cells(nb, notebook: str, repository: str) -> None:
    """Put the badge under the title of ``nb`` and the set-up cell first among its code cells
    (replacing older ones), in place."""
    import nbformat

    title = nb.cells[0]
    lines = BADGE.sub("", title.source).split("\n", 1)
    rest = lines[1].lstrip("\n") if len(lines) > 1 else ""
    title.source = f"{lines[0]}\n\n{badge(repository, notebook)}\n\n{rest}".rstrip() + "\n"
    title.source = title.source.rstrip("\n")
    nb.cells = [cell for cell in nb.cells if not is_setup_cell(cell)]
    cell = nbformat.v4.new_code_cell(setup_source(repository))
    cell.metadata["tags"] = [SETUP_TAG]
    cell.id = "setup"
    nb.cells.insert(1, cell)


def update_notebooks(repository: str, paths) -> list[Path]:
    """Rewrite the badge and set-up cell of each notebook file; returns the paths."""
    import nbformat

    done = []
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        add_launch_cells(nb, path.name, repository)
        nbformat.write(nb, path)
        done.append(path)
    return done


if __name__ == "__main__":  # python -m bsr.launch REPOSITORY notebooks/*.ipynb
    for written in update_notebooks(sys.argv[1], sys.argv[2:]):
        print(written)
