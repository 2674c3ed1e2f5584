"""Bring your own song: an upload button that keeps the file in the course folder.

In JupyterLab, Jupyter Notebook 7 or Colab, :func:`song_upload` shows a file picker
(ipywidgets' ``FileUpload``). The chosen file is saved in ``folder`` under its own name, but
never over a file that is there already ("song.mp3" twice gives "song (2).mp3"), and the
picker's ``path`` then names it; run the cells below again to separate it.

Without a widget front end (a headless run, GitHub, a book) a file picker cannot work, so
its text form says what to do instead: set ``SONG`` in the parameter cell.
"""

from __future__ import annotations

from pathlib import Path

NO_FRONT_END = (
    "Upload a song: this button needs a live Jupyter front end (JupyterLab, Notebook 7, Colab). "
    "Here, set SONG in the parameter cell to the path of your file instead."
)
ACCEPT = ".mp3,.m4a,.aac,.mp4,.ogg,.opus,.flac,.wav,.aif,.aiff,audio/*"


def save_upload(folder: str | Path, name: str, content: bytes) -> Path:
    """Write an uploaded file into ``folder`` without replacing any file there; its path.

    Only the file's own name is kept (a browser may send a path); a name that is taken
    gets " (2)", " (3)", ... before its extension.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(str(name).replace("\\", "/")).name or "upload"
    stem, suffix = Path(base).stem, Path(base).suffix
    target, copy = folder / base, 1
    while target.exists():
        copy += 1
        target = folder / f"{stem} ({copy}){suffix}"
    with open(target, "xb") as file:  # "x": fail rather than overwrite, even in a race
        file.write(bytes(content))
    return target


def song_upload(folder: str | Path, interactive: bool = True):
    """A file picker that saves the chosen song into ``folder``; ``.path`` is None until then.

    Returns an ipywidgets box (with ``interactive`` and ipywidgets present), else a plain
    object whose display is the instruction in :data:`NO_FRONT_END`.
    """
    try:
        import ipywidgets as widgets
    except ImportError:
        interactive = False
    if not interactive:
        return Instructions()

    class SongPicker(widgets.VBox):
        path: Path | None = None

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/plain"] = NO_FRONT_END
            return bundle

    button = widgets.FileUpload(accept=ACCEPT, multiple=False, description="Upload a song")
    status = widgets.Label("No file chosen: the notebook uses SONG from the parameter cell.")
    picker = SongPicker([button, status])

    def saved(change) -> None:
        for item in change["new"] or ():
            picker.path = save_upload(folder, item["name"], item["content"])
            status.value = f"Saved {picker.path}: run the cells below again to separate it."

    button.observe(saved, names="value")
    return picker


class Instructions:
    """What :func:`song_upload` shows where no widget can run."""

    path = None

    def _repr_mimebundle_(self, **kwargs):
        return {"text/plain": NO_FRONT_END}
