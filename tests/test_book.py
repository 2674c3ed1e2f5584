"""The course website (``make book``): notebooks made ready for the web, pages, links, a browser.

The unit tests run on small notebooks made here. The site tests build the whole site once
from the notebooks that the test run executes anyway (the session's ``executed`` fixture,
so the course is not run twice), check every page's links and images in the HTML, and then
open the start page and the pages of notebooks 01, 07 and 09 in headless Chromium (see
``browser_tools``). Screenshots go to ``runs/book/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import base64
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import numpy as np
import pytest
from browser_tools import CHROMIUM_ARGS, chromium_path
from notebook_tools import NOTEBOOKS

from book import notebook as web
from book.pages import Links, course_map, slug
from book.site import build, config, repository_url, size_mb, stage, toc, warnings
from bsr.launch import badge, colab_url

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "runs" / "book"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
OPENED = ["index.html"] + [
    f"notebooks/{p.stem}.html" for p in PATHS if p.name[:2] in ("01", "07", "09")
]
MAX_SITE_MB = 100
WIDGET = web.WIDGET


# --- one notebook made ready for the web --------------------------------------------------


def _player(seconds: float = 1.0, rate: int = 44100) -> dict:
    """The display data of IPython's own embedded player, as the notebooks make it."""
    from IPython.display import Audio

    t = np.arange(int(seconds * rate)) / rate
    sweep = 200 * t + 900 * t**2  # Hz * s: a rise from 200 Hz, never periodic, easy to align
    tone = np.stack([np.sin(2 * np.pi * sweep), 0.5 * np.sin(2 * np.pi * 1.5 * sweep)])
    return {"text/html": Audio(tone, rate=rate)._repr_html_(), "text/plain": "<Audio>"}


def _output(data: dict):
    return nbformat.v4.new_output("display_data", data=data)


def _executed_notebook():
    png = base64.b64encode(b"\x89PNG fake").decode()
    title = nbformat.v4.new_markdown_cell(
        "# 01 · A page\n\n" + badge("https://github.com/o/r", "01_a.ipynb") + "\nText."
    )
    injected = nbformat.v4.new_code_cell("DATA = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    figure_widget = nbformat.v4.new_code_cell("explorer")
    figure_widget.outputs = [_output({WIDGET: {"model_id": "a"}, "image/png": png,
                                      "text/plain": "VBox(children=(...))"})]  # fmt: skip
    bare_widget = nbformat.v4.new_code_cell("rope_explorer()")
    bare_widget.outputs = [_output({WIDGET: {"model_id": "b"}, "text/plain": "VBox(children=()"})]
    upload = nbformat.v4.new_code_cell("display(picker)")
    upload.outputs = [_output({WIDGET: {"model_id": "c"}, "text/plain": "Upload a song: set SONG"})]
    progress = nbformat.v4.new_code_cell("separate(...)")
    progress.outputs = [_output({WIDGET: {"model_id": "d"}, "text/plain": "  0%|   | 0/6.1"})]
    player = nbformat.v4.new_code_cell("display(Audio(...))")
    player.outputs = [_output(_player())]
    nb = nbformat.v4.new_notebook(
        cells=[title, injected, figure_widget, bare_widget, upload, progress, player]
    )
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


@pytest.fixture(scope="module")
def made_for_web():
    nb = _executed_notebook()
    before = nbformat.writes(nb)
    return nb, before, web.for_the_web(nb)


def test_the_web_copy_leaves_the_executed_notebook_alone(made_for_web):
    nb, before, _ = made_for_web
    assert nbformat.writes(nb) == before


def test_injected_parameters_badge_and_widget_state_are_gone(made_for_web):
    _, _, page = made_for_web
    sources = [cell.source for cell in page.cells]
    assert "DATA = 1" not in sources
    assert "colab-badge" not in page.cells[0].source and "Text." in page.cells[0].source
    assert "widgets" not in page.metadata


def test_widgets_become_stills_notes_or_nothing(made_for_web):
    _, _, page = made_for_web
    outputs = {c.source: c.outputs for c in page.cells if c.cell_type == "code"}
    assert all(WIDGET not in o.get("data", {}) for os_ in outputs.values() for o in os_)
    (still,) = outputs["explorer"]
    assert set(still.data) == {"image/png"}  # the widget's repr would print under the image
    index = [c.source for c in page.cells].index("explorer")
    assert page.cells[index + 1].source == web.LIVE_NOTE  # says the widget is live elsewhere
    (note,) = outputs["rope_explorer()"]
    assert set(note.data) == {"text/markdown"} and "launch button" in note.data["text/markdown"]
    (sentence,) = outputs["display(picker)"]
    assert sentence.data["text/plain"] == "Upload a song: set SONG"  # written for readers
    assert outputs["separate(...)"] == []  # a progress bar means nothing on a page


def _decode(audio: bytes, suffix: str, tmp_path: Path) -> np.ndarray:
    """Decode audio bytes with ffmpeg into (channels, samples) float32 at 44.1 kHz."""
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(audio)
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-ar", "44100",
               "pipe:1"]  # fmt: skip
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, 2).T


def test_players_stay_embedded_and_become_mp3_of_the_same_sound(made_for_web, tmp_path):
    nb, _, page = made_for_web
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not on PATH (make test puts .venv/bin first)")
    before = nb.cells[-1].outputs[0].data["text/html"]
    after = page.cells[-1].outputs[0].data["text/html"]
    assert "audio/wav" not in after and 'type="audio/mpeg"' in after
    assert len(after) < len(before) / 5
    wav = base64.b64decode(re.search(r"data:audio/wav;base64,([^\"]+)", before).group(1))
    mp3 = base64.b64decode(re.search(r"data:audio/mpeg;base64,([^\"]+)", after).group(1))
    original, compressed = _decode(wav, ".wav", tmp_path), _decode(mp3, ".mp3", tmp_path)
    # MP3 adds an encoder delay and padding: find the delay, then compare the overlap.
    delay = int(np.argmax(np.correlate(compressed[0, :4000], original[0, :2000], "valid")))
    n = original.shape[1] - 2000
    error = compressed[:, delay : delay + n] - original[:, :n]
    snr = 10 * np.log10((original[:, :n] ** 2).sum() / (error**2).sum())
    assert abs(compressed.shape[1] - original.shape[1]) < 0.1 * 44100
    assert snr > 20, f"the MP3 player sounds unlike the original (SNR {snr:.1f} dB)"


def test_without_ffmpeg_the_players_fail_in_one_line(monkeypatch):
    monkeypatch.setattr(web.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="need ffmpeg on PATH: run `make book`"):
        web.wav_to_mp3(b"RIFF")


# --- pages, links and the book's settings -------------------------------------------------


def test_links_go_to_pages_anchors_to_their_page_and_files_to_github():
    links = Links(
        "https://github.com/o/r",
        {"INSTRUCTORS.md": "instructors.md", "docs/x.md": "x.md"},
        {"community-models": "library.md"},
    )
    text = ("[a](INSTRUCTORS.md) [b](#community-models) [c](docs/x.md#top) [d](bsr/cli.py) "
            "[e](tests/) [f](https://example.org/x.md) "
            "[h](#elsewhere) ![img](fig.png)")  # fmt: skip
    assert links.rewrite(text, "README.md") == (
        "[a](instructors.md) [b](library.md#community-models) [c](x.md#top) "
        "[d](https://github.com/o/r/blob/main/bsr/cli.py) "
        "[e](https://github.com/o/r/tree/main/tests) [f](https://example.org/x.md) [h](#elsewhere) "
        "![img](fig.png)"
    )
    assert links.rewrite("[g](../README.md#community-models)", "docs/x.md") == (
        "[g](library.md#community-models)"
    )


def test_slugs_are_githubs():
    assert slug("Community models") == "community-models"
    assert slug("The pipeline: data, training, separation, evaluation") == (
        "the-pipeline-data-training-separation-evaluation"
    )


def test_the_course_map_has_every_notebook_with_its_learner_time():
    titles = {p.name: nbformat.read(p, as_version=4).cells[0].source.splitlines()[0][2:]
              for p in PATHS}  # fmt: skip
    text = course_map(REPO, "# bsr\n\nIntro.\n", titles)
    rows = [line for line in text.splitlines() if re.match(r"\| \d\d \|", line)]
    assert [row[2:4] for row in rows] == [name[:2] for name in titles]
    for row, name in zip(rows, titles):
        assert f"(notebooks/{name})" in row and " min |" in row, row


def test_a_notebook_missing_from_the_tables_is_named(tmp_path):
    for name in ("README.md", "INSTRUCTORS.md"):
        shutil.copy(REPO / name, tmp_path / name)
    with pytest.raises(ValueError, match="notebook 99_new.ipynb has no row"):
        course_map(tmp_path, "# bsr\n", {"99_new.ipynb": "99 · New"})


def test_launch_buttons_come_from_the_repository_address():
    repository = repository_url(REPO)
    settings = config(repository, jupyterhub="https://hub.example.org")
    assert settings["repository"] == {"url": repository, "path_to_book": "", "branch": "main"}
    assert settings["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert settings["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert settings["launch_buttons"]["jupyterhub_url"] == "https://hub.example.org"
    assert settings["execute"]["execute_notebooks"] == "off"  # never runs the course itself
    chapters = toc([p.name for p in PATHS], ["index.md", "course.md", "data.md"])["parts"]
    assert [c["file"] for c in chapters[1]["chapters"]] == [f"notebooks/{p.stem}" for p in PATHS]


def test_the_pages_workflow_builds_with_make_book_and_publishes_its_output():
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert any(step.get("run", "").startswith("make book") for step in steps)
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload["with"]["path"] == "build/book/_build/html"  # where python -m book writes
    assert workflow["permissions"]["pages"] == "write"


def test_staging_names_missing_executed_notebooks(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no executed 00_welcome_and_data.ipynb"):
        stage(REPO, tmp_path, tmp_path / "src")


# --- the whole site, from the notebooks the test run executes ----------------------------


@pytest.fixture(scope="session")
def site(executed, tmp_path_factory):
    """``(html folder, seconds to stage and build)``: the site, built once a session."""
    folder = tmp_path_factory.mktemp("book")
    (folder / "executed").mkdir()
    for path in PATHS:
        nbformat.write(executed(path)[0], folder / "executed" / path.name)
    started = time.perf_counter()
    stage(REPO, folder / "executed", folder / "src")
    html = build(folder / "src", folder, REPO)
    return html, time.perf_counter() - started


class _Refs(HTMLParser):
    """The ids, links, images and error outputs of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.images, self.errors = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "img" and key == "src"):
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs)
            self.links.append(attrs.get("src", ""))
        classes = (attrs.get("class") or "").split()
        if tag == "div" and ("output" in classes and "traceback" in classes or "stderr" in classes):
            self.errors.append(attrs.get("class"))


def _parse(path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(path.read_text(errors="replace"))
    return refs


@pytest.mark.notebooks
def test_the_site_builds_without_warnings_and_fits(site, capsys):
    html, seconds = site
    log = (html.parents[1] / "build.log").read_text()
    assert not warnings(log), "\n".join(warnings(log))
    mb = size_mb(html)
    with capsys.disabled():
        print(f"\nbook: staged and built in {seconds:.0f} s, {mb:.1f} MB")
    assert mb <= MAX_SITE_MB
    for path in PATHS:
        assert (html / "notebooks" / f"{path.stem}.html").exists()
        download = html / "_sources" / "notebooks" / path.name
        assert download.read_bytes() == path.read_bytes()  # the course's notebook, no outputs


@pytest.mark.notebooks
def test_no_internal_link_is_broken(site):
    html, _ = site
    # (_static/ holds the theme's template fragments, not pages.)
    pages = {path: _parse(path) for path in html.rglob("*.html") if "_static" not in path.parts}
    broken = []
    for page, refs in pages.items():
        for link in refs.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "data:", "mailto:")) or not link:
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(html)}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if parts.fragment not in ids:
                    broken.append(f"{page.relative_to(html)}: {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:30])


@pytest.mark.notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_figure_says_what_it_shows_and_no_output_is_an_error(site, path):
    html, _ = site
    refs = _parse(html / "notebooks" / f"{path.stem}.html")
    figures = [image for image in refs.images if "_images/" in image.get("src", "")]
    lacking = [image["src"] for image in figures if len(image.get("alt", "")) < 20
               or image.get("alt") == image["src"]]  # fmt: skip
    assert not lacking, f"{path.name}: figures without alt text (cell metadata mystnb.image.alt)"
    assert not refs.errors, f"{path.name} shows an error or stderr output: {refs.errors}"


# --- the site in a real browser -----------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would bury the test's own output
        pass


@pytest.fixture
def served(site):
    """The site on a loopback HTTP server: its base URL."""
    html, _ = site
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


PAGE_FACTS = """() => ({
  images: [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth,
                                          alt: i.alt})),
  audio: [...document.querySelectorAll('audio')].map(a => ({
    type: (a.querySelector('source') || a).type, ready: a.readyState, duration: a.duration,
    playable: a.canPlayType((a.querySelector('source') || a).type)})),
  launch: [...document.querySelectorAll('a')].map(a => a.href)
          .filter(h => /colab|mybinder/.test(h)),
  text: document.querySelector('main, article, body').innerText,
})"""


@pytest.mark.notebooks
def test_the_start_page_three_notebooks_and_search_in_chromium(served, capsys):
    from playwright.sync_api import sync_playwright

    chromium = chromium_path()
    repository = repository_url(REPO)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", lambda r: r.status >= 400 and not r.url.endswith("favicon.ico")
                and failed.append(f"{r.status} {r.url}"))  # fmt: skip
        try:
            for name in OPENED:
                page.goto(served + name, wait_until="networkidle")
                page.wait_for_function(
                    "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"
                )
                facts = page.evaluate(PAGE_FACTS)
                shot = SHOTS / (Path(name).stem + ".png")
                page.screenshot(path=shot, full_page=True)
                with capsys.disabled():
                    print(f"\nscreenshot: {shot}")
                _check_page(name, facts, repository)
            page.goto(served + "search.html?q=overlap-add", wait_until="networkidle")
            found = page.locator("#search-results li")
            found.first.wait_for()  # the search index is in the site: it works offline
            titles = " | ".join(found.all_inner_texts())
            assert "Separation and evaluation" in titles, titles
        finally:
            browser.close()
    assert not failed, f"requests that failed: {failed[:10]}"


def _check_page(name: str, facts: dict, repository: str) -> None:
    unloaded = [image["src"] for image in facts["images"] if image["width"] == 0]
    assert not unloaded, f"{name}: images that did not load: {unloaded}"
    for text in ("Traceback (most recent call last)", "Error displaying widget"):
        assert text not in facts["text"], f"{name} shows {text!r}"
    if name == "index.html":
        assert facts["audio"] == [] and "The course map" in facts["text"]
        return
    notebook = Path(name).stem + ".ipynb"
    assert facts["audio"], f"{name}: no audio players"
    for player in facts["audio"]:
        assert player["type"] == "audio/mpeg" and player["playable"], player
        assert player["duration"] > 0.5, f"{name}: a player holds no sound ({player})"
    owner_repo = repository.removeprefix("https://github.com/")
    assert set(facts["launch"]) == {
        colab_url(repository, notebook),
        f"https://mybinder.org/v2/gh/{owner_repo}/main?urlpath=lab/tree/notebooks/{notebook}",
    }, facts["launch"]


def test_make_book_without_executed_notebooks_says_so_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "book", "--executed", str(tmp_path), "--out", str(tmp_path / "o")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "has no executed 00_" in done.stderr, done.stderr
