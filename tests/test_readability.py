"""The package reads in small pieces: short modules, short functions, arrows that point down.

Measured from the code, as the readers of the course meet it:

* no module of ``bsr/`` is longer than 600 lines, no function longer than 80;
* nothing inside the package imports its top (``bsr/__init__``): the top gathers, the
  rooms below do the work (``__version__`` comes from ``bsr/_version.py``);
* loading goes one way down: the readers in ``bsr/formats/`` import neither the package
  that calls them (``bsr.formats``) nor anything above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BSR = Path(__file__).resolve().parents[1] / "bsr"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
ABOVE_THE_READERS = ("bsr.formats", "bsr.hub", "bsr.checkpoint", "bsr.community", "bsr.cli")


def modules() -> list[Path]:
    return sorted(BSR.rglob("*.py"))


def name_of(path: Path) -> str:
    return str(path.relative_to(BSR.parent))


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_module_is_longer_than_600_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name_of(path)} has {lines} lines"


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_function_is_longer_than_80_lines(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{name_of(path)}: {', '.join(long)}: split them into named steps"


@pytest.mark.parametrize("path", [p for p in modules() if p != BSR / "__init__.py"], ids=name_of)
def test_nothing_below_the_top_imports_the_top(path):
    assert "bsr" not in imported(path), f"{name_of(path)} imports bsr itself"


READERS = sorted(p for p in (BSR / "formats").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", READERS, ids=name_of)
def test_the_readers_never_call_back_up(path):
    stray = {m for m in imported(path) if m in ABOVE_THE_READERS}
    assert not stray, f"{name_of(path)} imports {sorted(stray)}, which call it"


def test_every_format_has_the_three_names_the_table_uses():
    import bsr.formats

    for reader in bsr.formats.FORMATS:
        assert isinstance(reader.NAME, str), reader.__name__
        assert callable(reader.recognises) and callable(reader.read), reader.__name__
