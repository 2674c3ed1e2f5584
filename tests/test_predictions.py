"""Predictions that count: every "Predict, then run" is answered, checked, and explained after.

* structure (fast): in each notebook the "Predict, then run" heading is followed by the
  answer cell (``# Prediction NN.P``, the learner's ``PREDICTION`` between the solution
  markers), the run cell that ends by checking it with ``bsr.check.prediction``, and the
  explanation (``**What happened.**``);
* student versions (fast, nothing executed): the answer is blanked and the explanation is
  replaced by a place for the learner's own, so nothing gives the answer away before the run;
* the API: an unanswered prediction says so, an unknown ID is named, and a wrong answer to
  03.P fails (the other notebooks' wrong answers are in their own test files).
"""

from __future__ import annotations

import pytest
from conftest import prediction_fails
from notebook_tools import NOTEBOOKS, _read

import bsr.check
from bsr.course import (
    BEGIN,
    CHECK_CALL,
    EXPLANATION,
    EXPLANATION_STUB,
    is_explanation,
    make_student_version,
)

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
HEADING = "### Predict, then run"


def _prediction_cells(nb) -> tuple[int, int, int]:
    """Indices of the answer, run and explanation cells after the prediction heading."""
    heading = [i for i, c in enumerate(nb.cells) if HEADING in c.source.splitlines()]
    assert len(heading) == 1, f"want one '{HEADING}' cell, found {len(heading)}"
    answer, run, explanation = heading[0] + 1, heading[0] + 2, heading[0] + 3
    return answer, run, explanation


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_prediction_is_answered_checked_and_explained(path):
    nb = _read(path)
    prediction_id = f"{path.name[:2]}.P"
    answer, run, explanation = _prediction_cells(nb)
    source = nb.cells[answer].source
    assert nb.cells[answer].cell_type == "code" and f"# Prediction {prediction_id}" in source, (
        f"{path.name}: the cell after '{HEADING}' should start '# Prediction {prediction_id}'"
    )
    blank, solution = source.split(BEGIN)
    assert "PREDICTION = " in blank and "..." in blank, (
        f"{path.name}: before its solution the answer cell should show the learner the form "
        "of the answer, PREDICTION with ... where the answers go"
    )
    assert "PREDICTION = " in solution
    called = CHECK_CALL.search(nb.cells[run].source)
    assert called and called.group(1) == prediction_id, (
        f"{path.name}: the run cell should end by calling "
        f'bsr.check.prediction("{prediction_id}", PREDICTION, ...)'
    )
    assert is_explanation(nb.cells[explanation]), (
        f"{path.name}: the cell after the run should explain it, starting {EXPLANATION!r}"
    )
    assert sum(map(is_explanation, nb.cells)) == 1, f"{path.name}: one explanation only"
    bsr.check._load_all()
    assert prediction_id in bsr.check.EXERCISES, f"no check registered for {prediction_id}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_student_version_hides_the_answer_and_the_explanation(path, tmp_path):
    reference = _read(path)
    make_student_version(path, tmp_path / path.name)
    nb = _read(tmp_path / path.name)
    answer, run, explanation = _prediction_cells(nb)
    solution = reference.cells[answer].source.split(BEGIN)[1].split("### END")[0].strip()
    assert solution not in nb.cells[answer].source, f"{path.name}: the prediction is left"
    assert "raise NotImplementedError" in nb.cells[answer].source
    text = "\n".join(cell.source for cell in nb.cells)
    said = reference.cells[explanation].source
    assert said not in text and EXPLANATION not in text, f"{path.name}: the explanation shows"
    assert nb.cells[explanation].source == EXPLANATION_STUB


def test_unanswered_prediction_says_so():
    prediction_fails("03.P", {(10, 14): ..., (3, 8): True}, None, "03.P is not answered yet")


def test_unknown_prediction_is_named():
    with pytest.raises(KeyError, match="known predictions are .*03.P"):
        bsr.check.prediction("99.P", {})


def test_rope_prediction_passes_right_and_fails_wrong(capsys):
    right = {(10, 14): True, (3, 8): False, (7, 3): False, (1003, 1007): True}
    bsr.check.prediction("03.P", right)
    assert "prediction 03.P: passed" in capsys.readouterr().out
    # The classic slip: a reversed pair has the same distance, so it "must" score the same.
    said = "you said (7, 3) scores the same as (3, 7), but it scores differently"
    prediction_fails("03.P", {**right, (7, 3): True}, None, said)
    said = "you said (1003, 1007) scores differently from (3, 7), but it scores the same"
    prediction_fails("03.P", {**right, (1003, 1007): False}, None, said)
