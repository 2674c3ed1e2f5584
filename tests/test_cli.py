import argparse
import os
import subprocess
import sys

import pytest

from bsr.cli import build_parser, main


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bsr", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_info_reports_paper_counts(capsys):
    assert main(["info", "paper-l6"]) == 0
    assert "72.2M parameters" in capsys.readouterr().out
    assert main(["info", "paper-l12"]) == 0
    assert "93.4M parameters" in capsys.readouterr().out


def test_bad_preset_is_one_line_without_traceback(tmp_path):
    result = run_cli("info", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr and "unknown preset" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  heads: 5\n")
    result = run_cli("info", str(bad))
    assert result.returncode == 2 and "model.heads" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_missing_ffmpeg_is_one_line(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), BSR_NO_BUNDLED_FFMPEG="1")
    result = run_cli("doctor", env=env)
    assert result.returncode == 2
    assert "ffmpeg and ffprobe not found on PATH" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_doctor_finds_ffmpeg_and_shows_the_course_folder(tmp_path):
    import shutil

    from bsr.ffmpeg import ensure_ffmpeg

    ensure_ffmpeg()  # as `make test` has it: on PATH (also when pytest runs outside the venv)

    home = tmp_path / "my course"
    (home / "data" / "practice").mkdir(parents=True)
    (home / "data" / "practice" / "song.wav").write_bytes(b"x" * 2048)
    result = run_cli("doctor", env=dict(os.environ, BSR_HOME=str(home)))
    assert result.returncode == 0, result.stderr
    # the programs' real paths, as the environment resolves them (not a bare "found")
    assert f"ffmpeg: {shutil.which('ffmpeg')}" in result.stdout
    assert f"course folder: {home} ($BSR_HOME)" in result.stdout
    practice = next(line for line in result.stdout.splitlines() if "data/practice/" in line)
    assert "1 file, " in practice and "generated practice songs" in practice
    assert "BSR_CACHE" not in practice  # only the downloads move with $BSR_CACHE
    moved = run_cli("doctor", env=dict(os.environ, BSR_HOME=str(home), BSR_CACHE=str(tmp_path)))
    downloads = next(line for line in moved.stdout.splitlines() if "downloads/" in line)
    assert f"(in $BSR_CACHE, {tmp_path})" in downloads
    assert "empty" in next(line for line in result.stdout.splitlines() if "separated/" in line)


def _commands(parser, path=("bsr",)):
    """(command words, parser) for ``bsr`` and every subcommand below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def test_every_argument_has_help_with_its_default():
    """``bsr <command> --help`` explains every argument, and what it is when left out."""
    missing = []
    for path, parser in _commands(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            where = f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{where} {c.dest}" for c in action._choices_actions if not c.help]
                continue
            text = formatter._expand_help(action) if action.help else ""
            if not text.strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{where}: no help")
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and "default" not in text:
                missing.append(f"{where}: help does not say the default")
        help_text = parser.format_help()
        assert "==SUPPRESS==" not in help_text and "(default: None)" not in help_text
    assert not missing, "\n".join(missing)


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["data", "synth", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 6)" in out and "(default: 20.0)" in out and "(default: 7)" in out


def test_data_commands_write_into_the_course_folder_by_default(tmp_path, monkeypatch, capsys):
    from bsr.data.examples import FALCON

    monkeypatch.setenv("BSR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BSR_SHARED", raising=False)
    assert main(["data", "example", "--shared", str(tmp_path)]) == 2  # no 80s Rock there
    assert "not found" in capsys.readouterr().err
    assert main(["data", "example"]) == 0
    assert (tmp_path / "home" / "data" / "examples" / "test" / FALCON / "mixture.wav").is_file()
    assert main(["data", "synth", "--songs", "1", "--seconds", "1"]) == 0
    assert len(list((tmp_path / "home" / "data" / "practice").rglob("mixture.wav"))) == 1
