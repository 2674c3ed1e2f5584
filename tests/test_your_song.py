"""Notebook 09 (your own song), executed headless as CI runs it, offline.

* On the default song (the real MUSDB18 excerpt Falcon 69) with the shipped course model it
  leaves audio players and figures in its outputs, its scores beside the oracles, and the
  stems on disk in ``bsr separate``'s layout, in the course folder.
* With a registry served on loopback (``$BSR_REGISTRY``, as a class would publish one) a
  second model is downloaded and separates beside the course model, and a model whose server
  cannot be reached is skipped with one line instead of stopping the notebook.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from notebook_tools import NOTEBOOKS, _code, _execute, _inject, _mimetypes, _read, _text
from test_pretrained import Server, closed_port, sha256, write_registry

import bsr.check
from bsr.checkpoint import save_model
from bsr.config import load_config
from bsr.data.examples import FALCON
from bsr.model import BSRoformer

NB09 = NOTEBOOKS / "09_your_song.ipynb"
STEMS = ("vocals", "drums", "bass", "other")
needs_09 = pytest.mark.skipif(not NB09.is_file(), reason="notebook 09 is not in notebooks/")


def _html(nb) -> str:
    return "".join(
        "".join(output.get("data", {}).get("text/html", ""))
        for cell in _code(nb)
        for output in cell.get("outputs", [])
    )


def _all_text(nb) -> str:
    return "\n".join(_text(cell) for cell in _code(nb))


@pytest.mark.notebooks
@needs_09
def test_your_song_leaves_players_figures_scores_and_stems(executed, course_data):
    nb, _ = executed(NB09)
    players = _html(nb).count("<audio")
    assert players >= 1 + len(STEMS) + 2, (
        f"only {players} audio players in notebook 09"
    )  # song, stems, karaoke, others
    figures = sum("image/png" in _mimetypes(cell) for cell in _code(nb))
    assert figures >= 2, "notebook 09 should show the stem mixer and the spectrograms"
    text = _all_text(nb)
    assert "RTF" in text and "x real time" in text
    assert "cSDR" in text and "uSDR" in text and "mwf" in text.lower()  # scored with oracles
    assert "exercise 09.1: passed" in text and "exercise 09.2: passed" in text
    folder = Path(os.environ["BSR_HOME"]) / "separated" / "course" / "test" / FALCON
    mixture, rate = sf.read(course_data / "examples" / "test" / FALCON / "mixture.wav")
    for stem in STEMS:
        audio, stem_rate = sf.read(folder / f"{stem}.wav")
        assert stem_rate == rate and audio.shape == mixture.shape, (stem, audio.shape)
        assert np.abs(audio).max() > 1e-3, f"{stem} is silent"


@pytest.mark.notebooks
@needs_09
def test_your_song_puts_a_downloaded_model_beside_the_course_model(
    tmp_path, course_data, monkeypatch
):
    served = tmp_path / "served"
    served.mkdir()
    save_model(BSRoformer(load_config("tiny").model), served / "tiny.pt")
    server = Server(served)
    try:
        registry = write_registry(tmp_path, [
            {"name": "class-model", "url": server.url("tiny.pt"),
             "sha256": sha256(served / "tiny.pt")},
            {"name": "far-model", "url": f"http://127.0.0.1:{closed_port()}/far.pt",
             "sha256": None},
        ])  # fmt: skip
        monkeypatch.setenv("BSR_REGISTRY", str(registry))
        monkeypatch.setenv("BSR_HOME", str(tmp_path / "home"))  # its own course folder
        nb = _read(NB09)
        _inject(nb, course_data)
        index = next(i for i, c in enumerate(nb.cells) if "injected" in c.source)
        nb.cells[index].source += '\nMODELS = ["course", "class-model", "far-model"]\nSECONDS = 3.0'
        _execute(nb, NOTEBOOKS)
    finally:
        server.stop()
    text = _all_text(nb)
    assert server.requests == ["/tiny.pt"]
    (skipped,) = [line for line in text.splitlines() if line.startswith("far-model: skipped:")]
    assert "127.0.0.1" in skipped or "network" in skipped.lower(), skipped
    for label in ("course", "class-model"):
        assert f"{label}: " in text and "RTF" in text
        folder = tmp_path / "home" / "separated" / label / "test" / FALCON
        assert sorted(p.stem for p in folder.glob("*.wav")) == sorted(STEMS)
        assert sf.info(folder / "vocals.wav").duration == pytest.approx(3.0, abs=0.01)
    table = next(_text(c) for c in _code(nb) if "constant gain" in _text(c))
    assert "class-model" in table and "course" in table  # scored side by side


# --------------------------------------------------------------------------- the checks


def test_excerpt_slips_are_named():
    from conftest import check_fails

    def excerpt(audio, rate, seconds, start=None):  # a right answer, written out
        if seconds is None:
            return audio
        size = min(audio.shape[-1], round(seconds * rate))
        first = (audio.shape[-1] - size) // 2 if start is None else round(start * rate)
        return audio[..., max(first, 0) : max(first, 0) + size]

    bsr.check.exercise("09.1", excerpt)

    def from_the_start(audio, rate, seconds, start=None):
        return excerpt(audio, rate, seconds, 0.0 if start is None else start)

    def padded(audio, rate, seconds, start=None):
        clip = excerpt(audio, rate, seconds, start)
        size = audio.shape[-1] if seconds is None else min(round(seconds * rate), audio.shape[-1])
        return np.pad(clip, [(0, 0), (0, size - clip.shape[-1])])

    def first_channel(audio, rate, seconds, start=None):
        return excerpt(audio, rate, seconds, start)[:1]

    check_fails("09.1", from_the_start, "centred")
    check_fails("09.1", padded, "the song ends at 10 s")
    check_fails("09.1", first_channel, "keep every channel")


def test_karaoke_slips_are_named():
    from conftest import check_fails

    check_fails("09.2", lambda m, s: s["drums"] + s["bass"] + s["other"], "summed the other")
    check_fails("09.2", lambda m, s: s["vocals"] - m, "upside down")
    check_fails("09.2", lambda m, s: m - s["drums"], "has wrong values")


# ------------------------------------------------------------- the learner's own model


@pytest.fixture
def learners_model(tmp_path, monkeypatch):
    """A tiny CPU run kept as the learner's model, as notebook 06 keeps its GPU run."""
    from bsr.card import export_learner_model
    from bsr.data.synth import write_practice_set
    from bsr.train import train

    songs = write_practice_set(tmp_path / "songs", songs=3, seconds=3.0, seed=5)
    config = load_config("tiny")
    config.train.segment_seconds, config.train.valid_seconds = 0.5, 1.0
    train(config, songs, tmp_path / "run", steps=2, device="cpu", progress=False)
    home = tmp_path / "home"
    monkeypatch.setenv("BSR_HOME", str(home))
    path = export_learner_model(tmp_path / "run", home / "models", minutes=0.1)
    assert path == home / "models" / "mine.pt" and (home / "models" / "mine.json").is_file()
    return path


def test_a_second_export_keeps_the_first(learners_model, tmp_path):
    from bsr.card import export_learner_model
    from bsr.home import default_model

    assert default_model() == (
        str(learners_model),
        f"using your model from notebook 06: {learners_model}",
    )
    first = learners_model.read_bytes()
    export_learner_model(tmp_path / "run", learners_model.parent, minutes=0.1)
    kept = [p for p in learners_model.parent.glob("mine-*.pt")]
    assert len(kept) == 1 and kept[0].read_bytes() == first


def _first_cells(path, until: str):
    """The notebook up to and including the first code cell that contains ``until``."""
    nb = _read(path)
    end = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and until in c.source)
    nb.cells = nb.cells[: end + 1]
    return nb


@pytest.mark.notebooks
@needs_09
def test_notebooks_07_to_09_use_the_learners_model(learners_model, course_data):
    for name, until in (("07_separation_and_evaluation.ipynb", "bsr.load_model(MODEL"),
                        ("08_attention_explorer.ipynb", "find_model(MODEL)")):  # fmt: skip
        nb = _first_cells(NOTEBOOKS / name, until)
        _inject(nb, course_data)
        _execute(nb, NOTEBOOKS)
        assert f"using your model from notebook 06: {learners_model}" in _all_text(nb), name
    nb = _read(NB09)
    _inject(nb, course_data)
    index = next(i for i, c in enumerate(nb.cells) if "injected" in c.source)
    nb.cells[index].source += "\nSECONDS = 2.0"
    _execute(nb, NOTEBOOKS)
    text = _all_text(nb)
    assert f"models: {learners_model}, course" in text
    assert "mine: " in text and "RTF" in text
    assert (
        learners_model.parents[1] / "separated" / "mine" / "test" / FALCON / "vocals.wav"
    ).is_file()
