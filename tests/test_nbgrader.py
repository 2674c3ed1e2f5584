"""The course under real nbgrader: cell metadata on every exercise, and a grading round trip.

* structure (fast): every exercise's solution cell is an nbgrader solution cell and its check
  cell a read-only autograder test worth points, with unique grade IDs; exactly what
  ``python -m bsr.course notebooks/*.ipynb`` writes, so a new exercise is tagged by that;
* round trip (``-m notebooks``): in a temporary course folder, ``nbgrader generate_assignment``
  makes the release version of one notebook, then ``nbgrader autograde`` grades the reference
  notebook (full marks) and the untouched release version, the stubs (zero). Its config,
  database, HOME and Jupyter folders all live in the temporary folder.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_notebooks import PATHS, _exercises, _inject, _read, needs_notebooks

from bsr.course import BEGIN, add_nbgrader_metadata, nbgrader_ids

ROUND_TRIP = "03_rope.ipynb"  # the cheapest notebook with exercises to execute (~5 s)
ASSIGNMENT = "bsr03"


def _nbgrader(cell) -> dict:
    return dict(cell.metadata.get("nbgrader", {}))


@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_nbgrader_metadata_structure(path):
    nb = _read(path)
    again = copy.deepcopy(nb)
    add_nbgrader_metadata(again)
    assert again == nb, (
        f"{path.name}: the nbgrader cell metadata is missing or stale; "
        f"run `python -m bsr.course notebooks/{path.name}`"
    )
    exercises = _exercises(nb)
    tagged = [i for i, cell in enumerate(nb.cells) if "nbgrader" in cell.metadata]
    predictions = [e for e in exercises if e[0].endswith(".P")]
    assert len(tagged) == 2 * len(exercises) + len(predictions), (
        f"{path.name}: nbgrader cells outside exercises and predictions"
    )
    ids = []
    for exercise_id, solution, check in exercises:
        answer, test = _nbgrader(nb.cells[solution]), _nbgrader(nb.cells[check])
        assert (answer["solution"], answer["grade"], answer["locked"]) == (True, False, False)
        assert (test["solution"], test["grade"], test["locked"]) == (False, True, True), (
            f"{path.name}: the check of {exercise_id} should be a read-only grade cell"
        )
        assert test["points"] > 0, f"{path.name}: the check of {exercise_id} is worth no points"
        assert (answer["grade_id"], test["grade_id"]) == nbgrader_ids(exercise_id)
        if exercise_id.endswith(".P"):  # the explanation after the run, graded by hand
            explained = _nbgrader(nb.cells[check + 1])
            assert (explained["solution"], explained["grade"], explained["locked"]) == (
                True,
                True,
                False,
            ), f"{path.name}: the explanation of {exercise_id} should be a graded answer"
            assert explained["points"] > 0
            ids.append(explained["grade_id"])
        assert answer["schema_version"] == test["schema_version"] == 3
        ids += [answer["grade_id"], test["grade_id"]]
    assert len(set(ids)) == len(ids), f"{path.name}: a grade ID is used twice: {ids}"
    nbgrader = pytest.importorskip("nbgrader.nbgraderformat")
    nbgrader.MetadataValidator().validate_nb(nb)  # nbgrader's own check, when installed


def _path_with_venv() -> str:
    """PATH with this Python's bin folder first: nbgrader runs its database tool ``alembic``."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _isolated_env(root: Path) -> dict:
    """The environment for nbgrader: HOME, Jupyter's and XDG folders all under ``root``."""
    env = dict(os.environ)
    for variable in ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                     "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                     "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):  # fmt: skip
        env[variable] = str(root / variable.lower())
        Path(env[variable]).mkdir(parents=True, exist_ok=True)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PATH"] = _path_with_venv()
    return env


def _run(args: list[str], course: Path, env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--force"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"nbgrader {args[0]} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.notebooks
def test_nbgrader_round_trip_full_marks_and_zero(tmp_path, capsys, monkeypatch):
    if not os.environ.get("CI"):
        pytest.importorskip("nbgrader", reason="nbgrader is in the dev extra: pip install .[dev]")
    from nbgrader.api import Gradebook

    started = time.perf_counter()
    course = tmp_path / "course"
    db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'bsr'\n"
        f"c.CourseDirectory.db_url = {db_url!r}\n"
        f"c.Exchange.root = {str(tmp_path / 'exchange')!r}\n"
        "c.Execute.timeout = 600\n"
    )
    nb = _read(next(p for p in PATHS if p.name == ROUND_TRIP))
    _inject(nb, tmp_path / "data")  # DATA into the temporary folder, if the notebook has one
    source = course / "source" / ASSIGNMENT / ROUND_TRIP
    nbformat.write(nb, source)
    env = _isolated_env(tmp_path / "home")

    _run(["generate_assignment", ASSIGNMENT], course, env)
    release = course / "release" / ASSIGNMENT / ROUND_TRIP
    stubs = _read(release)
    text = "".join(cell.source for cell in stubs.cells)
    assert BEGIN not in text and "raise NotImplementedError()" in text
    locked = [c for c in stubs.cells if _nbgrader(c).get("locked")]
    assert locked and all(c.metadata.get("editable") is False for c in locked)

    for student, notebook in (("reference", source), ("stubs", release)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / ROUND_TRIP)
    _run(["autograde", ASSIGNMENT], course, env)

    monkeypatch.setenv("PATH", _path_with_venv())
    points = sum(_nbgrader(c).get("points", 0) for c in nb.cells)
    # A prediction's explanation is a markdown answer, which nbgrader leaves to be graded by
    # hand: autograding gives the reference every other point and the stubs none.
    by_hand = sum(_nbgrader(c).get("points", 0) for c in nb.cells if c.cell_type == "markdown")
    with Gradebook(db_url) as gradebook:
        reference = gradebook.find_submission(ASSIGNMENT, "reference")
        stubbed = gradebook.find_submission(ASSIGNMENT, "stubs")
        scores = {
            "reference": (reference.score, reference.max_score),
            "stubs": (stubbed.score, stubbed.max_score),
        }
    with capsys.disabled():
        print(f"\nnbgrader round trip on {ROUND_TRIP}: {scores} "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    assert points > 0
    assert scores == {"reference": (points - by_hand, points), "stubs": (0, points)}
    graded = _read(course / "autograded" / "stubs" / ASSIGNMENT / ROUND_TRIP)
    checks = [c for c in graded.cells if _nbgrader(c).get("grade") and c.cell_type == "code"]
    for cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "CheckFailed", "a stub should fail its check"
        assert "not answered yet" in errors[0].evalue
