"""Course tooling: student versions of the notebooks.

Reference answers sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
markers). :func:`make_student_version` replaces each such block with a stub that raises
``NotImplementedError`` naming the exercise, keeping its indentation, so the function
signature and docstring above the block stay for the learner. The check cell that follows
then fails with "exercise NN.M is not answered yet".

A "Predict, then run" works the same way: its answer cell (``# Prediction NN.P``) holds the
learner's ``PREDICTION`` between the markers, and the run cell after it checks it with
``bsr.check.prediction``. The explanation that follows the run (a markdown cell starting
with ``**What happened.**``) is the prediction's answer too, so the student version replaces
it with a place for the learner's own explanation.

For nbgrader, :func:`add_nbgrader_metadata` tags each solution cell as a solution cell and
the check cell after it as a read-only autograder test worth points;
``python -m bsr.course notebooks/*.ipynb`` tags the notebooks' files (cell metadata only).
"""

from __future__ import annotations

import re
from pathlib import Path

from bsr.errors import BsrError

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
# "Exercise 03.1" or "Prediction 03.P": an exercise's or a prediction's ID.
EXERCISE = re.compile(r"(?:[Ee]xercise|[Pp]rediction)\s+(\d\d\.(?:\d+|P))\b")
EXPLANATION = "**What happened.**"
EXPLANATION_STUB = (
    "**What happened?** YOUR ANSWER HERE: after the run, explain in a few sentences why it "
    "came out as it did, and what your prediction missed if it missed. (The reference version "
    "of this notebook explains it here.)"
)


def is_explanation(cell) -> bool:
    """True for the markdown cell that explains a prediction's run."""
    return cell.cell_type == "markdown" and cell.source.startswith(EXPLANATION)


def _what(exercise_id: str) -> str:
    """``exercise 03.1`` or ``prediction 03.P``, as the learner reads it."""
    return f"{'prediction' if exercise_id.endswith('.P') else 'exercise'} {exercise_id}"


def strip_solutions(source: str, exercise_id: str) -> str:
    """Replace every solution block in one cell's source with a NotImplementedError stub."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise BsrError(f"exercise {exercise_id}: '{BEGIN}' twice without '{END}'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            blank = "your prediction here" if exercise_id.endswith(".P") else "your code here"
            out.append(f'{indent}raise NotImplementedError("{_what(exercise_id)}: {blank}")')
        elif stripped == END:
            if not inside:
                raise BsrError(f"exercise {exercise_id}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise BsrError(f"exercise {exercise_id}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def make_student_version(notebook_path: Path, out_path: Path) -> int:
    """Write the student version of one notebook; returns the number of exercises stubbed."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    count = 0
    for cell in nb.cells:
        if is_explanation(cell):
            cell.source = EXPLANATION_STUB
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        found = EXERCISE.search(cell.source)
        exercise_id = found.group(1) if found else f"{notebook_path.stem}:{count + 1}"
        cell.source = strip_solutions(cell.source, exercise_id)
        cell.outputs, cell.execution_count = [], None
        count += 1
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
    return count


def make_student_versions(
    folder: str | Path, out: str | Path, force: bool = False
) -> dict[str, int]:
    """Student versions of every ``*.ipynb`` in ``folder``, written to ``out``.

    A learner's edited notebook is homework: a notebook already in ``out`` is never
    replaced unless ``force`` is given, and the check comes before anything is written.
    """
    folder, out = Path(folder), Path(out)
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise BsrError(f"no notebooks (*.ipynb) in {folder}: give the course's notebooks/ folder")
    if out.resolve() == folder.resolve():
        raise BsrError("--out is the notebooks folder itself: give another folder")
    if out.exists() and not out.is_dir():
        raise BsrError(f"--out {out} is a file: give a folder")
    existing = [out / nb.name for nb in notebooks if (out / nb.name).exists()]
    if existing and not force:
        raise BsrError(
            f"{existing[0]} already exists (a learner's work, perhaps): choose another --out, "
            "or pass --force to replace the notebooks there"
        )
    return {nb.name: make_student_version(nb, out / nb.name) for nb in notebooks}


# --------------------------------------------------------------------------- nbgrader

CHECK_CALL = re.compile(r"""(?:exercise|prediction)\(\s*["'](\d\d\.(?:\d+|P))["']""")
NBGRADER_SCHEMA = 3


def nbgrader_ids(exercise_id: str) -> tuple[str, str]:
    """nbgrader's grade IDs of an exercise's solution and check cells: ``ex03_1_solution``..."""
    stem = "ex" + exercise_id.replace(".", "_")
    return f"{stem}_solution", f"{stem}_check"


def add_nbgrader_metadata(nb, points: int = 1) -> int:
    """Tag a notebook's exercises and prediction for nbgrader, in place; returns their number.

    Each solution cell (one with ``### BEGIN SOLUTION``) becomes an nbgrader solution cell and
    the code cell after it, which must call ``bsr.check.exercise`` (or ``prediction``) with the
    same ID, becomes a read-only autograder test cell worth ``points`` (points already set
    there are kept). A prediction's explanation, the markdown cell right after its check,
    becomes a manually graded answer, so that nbgrader's release shows "YOUR ANSWER HERE" there
    and the learner's own explanation is graded by hand.
    nbgrader metadata on any other cell is removed, so tagging again is a no-op.
    """
    tagged: dict[int, dict] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        exercise_id, check = _exercise_and_check(nb, i)
        solution_id, check_id = nbgrader_ids(exercise_id)
        old = nb.cells[check].metadata.get("nbgrader", {})
        tagged[i] = {"grade": False, "solution": True, "locked": False, "grade_id": solution_id}
        tagged[check] = {"grade": True, "solution": False, "locked": True, "grade_id": check_id,
                         "points": old.get("points", points)}  # fmt: skip
        if exercise_id.endswith(".P"):
            if check + 1 >= len(nb.cells) or not is_explanation(nb.cells[check + 1]):
                raise BsrError(
                    f"prediction {exercise_id}: the cell after its run should be the "
                    f"explanation, a markdown cell starting with {EXPLANATION!r}"
                )
            # nbgrader knows a markdown answer only as one graded by hand.
            old = nb.cells[check + 1].metadata.get("nbgrader", {})
            tagged[check + 1] = {"grade": True, "solution": True, "locked": False,
                                 "grade_id": solution_id.replace("_solution", "_explanation"),
                                 "points": old.get("points", points)}  # fmt: skip
    for i, cell in enumerate(nb.cells):
        if i in tagged:
            cell.metadata["nbgrader"] = {**tagged[i], "schema_version": NBGRADER_SCHEMA,
                                         "task": False}  # fmt: skip
        else:
            cell.metadata.pop("nbgrader", None)
    return sum(1 for t in tagged.values() if t["grade"] and not t["solution"])


def _exercise_and_check(nb, solution: int) -> tuple[str, int]:
    """The ID in solution cell ``solution`` and the index of its check, the next code cell."""
    found = EXERCISE.search(nb.cells[solution].source)
    if not found:
        raise BsrError(
            f"cell {solution} has a solution but no 'Exercise NN.M' or 'Prediction NN.P' comment"
        )
    exercise_id = found.group(1)
    following = [j for j in range(solution + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"]
    check = following[0] if following else -1
    called = CHECK_CALL.search(nb.cells[check].source) if check >= 0 else None
    if not called or called.group(1) != exercise_id:
        call = "prediction" if exercise_id.endswith(".P") else "exercise"
        raise BsrError(
            f"{_what(exercise_id)}: the next code cell should call "
            f'bsr.check.{call}("{exercise_id}", ...)'
        )
    return exercise_id, check


def tag_notebooks(paths) -> dict[str, int]:
    """Add nbgrader metadata to notebook files; only cell metadata changes, sources stay.

    Each file is read right before it is written, and written only if its metadata changed.
    """
    import nbformat

    counts = {}
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        counts[path.name] = add_nbgrader_metadata(nb)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
    return counts


if __name__ == "__main__":  # python -m bsr.course notebooks/*.ipynb
    import sys

    for name, count in tag_notebooks(sys.argv[1:]).items():
        print(f"{name}: {count} exercises tagged for nbgrader")
