"""A stem mixer: turn the stems of a song up and down, mute them, solo them, and listen.

A song in MUSDB18 is the sum of four stems. Playing with that sum is the quickest way to
hear what a separator has to undo:

* :func:`mix` is the whole idea in a few lines: ``sum_s g_s * stem_s`` over the stems that
  are not muted (and, when any stem is soloed, only over the soloed ones);
* :func:`mixer_figure` draws every stem's waveform and the resulting mix;
* :func:`stem_mixer` wraps both in ipywidgets: per stem a gain slider (dB), a mute box and
  a solo button, an audio player and the figure, all updated on every change. Like the
  attention explorer's, its display also carries a PNG of the figure, which is what is left
  where widgets are not drawn (nbconvert, GitHub, a book, a headless run).

Arrays are ``(samples, channels)`` (or ``(samples,)``), as musdb and soundfile give them.

When is it interactive? :func:`stem_mixer` builds widgets when ``interactive=True`` and
``ipywidgets`` can be imported; otherwise it returns the static :func:`mixer_figure` of the
unchanged mix. Widgets are plain Python objects, so they are also built under a headless
runner such as nbclient (there they show their text form and the PNG of the figure); that
is intended, and it lets tests drive the controls by setting ``.value``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

import numpy as np
from matplotlib.figure import Figure

from bsr.viz.static import ShownFigure, figure_png

STEM_COLOURS = {
    "vocals": "tab:red",
    "drums": "tab:blue",
    "bass": "tab:green",
    "other": "tab:orange",
    "accompaniment": "tab:purple",
}


def db_to_gain(db: float) -> float:
    """Amplitude factor of a gain in dB: ``10 ** (db / 20)`` (0 dB -> exactly 1.0)."""
    return 1.0 if db == 0 else float(10.0 ** (db / 20.0))


def audible(names: Iterable[str], mute: Iterable[str] = (), solo: Iterable[str] = ()) -> list[str]:
    """The stems that sound: not muted, and soloed whenever any stem is soloed."""
    mute, solo = set(mute), set(solo)
    return [n for n in names if n not in mute and (not solo or n in solo)]


def mix(
    stems: Mapping[str, np.ndarray],
    gains: Mapping[str, float] | None = None,
    mute: Iterable[str] = (),
    solo: Iterable[str] = (),
) -> np.ndarray:
    """The mix of ``stems`` with per-stem ``gains`` in dB (missing: 0 dB), float32.

    A muted stem is left out. If ``solo`` is not empty only soloed stems sound (a stem
    that is both soloed and muted stays silent). With no gains, mutes or solos this is the
    plain sum of the stems, i.e. the mixture. Output shape: the stems' shape.
    """
    gains = gains or {}
    unknown = (set(gains) | set(mute) | set(solo)) - set(stems)
    if unknown:
        raise KeyError(f"unknown stems {sorted(unknown)}: the stems are {list(stems)}")
    first = next(iter(stems.values()))
    out = np.zeros(np.shape(first), dtype=np.float32)
    for name in audible(stems, mute, solo):
        out += np.float32(db_to_gain(gains.get(name, 0.0))) * np.asarray(stems[name], np.float32)
    return out


def _envelope(x: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of a mono signal over ``points`` equal chunks: a cheap waveform outline."""
    n = len(x) // points * points
    if n == 0:
        return x, x
    chunks = x[:n].reshape(points, -1)
    return chunks.min(axis=1), chunks.max(axis=1)


def mixer_figure(
    stems: Mapping[str, np.ndarray],
    rate: int,
    gains: Mapping[str, float] | None = None,
    mute: Iterable[str] = (),
    solo: Iterable[str] = (),
) -> Figure:
    """Waveforms of every stem (after its gain; grey when silent) above the resulting mix.

    Returns a matplotlib Figure (not attached to pyplot, so it never shows up twice).
    """
    gains = gains or {}
    names = list(stems)
    sounding = set(audible(names, mute, solo))
    mixed = mix(stems, gains, mute, solo)
    fig = ShownFigure(figsize=(10, 1.3 * (len(names) + 1) + 0.4), layout="constrained")
    axes = fig.subplots(len(names) + 1, 1, sharex=True, sharey=True)
    peak = max(float(np.max(np.abs(mixed))), 1e-3)
    for ax, name in zip(axes, names):
        audio = np.asarray(stems[name], np.float32) * np.float32(db_to_gain(gains.get(name, 0.0)))
        mono = audio.mean(axis=1) if audio.ndim == 2 else audio
        low, high = _envelope(mono)
        t = np.linspace(0, len(mono) / rate, len(low))
        on = name in sounding
        colour = STEM_COLOURS.get(name, "tab:gray") if on else "lightgray"
        ax.fill_between(t, low, high, color=colour, linewidth=0)
        state = f"{gains.get(name, 0.0):+.0f} dB" if on else "silent"
        ax.set_ylabel(f"{name}\n{state}", rotation=0, ha="right", va="center")
        peak = max(peak, float(np.max(np.abs(mono))) if on else 0.0)
    mono = mixed.mean(axis=1) if mixed.ndim == 2 else mixed
    low, high = _envelope(mono)
    axes[-1].fill_between(np.linspace(0, len(mono) / rate, len(low)), low, high, color="black")
    axes[-1].set_ylabel("mix", rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_ylim(-1.05 * peak, 1.05 * peak)
    for ax in axes:
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    return fig


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """16-bit wav file contents of ``(samples, channels)`` audio, clipped to [-1, 1]."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def stem_mixer(stems: Mapping[str, np.ndarray], rate: int, interactive: bool = True):
    """A mixing desk for ``stems`` (name -> ``(samples, channels)``) at sample rate ``rate``.

    Returns an ``ipywidgets.VBox`` when ``interactive`` and ipywidgets is importable, else
    the static :func:`mixer_figure` of the plain sum. The VBox carries, for code and tests:

    * ``.controls[name]``: ``{"gain": FloatSlider (dB), "mute": Checkbox, "solo": ToggleButton}``;
    * ``.settings()``: the current ``(gains, mute, solo)``;
    * ``.mixed``: the current mix, float32, the stems' shape;
    * ``.figure``: the current :func:`mixer_figure`; ``.audio``: the audio player widget;
    * ``.png`` and ``.image``: the figure as PNG bytes and the image widget showing them.

    The box's display carries, besides the widgets, a PNG of the figure it shows at that
    moment: without a widget front end that static figure is what one sees.
    """
    stems = {name: np.asarray(audio, np.float32) for name, audio in stems.items()}
    if not interactive:
        return mixer_figure(stems, rate)
    try:
        import ipywidgets as widgets
    except ImportError:
        return mixer_figure(stems, rate)

    controls, rows = {}, []
    for name in stems:
        gain = widgets.FloatSlider(
            value=0.0, min=-24.0, max=12.0, step=1.0, description=name, readout_format="+.0f"
        )
        mute = widgets.Checkbox(value=False, description="mute", indent=False)
        solo = widgets.ToggleButton(value=False, description="solo")
        controls[name] = {"gain": gain, "mute": mute, "solo": solo}
        rows.append(widgets.HBox([gain, mute, solo]))
    from bsr.viz.static import with_static_png

    audio = widgets.Audio(value=b"", format="wav", autoplay=False, loop=False)
    image = widgets.Image(value=b"", format="png")
    box = with_static_png(widgets.VBox)([*rows, audio, image])
    box.controls, box.audio, box.image = controls, audio, image

    def settings():
        gains = {n: float(c["gain"].value) for n, c in controls.items()}
        mute = {n for n, c in controls.items() if c["mute"].value}
        solo = {n for n, c in controls.items() if c["solo"].value}
        return gains, mute, solo

    def update(_change=None):
        gains, mute, solo = settings()
        box.mixed = mix(stems, gains, mute, solo)
        box.figure = mixer_figure(stems, rate, gains, mute, solo)
        audio.value = wav_bytes(box.mixed, rate)
        box.png = figure_png(box.figure)
        image.value = box.png

    box.settings = settings
    for control in controls.values():
        for widget in control.values():
            widget.observe(update, names="value")
    update()
    return box
