"""Notebook 08 in a real browser: JupyterLab, headless Chromium, and the attention explorer.

The notebook tests run every notebook with nbclient, which has no front end: a widget there
is only a model in the kernel, never drawn. This test checks what a student sees. It starts
JupyterLab on the loopback interface, opens a copy of notebook 08 in headless Chromium
(Debian's ``chromium``, driven by Playwright through its executable path; Playwright's own
browser downloads are never used), runs all cells from the Run menu and checks that

* every code cell ran, none ended in a traceback, and both exercise checks passed;
* the attention explorer rendered as ipywidgets: three sliders, the axis toggle buttons, the
  RoPE checkbox, the head dropdown, an audio player holding the 1 s excerpt and the figure
  image, with no "Error displaying widget" or "Loading widget..." left on the page;
* it reacts to the browser: switching the axis to "band", choosing a head and moving the
  query slider with the keyboard each make the kernel redraw, and the figure changes.

Screenshots of the explorer before and after the change and of the JupyterLab window are
written to ``tmp_path`` and copied to ``runs/browser-test/`` (git-ignored) for a human to look
at. Where Chromium, Playwright or JupyterLab is missing the test skips or fails as
``browser_tools`` says.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_tools import CHROMIUM_ARGS, chromium_path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "08_attention_explorer.ipynb"
SHOTS = REPO / "runs" / "browser-test"
RUN_TIMEOUT = 240_000  # ms for the whole notebook: 35 to 90 s on two busy CPU cores
TIMEOUT = 60_000  # ms for anything else the page is waited for
# JupyterLab settings for a quiet, deterministic page: no "news?" toast over the notebook, and
# every cell attached to the DOM (the default windowing detaches cells far out of view).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


@pytest.fixture
def chromium() -> str:
    """The Chromium binary to drive, after checking that the Python side is there too."""
    return chromium_path("jupyterlab")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _copy_notebook(root: Path, data: Path, checkpoint: Path) -> str:
    """Notebook 08 in ``root``, its parameters set for a quick, interactive run.

    JupyterLab autosaves outputs into the file it runs, so the committed notebook is never
    opened. The values are replaced in the parameters cell itself (not in a cell after it):
    the students' own cell is what a browser user runs.
    """
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {
        "DATA": f"Path({str(data)!r})",
        "MODEL": repr(str(checkpoint)),  # absent: the tiny model trains here (1 s excerpt)
        "INTERACTIVE": "True",  # widgets, the point of this test
        "DEVICE": '"cpu"',  # the same run on every machine
    }
    for name, value in values.items():
        cell.source, count = re.subn(
            rf"^{name} = .*$", f"{name} = {value}", cell.source, flags=re.MULTILINE
        )
        assert count == 1, f"{NOTEBOOK.name}: the parameters cell no longer sets {name}"
    nbformat.write(nb, root / NOTEBOOK.name)
    return NOTEBOOK.name


def _jupyter_env(home: Path) -> dict[str, str]:
    """The environment for JupyterLab: its state in ``home``, nothing from the user's."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                 "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):  # fmt: skip
        env[name] = str(home / name.lower())
    # The python3 kernel is still found: sys.prefix/share/jupyter is always searched.
    for name, values in LAB_SETTINGS.items():
        path = Path(env["JUPYTERLAB_SETTINGS_DIR"], name + ".jupyterlab-settings")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return env


def _wait_for_server(proc, url: str, token: str, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"token {token}"}
    request = urllib.request.Request(f"{url}/api/status", headers=headers)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer in {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(chromium, tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a prepared copy of notebook 08.

    Yields ``(URL of the notebook with its token, tmp_path, start time)``. It runs
    ``python -m jupyterlab`` rather than ``python -m jupyter lab``: the latter starts the
    server as a child process, which terminating the parent would leave behind. On SIGTERM
    the server shuts its kernel down.
    """
    started = time.perf_counter()
    root = tmp_path / "lab"
    root.mkdir()
    name = _copy_notebook(root, tmp_path / "data", tmp_path / "no-model.pt")
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.extension_manager=readonly",  # no PyPI look-ups for the extension manager
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=root, env=_jupyter_env(tmp_path), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_server(proc, url, token, log)
        yield f"{url}/lab/tree/{name}?token={token}", tmp_path, started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The notebook has finished: no cell is queued or running, the kernel is idle, and every code
# cell has its execution count, or a traceback stopped the run (the rest then stay "[ ]").
FINISHED = """panel => {
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
        .map(e => e.textContent.trim());
    const stderr = [...panel.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')];
    const failed = stderr.some(e => e.textContent.includes('Traceback'));
    const idle = /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar').textContent);
    return idle && !prompts.some(t => t.includes('*'))
        && (failed || prompts.every(t => /^\\[\\d+\\]:$/.test(t)));
}"""
IMAGE_LOADED = "img => img.complete && img.naturalWidth > 0"


def _run_all(page, panel) -> float:
    """Run all cells from the Run menu once the kernel is up; returns the seconds they took."""
    page.wait_for_function(
        "() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar').textContent)",
        timeout=TIMEOUT,
    )
    started = time.perf_counter()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(FINISHED, arg=panel.element_handle(), timeout=RUN_TIMEOUT)
    return time.perf_counter() - started


def _errors(panel) -> list[str]:
    """Tracebacks among the stderr outputs (warnings are allowed)."""
    selector = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    texts = panel.locator(selector).all_text_contents()
    return [t for t in texts if "Traceback" in t or re.search(r"\w+Error\b", t)]


def _redraws(explorer, action) -> None:
    """Do ``action`` in the browser and wait until the kernel has sent a new figure."""
    image = explorer.locator("img.widget-image")
    before = image.get_attribute("src")
    action()
    # ipywidgets shows every new PNG under a fresh blob: URL
    explorer.page.wait_for_function(
        "([img, old]) => img.getAttribute('src') !== old && img.complete && img.naturalWidth > 0",
        arg=[image.element_handle(), before],
        timeout=TIMEOUT,
    )


def _check_explorer(explorer) -> None:
    """The widgets of :func:`bsr.viz.attention.attention_explorer`, all drawn."""
    from playwright.sync_api import expect

    labels = explorer.locator(".widget-slider .widget-label")
    expect(labels).to_have_text(["layer", "band", "query frame"])
    expect(explorer.locator(".widget-toggle-buttons button")).to_have_text(["time", "band"])
    expect(explorer.locator(".widget-toggle-buttons button.mod-active")).to_have_text("time")
    expect(explorer.locator(".widget-checkbox input")).to_be_checked()  # RoPE on
    head = explorer.locator(".widget-dropdown select")
    expect(head.locator("option")).to_have_text(["mean", "head 0", "head 1"])
    expect(explorer.locator(".widget-label", has_text="looks")).to_contain_text("frames away")
    image = explorer.locator("img.widget-image")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    explorer.page.wait_for_function(IMAGE_LOADED, arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") > 800, "the figure has three panels"
    # The player holds the 1 s excerpt as WAV: Chromium decodes its header.
    audio = explorer.locator("audio")
    expect(audio).to_have_count(1)
    explorer.page.wait_for_function("a => a.readyState >= 1", arg=audio.element_handle())
    assert audio.evaluate("a => a.duration") == pytest.approx(1.0, abs=0.05)


def _save(shots: dict[str, Path]) -> None:
    """Copy the screenshots taken to ``runs/browser-test/`` and say where they are."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("08-*.png"):  # from an earlier run: not to be mistaken for this one's
        old.unlink()
    for path in shots.values():
        if path.is_file():
            shutil.copy(path, SHOTS / path.name)
            print(f"screenshot: {SHOTS / path.name}")


@pytest.mark.notebooks
def test_attention_explorer_in_jupyterlab(chromium, lab, capsys):
    from playwright.sync_api import expect, sync_playwright

    url, tmp_path, started = lab
    shots = {k: tmp_path / f"08-{k}.png" for k in ("before", "after", "jupyterlab")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT)
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        try:
            page.goto(url)
            panel = page.locator(".jp-NotebookPanel")
            expect(panel.locator(".jp-CodeCell").first).to_be_visible()
            seconds = _run_all(page, panel)

            errors = _errors(panel)
            assert not errors, "a cell failed:\n" + "\n\n".join(errors)
            prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
            assert all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), prompts
            for exercise in ("08.1", "08.2"):
                expect(panel).to_contain_text(f"exercise {exercise}: passed")

            explorer = panel.locator(".jp-OutputArea-output .widget-vbox")
            expect(explorer).to_have_count(1)
            explorer.scroll_into_view_if_needed()
            _check_explorer(explorer)
            for text in ("Error displaying widget", "Loading widget"):
                expect(panel).not_to_contain_text(text)
            before = explorer.screenshot(path=shots["before"])

            # The time axis becomes the band axis: the kernel records the band attention,
            # relabels the sliders (band -> frame, query frame -> query band) and redraws.
            _redraws(explorer, lambda: explorer.get_by_role("button", name="band").click())
            labels = explorer.locator(".widget-slider .widget-label")
            expect(labels).to_have_text(["layer", "frame", "query band"])
            readout = explorer.locator(".widget-label", has_text="looks")
            expect(readout).to_contain_text("bands away")
            after = explorer.screenshot(path=shots["after"])
            assert after != before, "the explorer looks the same after switching the axis"

            # A head from the dropdown, then the query slider moved with the keyboard.
            _redraws(explorer, lambda: explorer.locator("select").select_option(label="head 1"))
            query = explorer.locator(".widget-slider").nth(2)
            start = int(query.locator(".widget-readout").text_content())
            handle = query.locator(".noUi-handle")
            _redraws(explorer, lambda: handle.press("ArrowRight"))
            expect(query.locator(".widget-readout")).to_have_text(str(start + 1))
            expect(readout).to_contain_text(f"query {start + 1} puts")
            page.screenshot(path=shots["jupyterlab"])
        except Exception:
            page.screenshot(path=shots["jupyterlab"])  # what the page showed when it failed
            with capsys.disabled():
                _save(shots)
            raise
        finally:
            browser.close()
    with capsys.disabled():
        print(f"\nnotebook 08 ran in JupyterLab in {seconds:.1f} s; ", end="")
        print(f"the browser test took {time.perf_counter() - started:.1f} s in all")
        if page_errors:
            print("JavaScript errors on the page (not failing the test):", *page_errors, sep="\n")
        _save(shots)
