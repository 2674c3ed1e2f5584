"""The demo's whole path on a very small scale: data, training, separation, report."""

import pytest

from bsr.demo import fresh_run_dir, run
from bsr.errors import BsrError


def test_demo_writes_model_report_and_figures(tmp_path):
    report = run(
        preset="tiny",
        data_root=tmp_path / "data",
        out=tmp_path / "runs" / "demo",
        steps=2,
        songs=2,
        seconds=2.0,
        train_minutes=None,
        with_examples=False,
    )
    out = tmp_path / "runs" / "demo"
    assert report == out / "report.md" and (out / "model.pt").is_file()
    assert (out / "loss.png").stat().st_size > 0 and (out / "spectrograms.png").stat().st_size > 0
    text = report.read_text()
    for needle in (
        "cSDR (median of medians, museval v4)",
        "uSDR (mean over tracks)",
        "constant gain",
        "IRM",
        "cIRM",
        "What this model is not",
        "9.80 dB",
    ):
        assert needle in text, needle
    assert "of the way from the mixture to the oracle" in text


def test_demo_never_removes_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(BsrError, match="not made by the demo"):
        fresh_run_dir(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
