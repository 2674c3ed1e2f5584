"""The README's pipeline, run as written: synth, train, plot, separate a split, evaluate."""

import glob
import re
import shlex
import subprocess

import pytest
from conftest import REPO

from bsr.cli import main

# The README's sizes, made small enough for a test; the commands themselves are untouched.
SMALLER = {"--songs 6": "--songs 3", "--seconds 20": "--seconds 4", "--steps 3000": "--steps 2"}


def readme_pipeline() -> list[str]:
    """The command lines of the README's pipeline block, comments removed."""
    text = (REPO / "README.md").read_text()
    section = text.split("## The pipeline", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_pipeline_runs_as_written(tmp_path, monkeypatch, capsys):
    commands = readme_pipeline()
    assert [c.split()[1] for c in commands] == [
        "data", "data", "train", "plot", "separate", "evaluate"
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for command in commands:
        for big, small in SMALLER.items():
            command = command.replace(big, small)
        words = shlex.split(command)
        assert words[0] == "bsr"
        args = [match for w in words[1:] for match in (sorted(glob.glob(w)) or [w])]  # the shell
        assert main(args) == 0, f"{command}: {capsys.readouterr().err}"
    songs = sorted((tmp_path / "data/practice/test").iterdir())
    assert songs, "the practice set has test songs"
    for song in songs:  # each song keeps its own stems, where evaluate reads them
        folder = tmp_path / "separated/test" / song.name
        assert sorted(p.name for p in folder.iterdir()) == [
            "bass.wav", "drums.wav", "other.wav", "vocals.wav"
        ]  # fmt: skip
    out = capsys.readouterr().out
    assert "uSDR" in out and "cSDR" in out


def test_two_songs_that_would_share_a_folder_are_refused(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "song.wav", np.zeros((44100, 2)) + 0.01, 44100)
    code = main(["separate", str(tmp_path / "a/song.wav"), str(tmp_path / "b/song.wav"),
                 "--checkpoint", "course", "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "would both be written to" in err and "\n" not in err.strip()
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("samples", [1, 10, 400])
def test_audio_too_short_for_the_stft_is_one_line(tmp_path, capsys, samples):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "short.wav", np.zeros((samples, 2)) + 0.01, 44100)
    code = main(["separate", str(tmp_path / "short.wav"), "--checkpoint", "course",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs at least 513 samples" in err and "\n" not in err


def test_readme_python_api_runs_as_written(tmp_path, monkeypatch):
    """The README's "Python API" block, run as is on a short generated song."""
    import numpy as np
    import soundfile as sf

    from bsr.data.synth import compose_song, mixture_of
    from bsr.ffmpeg import ensure_ffmpeg

    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    sf.write("song.wav", mixture_of(compose_song(3, 4.0)), 44100)
    ensure_ffmpeg()  # the block reads an m4a, as a learner's phone makes them
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", "song.wav", "my song.m4a"], check=True)
    exec(compile(code, "README.md", "exec"), {})
    vocals, rate = sf.read("separated/my song/vocals.wav")
    assert rate == 44100 and vocals.shape == (4 * 44100, 2) and np.abs(vocals).max() > 0


# --------------------------------------------------------------------------- a first look

FIRST_LOOK_SKIPPED = {"bsr demo", "jupyter lab student/"}  # minutes; a server that stays open


def console_blocks(heading: str) -> list[tuple[str, list[str]]]:
    """``(command, output lines shown under it)`` for every ``$`` line of the console blocks
    of the README section under ``heading``, comments removed."""
    text = (REPO / "README.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    commands: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:].split("  #")[0].strip(), []))
            elif line.strip() and line.strip() != "...":
                commands[-1][1].append(line.strip())
    return commands


def fresh_shell(script: str, cwd, home) -> subprocess.CompletedProcess:
    """``script`` in a new, non-login bash with a bare PATH: what a newcomer's terminal has."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
           "BSR_HOME": str(home / "bsr-course"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_readme_first_look_runs_in_a_fresh_shell(tmp_path):
    """The first commands of the README, as written, in a new shell from a clone."""
    if not (REPO / ".venv" / "bin" / "activate").is_file():
        pytest.skip("this clone has no .venv (set up in a conda env?): the README's first "
                    "line activates .venv, which `make setup` makes outside conda")  # fmt: skip
    commands = console_blocks("## A first look")
    assert commands[0][0] == "source .venv/bin/activate"
    assert "bsr course student notebooks/ --out student/" in [c for c, _ in commands]
    for name in (".venv", "notebooks"):  # a clone's root, without its other files
        (tmp_path / name).symlink_to(REPO / name)
    run = [c for c in commands if c[0] not in FIRST_LOOK_SKIPPED]
    script = "set -e\n" + "".join(f"echo '>>> {c}'\n{c}\n" for c, _ in run)
    result = fresh_shell(script, tmp_path, tmp_path)
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]
    outputs = dict(part.split("\n", 1) for part in result.stdout.split(">>> ")[1:])
    for command, shown in run:
        for line in shown:  # what the README shows under a command is what it prints
            assert line in outputs[command], f"{command}: {line!r} not printed"
    assert (
        "doctor" in outputs["bsr --help"]
        and "not on your shell's PATH" not in (outputs["bsr doctor"])
    )  # activated, ffmpeg is on the shell's PATH too
    assert sorted((tmp_path / "student").glob("*.ipynb"))
    # without the activation line the same shell does not know bsr: the line is needed
    bare = fresh_shell("bsr --help", tmp_path, tmp_path)
    assert bare.returncode == 127 and "command not found" in bare.stderr
