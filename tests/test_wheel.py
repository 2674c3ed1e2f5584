"""The course off the checkout: bsr built as a wheel and run where no repository is.

A learner on a JupyterHub or Colab has ``pip install`` and the notebooks, nothing else. So:

* the wheel holds the package with its shipped models, cards, presets and registry, and
  nothing of the repository's tests or notebooks;
* installed into a fresh virtual environment in a temporary folder, with ``notebooks/``
  copied there alone, notebooks 00, 07 and 09 run top to bottom, import the installed bsr
  (not this checkout), and write everything into the course folder (``$BSR_HOME``).

The fresh environment gets the wheel and nothing else; the dependencies (torch, museval,
jupyter, ...) are read from this environment's site-packages through a ``.pth`` line, which
keeps the test offline and quick. Such a line adds a folder to ``sys.path`` without running
the ``.pth`` files inside it, so this checkout's editable install stays invisible there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = ("00_welcome_and_data.ipynb", "07_separation_and_evaluation.ipynb", "09_your_song.ipynb")
# Smaller sizes where a notebook has them: the point is where bsr comes from, not the scores.
OVERRIDES = {"07_separation_and_evaluation.ipynb": "SONGS, SECONDS = 2, 5.0"}
SHIPPED = [
    "bsr/weights/course.pt", "bsr/weights/course.json", "bsr/weights/course.md",
    "bsr/weights/course-curve.png", "bsr/weights/course-norope.pt",
    "bsr/weights/course-norope.json", "bsr/presets/course.yaml", "bsr/presets/paper-l6.yaml",
    "bsr/presets/tiny.yaml", "bsr/pretrained.yaml", "bsr/cli.py", "bsr/check/nb09.py",
]  # fmt: skip

DRIVER = r"""
import json, sys, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

folder, overrides = Path(sys.argv[1]), json.loads(sys.argv[2])
for name in sys.argv[3:]:
    nb = nbformat.read(folder / "notebooks" / name, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    if name in overrides:
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(overrides[name]))
    nb.cells.append(nbformat.v4.new_code_cell("import bsr; print('BSR FROM', bsr.__file__)"))
    started = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder / "notebooks")}}).execute()
    nbformat.write(nb, folder / f"executed-{name}")
    print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """bsr built as a wheel from this checkout, without network (no build isolation)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (path,) = out.glob("bsr-*.whl")
    return path


def test_the_wheel_holds_the_shipped_models_and_nothing_of_the_repository(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, f"the wheel lacks {missing}: see [tool.setuptools.package-data]"
    strays = [n for n in names if n.split("/")[0] in ("tests", "notebooks", "data", "runs")]
    assert not strays, f"the wheel holds files of the repository: {strays[:5]}"
    card = json.loads(zipfile.ZipFile(wheel).read("bsr/weights/course.json"))
    assert card["name"] == "course" and card["steps"] > 0


def _fresh_environment(folder: Path, wheel: Path) -> Path:
    """A new virtual environment holding only the wheel (dependencies shared, see above)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    ours = sysconfig.get_paths()["purelib"]  # this environment's torch, museval, jupyter...
    Path(site, "zz-shared-dependencies.pth").write_text(ours + "\n")
    return python


@pytest.mark.notebooks
def test_notebooks_run_from_the_wheel_outside_the_checkout(wheel, tmp_path, capsys):
    python = _fresh_environment(tmp_path / "venv", wheel)
    course = tmp_path / "course"
    shutil.copytree(REPO / "notebooks", course / "notebooks")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(BSR_HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    where = subprocess.run(
        [str(python), "-c", "import bsr, bsr.hub; print(bsr.__file__)"],
        cwd=course, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(tmp_path / "venv")), f"bsr came from {where}, not the wheel"
    result = subprocess.run(
        [str(python), "-c", DRIVER, str(course), json.dumps(OVERRIDES), *RUN],
        cwd=course, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    with capsys.disabled():
        print("\nfrom the wheel:", result.stdout.strip().replace("\n", "; "))
    assert result.returncode == 0, result.stderr[-3000:]
    for name in RUN:
        executed = json.loads((course / f"executed-{name}").read_text())
        last = "".join(executed["cells"][-1]["outputs"][0]["text"])
        assert f"BSR FROM {tmp_path / 'venv'}" in last, f"{name} imported {last}"
    assert (home / "data" / "examples" / "test").is_dir()  # the course folder, not ../data
    assert any((home / "separated").rglob("vocals.wav"))  # notebook 09's stems
    assert not (tmp_path / "data").exists() and not (course / "data").exists()
