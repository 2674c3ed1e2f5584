import os
import subprocess
import sys

from bsr.cli import main


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


def test_doctor_finds_ffmpeg():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    assert "ffmpeg and ffprobe: found" in result.stdout
