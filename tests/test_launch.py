"""Every notebook opens on Colab and installs bsr there: the badge and the set-up cell.

Both are built from the one repository address in ``pyproject.toml`` (``[project.urls]``);
these tests fail when a notebook disagrees with it, or when the set-up cell would do
anything but install bsr from that address where bsr is missing.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest

from bsr.launch import add_launch_cells, badge, colab_url, is_setup_cell, setup_source

REPO = Path(__file__).resolve().parents[1]
PATHS = sorted((REPO / "notebooks").glob("*.ipynb"))
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")


def repository() -> str:
    with open(REPO / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["urls"]["Repository"]


def test_the_repository_is_a_github_address():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository())


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_badge_under_the_title_opens_this_notebook(path):
    nb = nbformat.read(path, as_version=4)
    lines = nb.cells[0].source.splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""
    assert lines[2] == badge(repository(), path.name), (
        f"{path.name}: the Colab badge disagrees with pyproject.toml; run "
        f"`python -m bsr.launch {repository()} notebooks/*.ipynb`"
    )
    assert lines[2].endswith(f"/blob/main/notebooks/{path.name})")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_the_first_code_cell_is_the_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert is_setup_cell(first), f"{path.name}: the first code cell is not the set-up cell"
    assert first.source == setup_source(repository())
    assert sum(map(is_setup_cell, nb.cells)) == 1


def test_colab_address():
    url = colab_url("https://github.com/me/bsr/", "09_your_song.ipynb")
    assert (
        url
        == "https://colab.research.google.com/github/me/bsr/blob/main/notebooks/09_your_song.ipynb"
    )


def _run_setup(monkeypatch, installed: bool) -> list:
    """Execute the set-up cell with bsr present or absent; returns the commands it ran."""
    import importlib.util
    import subprocess

    real = importlib.util.find_spec
    ran = []

    def find_spec(name, *args):
        if name == "bsr" and not installed and not ran:
            return None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", lambda command, check: ran.append(command))
    exec(setup_source(repository()), {})
    return ran


def test_setup_installs_bsr_from_the_repository_only_where_missing(monkeypatch, capsys):
    assert _run_setup(monkeypatch, installed=True) == []
    assert "bsr: " in capsys.readouterr().out
    (command,) = _run_setup(monkeypatch, installed=False)
    assert command[1:5] == ["-m", "pip", "install", "--quiet"]
    assert command[-1] == f"bsr @ git+{repository()}"
    out = capsys.readouterr().out
    assert f"installing it from {repository()}" in out and "device: " in out


def test_adding_launch_cells_twice_changes_nothing():
    nb = nbformat.read(PATHS[0], as_version=4)
    again = copy.deepcopy(nb)
    add_launch_cells(again, PATHS[0].name, repository())
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]
    add_launch_cells(again, PATHS[0].name, "https://github.com/other/place")
    assert "github/other/place/blob/main" in again.cells[0].source
    assert again.cells[0].source.count("Open In Colab") == 1
    assert sum(map(is_setup_cell, again.cells)) == 1
