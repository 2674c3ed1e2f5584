"""The notebooks' data: each gets exactly the practice set its parameter cell asks for."""

import json

import pytest

from bsr.coursedata import ensure_course_data, settings_name
from bsr.data.examples import FALCON
from bsr.data.synth import MANIFEST, write_practice_set


@pytest.fixture
def data(tmp_path):
    """A course data folder whose real examples are a stand-in (no decoding in these tests)."""
    marker = tmp_path / "examples" / "test" / FALCON / "mixture.wav"
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"")
    return tmp_path


def snapshot(folder):
    """Every file under ``folder`` with its bytes: to show that nothing was touched."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def settings(folder):
    manifest = json.loads((folder / MANIFEST).read_text())
    return manifest["songs"], manifest["seconds"], manifest["seed"]


def test_an_absent_practice_set_is_made_in_practice(data, capsys):
    practice, examples = ensure_course_data(data, songs=2, seconds=1.0, seed=7)
    assert (practice, examples) == (data / "practice", data / "examples")
    assert settings(practice) == (2, 1.0, 7)
    assert "made the practice set of 2 x 1 s songs (seed 7)" in capsys.readouterr().out


def test_the_same_settings_reuse_the_set_without_rewriting_it(data, capsys):
    write_practice_set(data / "practice", songs=2, seconds=1.0, seed=7)
    mtimes = {p: p.stat().st_mtime_ns for p in (data / "practice").rglob("*.wav")}
    practice, _ = ensure_course_data(data, songs=2, seconds=1.0, seed=7)
    assert practice == data / "practice"
    assert {p: p.stat().st_mtime_ns for p in practice.rglob("*.wav")} == mtimes
    assert "found the practice set of 2 x 1 s songs (seed 7)" in capsys.readouterr().out


def test_a_set_made_with_other_settings_is_kept_and_not_used(data, capsys):
    """The bug: notebook 07 ran on the demo's 9 x 20 s songs, ignoring its parameter cell."""
    write_practice_set(data / "practice", songs=3, seconds=1.5, seed=3)
    before = snapshot(data / "practice")
    practice, _ = ensure_course_data(data, songs=2, seconds=1.0, seed=7)
    assert practice == data / settings_name(2, 1.0, 7) == data / "practice-2x1s-seed7"
    assert settings(practice) == (2, 1.0, 7)  # what the parameter cell asked for
    assert len(list(practice.rglob("mixture.wav"))) == 2
    assert snapshot(data / "practice") == before  # the other set is untouched
    out = capsys.readouterr().out
    assert "holds a practice set of 3 x 1.5 s songs (seed 3), left as it is" in out
    # the second time, the set of these settings is found where it was made
    assert ensure_course_data(data, songs=2, seconds=1.0, seed=7)[0] == practice
    assert f"found the practice set of 2 x 1 s songs (seed 7) in {practice}" in (
        capsys.readouterr().out
    )


def test_songs_put_in_practice_by_hand_are_never_touched(data, capsys):
    mine = data / "practice" / "train" / "My Song"
    mine.mkdir(parents=True)
    (mine / "mixture.wav").write_bytes(b"my own recording")
    before = snapshot(data / "practice")
    practice, _ = ensure_course_data(data, songs=2, seconds=1.0, seed=7)
    assert practice == data / "practice-2x1s-seed7" and settings(practice) == (2, 1.0, 7)
    assert snapshot(data / "practice") == before
    assert "files that are not a bsr practice set, left as it is" in capsys.readouterr().out
