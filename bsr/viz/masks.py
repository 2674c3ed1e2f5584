"""Seeing the complex masks a model predicts: magnitude and phase over frequency and time.

A BS-RoFormer does not output audio; it outputs one complex mask per stem, channel,
frequency bin and frame, and the stem's spectrogram is that mask times the mixture's.
The magnitude ``|M|`` says how much of a bin to keep (it may exceed one); the phase
``angle(M)`` says how far to turn it.

* :func:`model_masks` runs a model on one piece of audio: ``(stems, C, F, T)`` complex;
* :func:`mask_figure` draws one stem's mask: ``|M|`` and ``angle(M)`` as images over time
  and frequency, and both against frequency at one frame;
* :func:`mask_explorer` wraps it in ipywidgets (stem dropdown, frame slider, channel); like
  the other explorers it returns the static figure when ``interactive=False`` or
  ipywidgets cannot be imported, and its display carries a PNG of the figure for front
  ends without widgets.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

MAGNITUDE_GID, PHASE_GID = "mask-magnitude", "mask-phase"
"""``gid`` of the lines that show the current frame's ``|M|`` and ``angle(M)``."""


def as_model_input(model, audio) -> torch.Tensor:
    """``(1, C, samples)`` float32 from ``(C, samples)``, ``(1, C, samples)`` or numpy
    ``(samples, C)`` (the musdb / soundfile layout)."""
    x = torch.as_tensor(np.asarray(audio) if not torch.is_tensor(audio) else audio).float()
    channels = model.channels
    if x.dim() == 1:
        x = x.unsqueeze(0).expand(channels, -1)
    if x.dim() == 2 and x.shape[0] != channels and x.shape[1] == channels:
        x = x.T  # (samples, C) -> (C, samples)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[:2] != (1, channels):
        raise ValueError(
            f"expected audio of shape ({channels}, samples) for one example, got {tuple(x.shape)}"
        )
    return x.contiguous()


@torch.no_grad()
def model_masks(model, audio) -> torch.Tensor:
    """The model's complex masks for ``audio``: ``(stems, C, F, T)``, on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        spec = model.stft(as_model_input(model, audio).to(device))
        masks = model.estimate_masks(spec)[0]
    finally:
        model.train(was_training)
    return masks.cpu()


def _stem_index(model, stem: str | int) -> int:
    if isinstance(stem, str):
        if stem not in model.stems:
            raise ValueError(f"unknown stem {stem!r}: this model has {model.stems}")
        return model.stems.index(stem)
    return int(stem)


def mask_figure(
    model,
    audio,
    stem: str | int = 0,
    frame: int = 0,
    channel: int = 0,
    masks: torch.Tensor | None = None,
) -> Figure:
    """One stem's complex mask: ``|M|`` and ``angle(M)`` over time and frequency, and
    both against frequency at ``frame`` (lines with gids :data:`MAGNITUDE_GID` and
    :data:`PHASE_GID`, x in Hz). ``masks`` (from :func:`model_masks`) skips the model run.
    """
    if masks is None:
        masks = model_masks(model, audio)
    s = _stem_index(model, stem)
    mask = masks[s, channel].numpy()  # (F, T) complex
    bins, frames = mask.shape
    if not 0 <= frame < frames:
        raise ValueError(f"frame must be in 0..{frames - 1}, got {frame}")
    cfg = model.config
    hz = np.arange(bins) * cfg.sample_rate / cfg.n_fft
    seconds = frames * cfg.hop_length / cfg.sample_rate
    t_frame = frame * cfg.hop_length / cfg.sample_rate
    magnitude, phase = np.abs(mask), np.angle(mask)
    extent = (0, seconds, 0, hz[-1])

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    ax_mag, ax_phase, ax_frame = fig.subplots(1, 3)
    image = ax_mag.imshow(
        magnitude,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap="viridis",
        vmin=0,
        vmax=float(np.quantile(magnitude, 0.99)) or 1.0,
    )
    fig.colorbar(image, ax=ax_mag, label="|M|")
    image = ax_phase.imshow(
        phase,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap="twilight",
        vmin=-np.pi,
        vmax=np.pi,
    )
    fig.colorbar(image, ax=ax_phase, label="angle(M), radians")
    for ax, title in ((ax_mag, "magnitude |M|"), (ax_phase, "phase angle(M)")):
        ax.axvline(t_frame, color="red", linewidth=1)
        ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title)

    name = model.stems[s]
    ax_frame.plot(hz, magnitude[:, frame], color="tab:green", gid=MAGNITUDE_GID, label="|M|")
    ax_frame.axhline(1.0, color="0.6", linestyle=":", linewidth=1)
    ax_frame.set(
        xlabel="frequency (Hz)",
        ylabel="|M|",
        title=f"{name}, channel {channel}, frame {frame} ({t_frame:.2f} s)",
    )
    twin = ax_frame.twinx()
    twin.plot(hz, phase[:, frame], color="tab:purple", linewidth=0.8, alpha=0.7, gid=PHASE_GID)
    twin.set(ylabel="angle(M), radians", ylim=(-np.pi, np.pi))
    fig.suptitle(f"the {name} mask of a {cfg.depth}-block BS-RoFormer")
    return fig


def frame_lines(fig: Figure) -> tuple[np.ndarray, np.ndarray]:
    """The ``(|M|, angle(M))`` arrays drawn for the current frame of a :func:`mask_figure`."""
    lines = [ln for ax in fig.axes for ln in ax.lines]
    (magnitude,) = [ln for ln in lines if ln.get_gid() == MAGNITUDE_GID]
    (phase,) = [ln for ln in lines if ln.get_gid() == PHASE_GID]
    return np.asarray(magnitude.get_ydata()), np.asarray(phase.get_ydata())


def mask_explorer(model, audio, interactive: bool = True):
    """A stem dropdown, a frame slider and a channel choice over :func:`mask_figure`.

    The model runs once; moving the controls only redraws. Returns an ``ipywidgets.VBox``
    (or, without widgets, the static figure of the first stem at the middle frame)
    carrying ``.controls`` (``stem``, ``frame``, ``channel``), ``.masks`` (``(stems, C, F,
    T)`` complex), ``.figure``, ``.png`` and ``.image`` (the figure as PNG bytes and the
    image widget showing them).

    The box's display carries, besides the widgets, a PNG of the figure it shows at that
    moment: without a widget front end that static figure is what one sees.
    """
    masks = model_masks(model, audio)
    frames = masks.shape[-1]
    if not interactive:
        return mask_figure(model, audio, 0, frames // 2, masks=masks)
    try:
        import ipywidgets as widgets
    except ImportError:
        return mask_figure(model, audio, 0, frames // 2, masks=masks)

    from bsr.viz.static import figure_png, with_static_png

    controls = {
        "stem": widgets.Dropdown(options=list(model.stems), description="stem"),
        "frame": widgets.IntSlider(value=frames // 2, min=0, max=frames - 1, description="frame"),
        "channel": widgets.Dropdown(
            options=[(f"channel {c}", c) for c in range(masks.shape[1])], description="channel"
        ),
    }
    image = widgets.Image(value=b"", format="png")
    box = with_static_png(widgets.VBox)([widgets.HBox(list(controls.values())), image])
    box.controls, box.image, box.masks = controls, image, masks

    def update(_change=None):
        values = {name: c.value for name, c in controls.items()}
        box.figure = mask_figure(model, audio, masks=masks, **values)
        box.png = figure_png(box.figure)
        image.value = box.png

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box
