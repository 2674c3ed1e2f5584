"""The course notebooks: their structure, their execution, and that every check can fail.

Works on whatever ``notebooks/*.ipynb`` holds, so new notebooks are tested as they arrive:

* structure (fast): no committed outputs, one ``parameters`` cell, a title, and from
  notebook 01 on at least two exercises, each solution cell followed by its check cell;
* execution (``-m notebooks``, slow): every notebook runs top to bottom with nbclient, with
  ``DATA`` pointed at a temporary folder; each notebook's time is printed;
* student versions (``-m notebooks``, slow): with the solutions stripped, every check cell
  must fail with CheckFailed naming its exercise, so that no check is vacuous;
* wrong answers (fast): typical mistakes fail with a message that names the mistake.

Deselect the slow tests with ``-m "not notebooks"``.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import torch
from conftest import check_fails
from notebook_tools import NOTEBOOKS, _code, _execute, _inject, _mimetypes, _read, _text

import bsr.check
from bsr.check.nb01 import _manual_stft
from bsr.course import BEGIN, CHECK_CALL, EXERCISE, make_student_versions

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))

needs_notebooks = pytest.mark.skipif(not PATHS, reason="no notebooks in notebooks/")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# The notebooks whose figures are drawn by widgets: the stem mixer (00), the band layout
# explorer (02), the mask explorer (05) and the attention explorer (08).
WIDGET_NOTEBOOKS = [
    NOTEBOOKS / name
    for name in (
        "00_welcome_and_data.ipynb",
        "02_band_split.ipynb",
        "05_mask_estimation_and_model.ipynb",
        "08_attention_explorer.ipynb",
    )
]


def _number(path: Path) -> int:
    """The notebook's number from its name, ``01_stft_and_masks.ipynb`` -> 1 (-1 if none)."""
    found = re.match(r"(\d+)", path.name)
    return int(found.group(1)) if found else -1


def _solution_id(cell) -> str | None:
    """The exercise ID of a solution cell (None for other cells)."""
    if cell.cell_type != "code" or BEGIN not in cell.source:
        return None
    found = EXERCISE.search(cell.source)
    return found.group(1) if found else ""


def _check_id(cell) -> str | None:
    """The exercise ID a check cell checks (None for other cells)."""
    found = CHECK_CALL.search(cell.source) if cell.cell_type == "code" else None
    return found.group(1) if found else None


def _kind(exercise_id: str) -> str:
    """What the learner reads: ``exercise 03.1`` or ``prediction 03.P``."""
    return "prediction" if exercise_id.endswith(".P") else "exercise"


def _exercises(nb) -> list[tuple[str, int, int]]:
    """``(exercise ID, index of solution cell, index of the next code cell)`` in ``nb.cells``."""
    out = []
    for i, cell in enumerate(nb.cells):
        exercise_id = _solution_id(cell)
        if exercise_id is None:
            continue
        following = [j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"]
        out.append((exercise_id, i, following[0] if following else -1))
    return out


# --------------------------------------------------------------------------- structure


@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for i, cell in enumerate(_code(_read(path))):
        assert not cell.outputs, f"{path.name}: code cell {i} has outputs; clear them"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"


@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_title_and_one_parameters_cell(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), (
        f"{path.name} should open with a markdown title ('# ...')"
    )
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} has {len(tagged)} cells tagged 'parameters', want 1"
    assert tagged[0].cell_type == "code"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_exercises_are_followed_by_their_checks(path):
    nb = _read(path)
    exercises = _exercises(nb)
    if _number(path) >= 1:
        assert len(exercises) >= 2, f"{path.name} has {len(exercises)} exercises, want >= 2"
    bsr.check._load_all()
    ids = [exercise_id for exercise_id, _, _ in exercises]
    assert len(set(ids)) == len(ids), f"{path.name}: an exercise ID is used twice: {ids}"
    for exercise_id, solution, check in exercises:
        assert exercise_id, f"{path.name}: cell {solution} has a solution but no 'Exercise NN.M'"
        assert int(exercise_id.split(".")[0]) == _number(path), (
            f"{path.name}: exercise {exercise_id} should be numbered after its notebook"
        )
        assert check >= 0 and _check_id(nb.cells[check]) == exercise_id, (
            f"{path.name}: the code cell after exercise {exercise_id} should call "
            f'bsr.check.exercise("{exercise_id}", ...)'
        )
        assert exercise_id in bsr.check.EXERCISES, f"no check registered for {exercise_id}"
    checked = [_check_id(c) for c in nb.cells if _check_id(c)]
    assert sorted(checked) == sorted(ids), f"{path.name}: check cells {checked} vs exercises {ids}"


WINDOW = 16  # tokens: about one full line of code


def _shape_tokens(source: str) -> list[str]:
    """Code tokens with variable names blurred (``N``) but attributes, numbers and operators
    kept: ``qkv.permute(2, 0, 3, 1, 4)`` and ``x.permute(2, 0, 3, 1, 4)`` read the same."""
    import io
    import keyword
    import tokenize

    source = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
    )
    out: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME:
                attribute = out[-1:] == ["."]
                out.append(token.string if attribute or keyword.iskeyword(token.string) else "N")
            elif token.type in (tokenize.OP, tokenize.NUMBER):
                out.append(token.string)
    except (tokenize.TokenError, IndentationError):
        pass
    return out


@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_earlier_cell_shows_an_answer(path):
    """No stretch of a reference answer as long as a line of code (variable names aside)
    is already written out in a code cell before its exercise (earlier answers aside)."""
    nb = _read(path)
    for exercise_id, solution, _ in _exercises(nb):
        answer = _shape_tokens(nb.cells[solution].source.split(BEGIN)[1].split("### END")[0])
        earlier = set()
        for cell in nb.cells[:solution]:
            # An earlier exercise's answer is the learner's own work, free to reuse.
            own = cell.source
            if BEGIN in own:
                own = own.split(BEGIN)[0] + own.split("### END SOLUTION")[-1]
            tokens = _shape_tokens(own) if cell.cell_type == "code" else []
            earlier |= {tuple(tokens[i : i + WINDOW]) for i in range(len(tokens) - WINDOW + 1)}
        shown = [" ".join(answer[i : i + WINDOW]) for i in range(len(answer) - WINDOW + 1)
                 if tuple(answer[i : i + WINDOW]) in earlier]  # fmt: skip
        assert not shown, f"{path.name}: the answer to {exercise_id} is shown earlier: {shown[0]}"


def _has_heading(cell, heading: str) -> bool:
    return cell.cell_type == "markdown" and heading in cell.source.splitlines()


@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_a_prediction_and_an_open_experiment(path):
    """Each notebook asks for one prediction before a run and proposes one open experiment,
    each heading followed by code that the learner runs (and CI executes)."""
    nb = _read(path)
    for heading in ("### Predict, then run", "### Open experiment"):
        found = [i for i, c in enumerate(nb.cells) if _has_heading(c, heading)]
        assert len(found) == 1, f"{path.name}: want one '{heading}' cell, found {len(found)}"
        after = [c for c in nb.cells[found[0] + 1 :] if c.cell_type == "code"]
        assert after and after[0].source.strip(), f"{path.name}: no code after '{heading}'"
    summary = [i for i, c in enumerate(nb.cells) if c.source.startswith("## Summary")]
    assert summary and summary[0] > found[0], f"{path.name}: the experiment belongs before Summary"


# --------------------------------------------------------------------------- execution


@pytest.mark.notebooks
@needs_notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs(path, executed, capsys):
    nb, seconds = executed(path)
    with capsys.disabled():
        print(f"\n{path.name}: executed in {seconds:.1f} s")
    for cell in nb.cells:
        exercise_id = _check_id(cell)
        if exercise_id:
            assert f"{_kind(exercise_id)} {exercise_id}: passed" in _text(cell), (
                f"{path.name}: the reference answer to {exercise_id} does not pass its check"
            )


@pytest.mark.notebooks
@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.stem)
def test_widget_cells_keep_a_static_figure(path, executed):
    """Executed headless (no widget front end), every cell that shows widgets also holds a PNG.

    nbconvert, GitHub and a book drop widget views; the figure must survive as ``image/png``.
    """
    nb, _ = executed(path)
    cells = [(i, c) for i, c in enumerate(_code(nb)) if WIDGET_VIEW in _mimetypes(c)]
    assert cells, f"{path.name}: no cell showed a widget (is INTERACTIVE still True?)"
    for i, cell in cells:
        assert "image/png" in _mimetypes(cell), (
            f"{path.name}: code cell {i} shows widgets but no image/png, so its figure is lost "
            f"without a widget front end; its outputs hold {sorted(_mimetypes(cell))}"
        )
        for output in cell.outputs:
            if "image/png" in output.get("data", {}):
                assert base64.b64decode(output.data["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.notebooks
@needs_notebooks
def test_student_versions_fail_every_check(tmp_path, course_data, capsys):
    counts = make_student_versions(NOTEBOOKS, tmp_path / "student")
    for path in PATHS:
        original = _exercises(_read(path))
        assert counts[path.name] == len(original), f"{path.name}: not every solution was stubbed"
        if not original:
            continue
        nb = _read(tmp_path / "student" / path.name)
        assert BEGIN not in "".join(c.source for c in nb.cells), f"{path.name}: solution left"
        _inject(nb, course_data)
        seconds = _execute(nb, tmp_path / "student", allow_errors=True)
        with capsys.disabled():
            print(f"\nstudent {path.name}: executed in {seconds:.1f} s")
        checks = [c for c in nb.cells if _check_id(c)]
        assert len(checks) == len(original)
        for cell in checks:
            exercise_id = _check_id(cell)
            text = _text(cell)
            assert "CheckFailed" in text and f"{_kind(exercise_id)} {exercise_id}" in text, (
                f"student {path.name}: the check of {exercise_id} did not fail with "
                f"CheckFailed; its output was:\n{text}"
            )
            assert "not answered yet" in text


# --------------------------------------------------------------------------- wrong answers


def test_unanswered_exercise_says_so():
    def stub(*args):
        raise NotImplementedError("exercise 01.1: your code here")

    check_fails("01.1", stub, "exercise 01.1 is not answered yet")


def _stft_by_hand(audio, n_fft, hop, window=None, centre=True):
    """An STFT from frames and rfft, as an answer must write it (the check's own builder of
    slips; it calls neither torch.stft nor bsr's STFT)."""
    window = torch.hann_window(n_fft) if window is None else window
    return _manual_stft(audio, n_fft, hop, window, "reflect" if centre else None)


def test_stft_by_hand_passes(capsys):
    bsr.check.exercise("01.1", _stft_by_hand)
    assert "exercise 01.1: passed" in capsys.readouterr().out


def test_stft_without_window_is_named():
    def no_window(audio, n_fft, hop):
        return _stft_by_hand(audio, n_fft, hop, window=torch.ones(n_fft))

    check_fails("01.1", no_window, "Hann window")


def test_stft_without_centre_padding_is_a_shape_error():
    def uncentred(audio, n_fft, hop):
        return _stft_by_hand(audio, n_fft, hop, centre=False)

    check_fails("01.1", uncentred, "has shape", "center=True")


def test_power_ratio_mask_is_named():
    def power_masks(specs):
        power = specs.abs().square()
        return power / power.sum(dim=0, keepdim=True).clamp_min(1e-12)

    check_fails("01.2", power_masks, "powers")


def test_ratio_mask_nan_in_silence_is_named():
    check_fails("01.2", lambda s: s.abs() / s.abs().sum(dim=0, keepdim=True), "NaN", "silent")


def test_binary_mask_on_the_quietest_stem_is_caught():
    def quietest(specs):
        loudness = specs.abs()
        return (loudness == loudness.min(dim=0, keepdim=True).values).float()

    check_fails("01.3", quietest, "largest magnitude")


def test_inverted_complex_mask_is_named():
    check_fails("01.4", lambda s, x: torch.where(s.abs() > 0, x / s, 0), "upside down")


def test_wrong_band_table_names_the_band():
    paper_minus_one = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (257,)
    check_fails("02.1", lambda rate, n_fft: paper_minus_one, "61 bands, expected 62", "band 60")


def test_channel_major_features_are_named():
    def channel_major(spec):
        batch, _, _, frames = spec.shape
        return torch.view_as_real(spec).permute(0, 3, 1, 2, 4).reshape(batch, frames, -1)

    check_fails("02.2", channel_major, "frequency-major")


def test_layer_norm_is_not_rms_norm():
    check_fails(
        "02.3", lambda x, g: torch.nn.functional.layer_norm(x, x.shape[-1:]) * g, "LayerNorm"
    )


def test_band_split_with_axes_swapped_is_named():
    def swapped(features, sizes, gammas, weights, biases):
        bands = []
        for piece, g, w, b in zip(features.split(sizes, dim=-1), gammas, weights, biases):
            normed = piece / piece.square().mean(-1, keepdim=True).sqrt() * g
            bands.append(torch.nn.functional.linear(normed, w, b))  # (B, T, D)
        return torch.stack(bands, dim=-1)  # the slip: (B, T, D, N)

    check_fails("02.4", swapped, "(B,T,N,D)")


# The course data (ensure_course_data) are tested in tests/test_coursedata.py.
