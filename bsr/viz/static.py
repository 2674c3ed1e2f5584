"""Widgets that keep a picture: what a notebook shows without a widget front end.

An ipywidgets box shows nothing in nbconvert, on GitHub or in a book, where no widget
manager runs. The boxes here also carry a PNG of their figure, so every front end shows
something: the live widgets where they can run, else the figure as it was displayed.
"""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """PNG bytes of a figure (what an ipywidgets Image shows)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def with_static_png(box_class):
    """A subclass of an ipywidgets box whose display also carries a PNG of its figure.

    Jupyter front ends that render widgets show the widgets; anything else (nbviewer, a
    notebook executed headless and converted, a front end without the widget manager)
    falls back to the ``image/png`` of the figure the box showed when it was displayed.
    """

    class StaticPngBox(box_class):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            png = getattr(self, "png", b"")
            if png and isinstance(bundle, dict):
                bundle["image/png"] = base64.b64encode(png).decode("ascii")
            return bundle

    return StaticPngBox


class ShownFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in Jupyter, with or without pyplot.

    Figures made without pyplot are only drawn by IPython once the inline backend has
    registered itself (after the first pyplot call); this one draws itself regardless.
    """

    def _repr_png_(self) -> bytes:
        return figure_png(self, dpi=100)
