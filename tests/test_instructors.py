"""INSTRUCTORS.md adds up: its run times are the README's, its lab plans fit their sessions.

Every lab plan is written as ``**Lab X, "title" (T min: A + B).**`` followed by parts
``N min: ... notebook NN ...``, with ``**|**`` between the two sessions. The tests sum the
minutes per session and per notebook; a notebook's parts must add up to its learner time.
"""

from __future__ import annotations

import re
from pathlib import Path

from book.pages import table

REPO = Path(__file__).resolve().parents[1]
INSTRUCTORS = (REPO / "INSTRUCTORS.md").read_text()
README = (REPO / "README.md").read_text()
LAB = re.compile(
    r"\*\*Lab (\w), \"[^\"]+\" \((\d+) min: (\d+) \+ (\d+)[^)]*\)\.\*\*(.*?)(?=\n\n)", re.S
)
PART = re.compile(r"(\d+)\s+min:(.*?)(?=\d+\s+min:|\*\*\|\*\*|$)", re.S)


def _learner_minutes() -> dict[str, int]:
    rows = table(INSTRUCTORS, "#", "learner time")
    return {row["#"]: int(row["learner time"].removesuffix(" min")) for row in rows}


def test_run_times_are_the_readmes():
    ours = {
        row["#"]: row["runs in (2-core CPU)"] for row in table(INSTRUCTORS, "#", "learner time")
    }
    readme = {row["#"]: row["CPU time"] for row in table(README, "#", "builds")}
    assert ours == readme


def _labs() -> dict[str, tuple]:
    labs = {}
    for letter, total, first, second, body in LAB.findall(INSTRUCTORS):
        sessions = body.split("**|**")
        assert len(sessions) == 2, f"lab {letter}: mark the break between sessions with **|**"
        parts = [[(int(n), text) for n, text in PART.findall(s)] for s in sessions]
        labs[letter] = (int(total), (int(first), int(second)), parts)
    return labs


def test_each_session_adds_up_to_its_stated_length():
    labs = _labs()
    assert sorted(labs) == ["A", "B", "C"]
    for letter, (total, lengths, parts) in labs.items():
        sums = tuple(sum(n for n, _ in session) for session in parts)
        assert sums == lengths, f"lab {letter}: the sessions' parts add up to {sums}"
        assert sum(lengths) == total, f"lab {letter}: {lengths} is not {total} min"


def test_each_notebooks_parts_add_up_to_its_learner_time():
    learner = _learner_minutes()
    given: dict[str, int] = {}
    for _, _, parts in _labs().values():
        for session in parts:
            for minutes, text in session:
                for number in set(re.findall(r"notebook\s+(\d\d)", text)):
                    given[number] = given.get(number, 0) + minutes
    homework = re.search(r"Notebook (\d\d) is homework \((\d+) min\)", INSTRUCTORS)
    given[homework.group(1)] = given.get(homework.group(1), 0) + int(homework.group(2))
    assert given == learner


def test_every_exercise_named_exists_and_the_grading_table_weighs_each_once():
    import bsr.check

    bsr.check._load_all()
    exercises = {name for name in bsr.check.EXERCISES if not name.endswith(".P")}
    named = set(re.findall(r"\b0\d\.\d+\b", INSTRUCTORS))
    assert named <= exercises, (
        f"INSTRUCTORS.md names exercises that do not exist: {named - exercises}"
    )
    weights = table(INSTRUCTORS, "kind", "points")
    listed = [e for row in weights for e in re.findall(r"\b0\d\.\d+\b", row["examples"])]
    assert sorted(listed) == sorted(exercises), (
        "the grading weights should list every exercise once"
    )
