"""What a newcomer meets first (#23): vocals and accompaniment, one-line answers, defaults
that point somewhere sensible, and messages that name what was done."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_config

import bsr
from bsr.checkpoint import save_model
from bsr.cli import build_parser, main
from bsr.config import Config, list_presets
from bsr.errors import BsrError
from bsr.home import course_folder
from bsr.model import BSRoformer

RATE = 44100
FOUR = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def four_stems():
    torch.manual_seed(0)
    return BSRoformer(tiny_config(stems=FOUR)).eval()


def song(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((2, int(seconds * RATE)))).astype(
        np.float32
    )


# --------------------------------------------------------------------------- accompaniment


def test_accompaniment_is_the_sum_of_the_other_stems(four_stems):
    audio = song()
    every = bsr.separate_audio(audio, RATE, four_stems)
    pair = bsr.separate_audio(audio, RATE, four_stems, stems=["vocals", "accompaniment"])
    assert list(pair) == ["vocals", "accompaniment"]
    np.testing.assert_array_equal(pair["vocals"], every["vocals"])
    others = every["drums"].astype(np.float64) + every["bass"] + every["other"]
    np.testing.assert_allclose(pair["accompaniment"], others, rtol=0, atol=1e-6)
    assert np.abs(pair["accompaniment"] - every["other"]).max() > 1e-3  # not one stem alone
    assert pair["accompaniment"].dtype == np.float32 and pair["accompaniment"].shape == (2, RATE)


def test_a_vocals_only_model_gives_the_mixture_minus_its_vocals():
    torch.manual_seed(1)
    model = BSRoformer(tiny_config(stems=["vocals"])).eval()
    audio = song(seed=1)
    pair = bsr.separate_audio(audio, RATE, model, stems=["vocals", "accompaniment"])
    np.testing.assert_allclose(pair["accompaniment"], audio - pair["vocals"], atol=1e-7)


def test_stems_a_model_cannot_give_are_refused(four_stems):
    for stems in (["vocals", "karaoke"], ["vocals", "vocals"], []):
        with pytest.raises(BsrError, match="name each once, from vocals, drums"):
            bsr.separate_audio(song(), RATE, four_stems, stems=stems)
    torch.manual_seed(2)
    no_vocals = BSRoformer(tiny_config(stems=["drums", "other"])).eval()
    with pytest.raises(BsrError, match="from drums, other \\(e.g. --stems drums\\)"):
        bsr.separate_audio(song(), RATE, no_vocals, stems=["accompaniment"])


@pytest.fixture(scope="module")
def files(tmp_path_factory, four_stems):
    root = tmp_path_factory.mktemp("newcomer")
    save_model(four_stems, root / "model.pt", Config(model=four_stems.config))
    sf.write(root / "good.wav", song().T, RATE, subtype="FLOAT")
    nan = song(seed=3)
    nan[0, 500] = np.nan
    sf.write(root / "nan.wav", nan.T, RATE, subtype="FLOAT")
    return root


def test_cli_vocals_and_accompaniment(files, tmp_path, capsys):
    model = str(files / "model.pt")
    assert main(["separate", str(files / "good.wav"), "--checkpoint", model,
                 "--out", str(tmp_path / "all")]) == 0  # fmt: skip
    pair_args = ["--out", str(tmp_path / "pair"), "--stems", "vocals,accompaniment"]
    assert main(["separate", str(files / "good.wav"), "--checkpoint", model, *pair_args]) == 0
    pair = tmp_path / "pair" / "good"
    assert sorted(p.name for p in pair.iterdir()) == ["accompaniment.wav", "vocals.wav"]
    stems = {s: sf.read(tmp_path / "all" / "good" / f"{s}.wav")[0] for s in FOUR}
    accompaniment, _ = sf.read(pair / "accompaniment.wav")
    np.testing.assert_allclose(accompaniment, stems["drums"] + stems["bass"] + stems["other"],
                               rtol=0, atol=1e-6)  # fmt: skip
    # the message names the files and the folder they went to
    assert f"wrote vocals.wav, accompaniment.wav to {pair}/" in capsys.readouterr().out


def test_every_input_is_read_before_anything_is_written(files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["separate", str(files / "good.wav"), str(files / "nan.wav"),
                 "--checkpoint", str(files / "model.pt"), "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nan.wav contains NaN" in err and "\n" not in err
    assert not out.exists()  # good.wav's stems were not written either


def test_unknown_stems_on_the_command_line_are_one_line(files, tmp_path, capsys):
    code = main(["separate", str(files / "good.wav"), "--checkpoint", str(files / "model.pt"),
                 "--out", str(tmp_path / "o"), "--stems", "vocals,karaoke"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot give the stems vocals,karaoke" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- defaults and help


def test_separate_defaults_to_the_course_model():
    args = build_parser().parse_args(["separate", "song.wav", "--out", "separated"])
    assert args.checkpoint == Path("course") and args.stems is None


def test_info_help_lists_every_preset():
    help_text = build_parser()._subparsers._group_actions[0].choices["info"].format_help()
    help_text = " ".join(help_text.split())  # argparse wraps lines
    assert list_presets() and all(name in help_text for name in list_presets())


def test_doctor_has_a_line_in_bsr_help():
    top = build_parser().format_help()
    doctor = next(line for line in top.splitlines() if line.strip().startswith("doctor"))
    assert "check that ffmpeg" in doctor


def test_course_card_writes_to_the_course_folder_not_into_the_package():
    args = build_parser().parse_args(["course", "card", "runs/x", "--name", "x", "--data", "d"])
    package = Path(bsr.__file__).parent.resolve()
    assert args.out == course_folder("models") and args.sets == course_folder("data", "card")
    assert package not in args.out.resolve().parents and package not in args.sets.resolve().parents


def test_doctor_says_when_ffmpeg_is_not_on_the_shells_path(tmp_path):
    from bsr.ffmpeg import bundled_dir

    if bundled_dir() is None:
        pytest.skip("no bundled ffmpeg wheel here (it exists for Linux x86-64 only)")
    env = dict(os.environ, PATH=str(tmp_path), BSR_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-m", "bsr", "doctor"], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"ffmpeg: {bundled_dir() / 'ffmpeg'}" in result.stdout
    assert "not on your shell's PATH" in result.stdout and "activate" in result.stdout
