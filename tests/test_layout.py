"""The library's layout: every module says its job, and dependencies run one way.

The model knows nothing of data, files, training, plotting or the command line; the data
package knows nothing of the model (nor of the package root, which imports the model).
Imports inside functions count too: a late import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BSR = Path(__file__).resolve().parents[1] / "bsr"
MODEL = ("stft", "bands", "band_split", "norm", "rope", "attention", "roformer",
         "mask_estimator", "model", "stacked")  # fmt: skip
"""The modules of the network itself."""
MODEL_MAY_IMPORT = {f"bsr.{name}" for name in MODEL} | {"bsr.config", "bsr.errors"}


def modules() -> list[Path]:
    return sorted(BSR.rglob("*.py"))


def bsr_imports(path: Path) -> set[str]:
    """Every ``bsr`` module that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "bsr"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "bsr":
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(BSR.parent)))
def test_every_module_says_its_job(path):
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no module docstring"


@pytest.mark.parametrize("name", MODEL)
def test_the_model_imports_only_the_model(name):
    stray = bsr_imports(BSR / f"{name}.py") - MODEL_MAY_IMPORT
    assert not stray, f"bsr/{name}.py imports {sorted(stray)}: the model must not know of them"


@pytest.mark.parametrize("path", sorted((BSR / "data").rglob("*.py")), ids=lambda p: p.name)
def test_data_imports_nothing_of_the_model(path):
    allowed = ("bsr.data", "bsr.errors", "bsr.ffmpeg", "bsr.audio", "bsr.home")
    stray = {m for m in bsr_imports(path) if not m.startswith(allowed)}
    assert not stray, f"{path} imports {sorted(stray)}: data must not depend on the model"


@pytest.mark.parametrize("name", ["audio", "home", "ffmpeg", "errors"])
def test_what_data_may_import_stands_alone(name):
    """The modules bsr.data may use read files and folders; they know nothing else of bsr."""
    stray = bsr_imports(BSR / f"{name}.py") - {"bsr.errors", "bsr.ffmpeg"}
    assert not stray, f"bsr/{name}.py imports {sorted(stray)}"
