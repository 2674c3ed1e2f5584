"""One executed notebook, made ready for the web.

An executed course notebook is written for a live Jupyter front end: its widgets need a
kernel, its audio players hold uncompressed WAV, a test run adds a cell of injected
parameters, and its Colab badge duplicates the site's own launch buttons. ``for_the_web``
returns a copy that reads well as a static page:

* cells tagged ``injected-parameters`` (added by the tests) are removed;
* the Colab badge under the title is removed (every page has launch buttons);
* a widget output keeps its static image (``bsr.viz.static.with_static_png`` puts one beside
  every figure widget) with a note that the widget is live in Jupyter; a widget with no image
  keeps its text when that text is a sentence written for readers, and a progress bar is
  dropped; the saved widget state goes, since nothing on the page can use it;
* every embedded WAV player becomes an embedded MP3 player (about a tenth of the size; the
  page stays self-contained, as IPython's ``Audio(data=..., rate=...)`` made it).

Nothing is executed here, and the notebook given is not changed.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess

import nbformat

from bsr.launch import BADGE

WIDGET = "application/vnd.jupyter.widget-view+json"
INJECTED_TAG = "injected-parameters"
# A widget's own repr ("VBox(children=(...") or a tqdm bar ("  0%|     | 0/6.1 [...]").
WIDGET_REPR = re.compile(r"^\s*[A-Z]\w*\(")
PROGRESS_BAR = re.compile(r"^\s*\d+%\|")
WAV_SOURCE = re.compile(r'src="data:audio/(?:x-)?wav;base64,([A-Za-z0-9+/=\s]+)"')
WAV_TYPE = re.compile(r'type="audio/(?:x-)?wav"')
MP3_BITRATE = "128k"
LIVE_NOTE = (
    "*On this page the widget above is a still image: open the notebook with the launch "
    "button at the top (Colab or Binder) to use it.*"
)


def for_the_web(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the executed notebook ``nb`` for a static page (see the module docstring)."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    cells = []
    for cell in nb.cells:
        if INJECTED_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "markdown":
            cell.source = BADGE.sub("", cell.source)
        cells.append(cell)
        if cell.cell_type == "code" and _static_widgets(cell):
            cells.append(nbformat.v4.new_markdown_cell(LIVE_NOTE))
    nb.cells = cells
    return nb


def _static_widgets(cell) -> bool:
    """Replace the widget outputs of a code cell in place; True if one became a still image."""
    kept, still = [], False
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if WIDGET in data:
            data.pop(WIDGET)
            text = data.get("text/plain", "")
            if "image/png" in data:
                still = True
                data.pop("text/plain", None)
            elif PROGRESS_BAR.match(text):
                continue
            elif WIDGET_REPR.match(text):
                data.pop("text/plain", None)
                data["text/markdown"] = LIVE_NOTE.replace("above is a still image", "here is live")
        _compress_audio(data)
        kept.append(output)
    cell.outputs = kept
    return still


def _compress_audio(data: dict) -> None:
    """Turn every embedded WAV in an HTML output into an embedded MP3, in place."""
    html = data.get("text/html")
    if not html or "data:audio" not in html:
        return
    if isinstance(html, list):
        html = "".join(html)

    def to_mp3(match: re.Match) -> str:
        wav = base64.b64decode("".join(match.group(1).split()))
        return f'src="data:audio/mpeg;base64,{base64.b64encode(wav_to_mp3(wav)).decode()}"'

    html = WAV_SOURCE.sub(to_mp3, html)
    data["text/html"] = WAV_TYPE.sub('type="audio/mpeg"', html)


def wav_to_mp3(wav: bytes) -> bytes:
    """The bytes of a WAV file, encoded as MP3 by ffmpeg (libmp3lame)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(
            "the site's audio players need ffmpeg on PATH: run `make book` (it puts the "
            "environment's bin folder first) or install ffmpeg"
        )
    command = [ffmpeg, "-v", "error", "-f", "wav", "-i", "pipe:0", "-c:a", "libmp3lame",
               "-b:a", MP3_BITRATE, "-f", "mp3", "pipe:1"]  # fmt: skip
    done = subprocess.run(command, input=wav, capture_output=True)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"ffmpeg could not encode a player's audio as MP3: {done.stderr[-300:]}")
    return done.stdout
