"""Every command answers bad input with one line on stderr, exit status 2, no traceback."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_config

from bsr.checkpoint import save_model
from bsr.cli import main
from bsr.config import Config
from bsr.model import BSRoformer


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    config = tiny_config(stems=["vocals", "other"])
    save_model(BSRoformer(config), root / "model.pt", Config(model=config))
    rate = 44100
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(root / "song.wav", np.stack([tone, tone], 1), rate)
    sf.write(root / "silence.wav", np.zeros((rate, 2)), rate)
    sf.write(
        root / "clipped.wav",
        np.stack([3 * tone, -3 * tone], 1).clip(-1.2, 1.2),
        rate,
        subtype="FLOAT",
    )
    sf.write(root / "mono22k.wav", tone[: rate // 2], rate // 2)
    nan = np.stack([tone, tone], 1)
    nan[100] = np.nan
    sf.write(root / "nan.wav", nan, rate, subtype="FLOAT")
    sf.write(root / "empty.wav", np.zeros((0, 2)), rate)
    whole = (root / "song.wav").read_bytes()
    (root / "truncated.wav").write_bytes(whole[:30])
    (root / "notes.txt").write_text("not audio")
    (root / "text.wav").write_text("not audio either")
    (root / "corrupt.pt").write_bytes(b"\x80\x02garbage")
    (root / "truncated.pt").write_bytes((root / "model.pt").read_bytes()[:200])
    return root


def fails(capsys, *argv, match):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bsr: error:") and "\n" not in err, err
    assert "Traceback" not in err
    assert match in err, err


def test_separate_bad_inputs(files, capsys, tmp_path):
    ckpt = files / "model.pt"
    cases = [
        (files / "missing.wav", "not found"),
        (files, "is a directory"),
        (files / "notes.txt", "cannot read"),
        (files / "text.wav", "cannot read"),
        (files / "truncated.wav", "cannot read"),
        (files / "empty.wav", "empty"),
        (files / "nan.wav", "NaN"),
    ]
    for audio, message in cases:
        fails(
            capsys, "separate", audio, "--checkpoint", ckpt, "--out", tmp_path / "o", match=message
        )
    for bad in ("corrupt.pt", "truncated.pt", "missing.pt"):
        fails(
            capsys,
            "separate",
            files / "song.wav",
            "--checkpoint",
            files / bad,
            "--out",
            tmp_path / "o",
            match="checkpoint",
        )
    fails(
        capsys,
        "separate",
        files / "song.wav",
        "--checkpoint",
        files / "notes.txt",
        "--out",
        tmp_path / "o",
        match="not a readable checkpoint",
    )
    fails(
        capsys,
        "separate",
        files / "song.wav",
        "--checkpoint",
        ckpt,
        "--out",
        files / "notes.txt",
        match="is a file",
    )


def test_separate_accepts_silence_clipping_mono_and_other_rates(files, capsys, tmp_path):
    ckpt = files / "model.pt"
    out = tmp_path / "out"
    for name in ("silence.wav", "clipped.wav", "mono22k.wav"):
        assert (
            main(["separate", str(files / name), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
        )
    capsys.readouterr()
    audio, rate = sf.read(out / "mono22k" / "vocals.wav")
    assert rate == 22050 and audio.ndim == 1 and len(audio) == 22050  # as the input
    # A second run must not overwrite the stems it wrote.
    fails(
        capsys,
        "separate",
        files / "silence.wav",
        "--checkpoint",
        ckpt,
        "--out",
        out,
        match="--force",
    )
    (out / "silence" / "vocals.wav").write_bytes(b"stale")
    assert (
        main(
            [
                "separate",
                str(files / "silence.wav"),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
                "--force",
            ]
        )
        == 0
    )
    assert sf.read(out / "silence" / "vocals.wav")[0].shape == (44100, 2)  # rewritten


def test_train_evaluate_info_data_bad_inputs(files, capsys, tmp_path):
    fails(capsys, "info", "no-such-preset", match="unknown preset")
    fails(capsys, "info", files / "notes.txt", match="config")
    (tmp_path / "empty").mkdir()
    run = tmp_path / "run"
    train_cases = [  # (config, data, out, extra arguments, expected words)
        ("tiny", tmp_path / "nothing", run, [], "does not exist"),
        ("tiny", tmp_path / "empty", run, [], "train"),
        ("nope", files, run, [], "unknown preset"),
        ("tiny", files, files / "notes.txt" / "run", [], "cannot write"),
        ("tiny", files, run, ["--device", "toaster"], "unknown device"),
    ]
    for config, data, out, extra, words in train_cases:
        fails(
            capsys, "train", "--config", config, "--data", data, "--out", out, *extra, match=words
        )
    fails(capsys, "evaluate", "--estimates", tmp_path / "none", "--data", files, match="not found")
    fails(capsys, "plot", tmp_path, match="metrics.jsonl")
    fails(capsys, "data", "synth", "--out", tmp_path / "p", "--songs", "0", match="songs")
    fails(
        capsys, "data", "synth", "--out", files, "--songs", "1", "--seconds", "1", match="--force"
    )


def test_student_versions_never_replace_a_learners_notebook(capsys, tmp_path):
    from pathlib import Path

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    out = tmp_path / "student"
    out.mkdir()
    homework = out / "01_stft_and_masks.ipynb"
    homework.write_text('{"my": "answers"}')
    fails(capsys, "course", "student", notebooks, "--out", out, match="already exists")
    assert homework.read_text() == '{"my": "answers"}'  # untouched ...
    assert sorted(p.name for p in out.iterdir()) == [homework.name]  # ... and nothing added
    assert main(["course", "student", str(notebooks), "--out", str(out), "--force"]) == 0
    replaced = homework.read_text()
    assert "BEGIN SOLUTION" not in replaced and '"my": "answers"' not in replaced


def test_threads_option(files, capsys, tmp_path):
    import torch

    before = torch.get_num_threads()
    fails(capsys, "separate", files / "song.wav", "--checkpoint", files / "model.pt", "--out",
          tmp_path / "a", "--threads", "0", match="--threads must be at least 1")  # fmt: skip
    assert torch.get_num_threads() == before
    wanted = 2 if before == 1 else 1  # a value other than the current one
    try:
        code = main(["separate", str(files / "song.wav"), "--checkpoint", str(files / "model.pt"),
                     "--out", str(tmp_path / "b"), "--threads", str(wanted)])  # fmt: skip
        assert code == 0 and torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_a_busy_machine_gets_one_thread_by_default(files, capsys, tmp_path, monkeypatch):
    import os

    import torch

    import bsr.cli

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    assert bsr.cli.busy_machine_threads() == 1
    assert "the machine is busy (load 1.9 on 2 cores)" in capsys.readouterr().out
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 1.0, 1.0))
    assert bsr.cli.busy_machine_threads() is None
    torch.set_num_threads(before)
