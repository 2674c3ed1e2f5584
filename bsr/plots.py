"""Static figures for runs and reports (matplotlib, no display needed).

* :func:`plot_run`: training loss and validation uSDR against steps, from a run's
  ``metrics.jsonl`` (``bsr plot RUN_DIR``).
* :func:`plot_spectrograms`: mixture, estimate and reference of one stem, side by side.
* :func:`error_spectrograms`: reference, estimate and error of every stem, one dB scale;
  :func:`stem_spectrograms`: a mixture and its stems, one dB scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bsr.errors import BsrError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``RUN_DIR/metrics.jsonl`` (a line cut off by a kill is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise BsrError(f"{path} not found: give a run folder written by `bsr train`")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Loss and validation-uSDR curves of a run; writes and returns ``RUN_DIR/curves.png``."""
    records = read_metrics(run_dir)
    steps = [r for r in records if r.get("event") == "step"]
    valid = [r for r in records if r.get("event") == "valid"]
    if not steps:
        raise BsrError(f"{run_dir} has no training steps logged yet: train first")
    plt = _pyplot()
    fig, (ax_loss, ax_sdr) = plt.subplots(1, 2, figsize=(11, 4))
    x = [r["step"] for r in steps]
    for key, label in (("loss", "total"), ("waveform_l1", "waveform L1"), ("stft_l1", "STFT L1")):
        values = [r[key] for r in steps]
        if any(values):  # a term switched off (e.g. no STFT windows) has nothing to draw
            ax_loss.plot(x, values, label=label, linewidth=1)
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax_loss.legend()
    if valid:
        vx = [r["step"] for r in valid]
        for stem in valid[0]["usdr"]:
            ax_sdr.plot(vx, [r["usdr"][stem] for r in valid], marker="o", label=stem)
        ax_sdr.plot(vx, [r["usdr_mean"] for r in valid], "k--", label="mean")
        ax_sdr.legend()
    ax_sdr.set(xlabel="step", ylabel="uSDR (dB)", title="validation uSDR (EMA weights)")
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_spectrograms(
    signals: dict[str, np.ndarray], sample_rate: int, out: str | Path, title: str = ""
) -> Path:
    """Log-magnitude spectrograms of named ``(channels, samples)`` signals in one row."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(signals), figsize=(4 * len(signals), 3.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (name, audio) in zip(axes, signals.items()):
        mono = np.asarray(audio, dtype=np.float32).reshape(-1, np.shape(audio)[-1]).mean(0)
        with np.errstate(divide="ignore"):  # digital silence is -inf dB: drawn as the floor
            ax.specgram(mono, NFFT=2048, Fs=sample_rate, noverlap=1536, cmap="magma", vmin=-120)
        ax.set(title=name, xlabel="time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def _db(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(channels, samples)`` -> ``(freqs, frames)`` magnitude in dB, channels averaged."""
    import torch

    mono = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    mono = mono.reshape(-1, np.shape(audio)[-1]).mean(0)
    spec = torch.stft(mono, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    return 20 * np.log10(spec.abs().numpy() + 1e-10)  # silence: -200 dB, below any scale


def _spectrogram_grid(
    rows: list[list[tuple[str, np.ndarray]]],
    sample_rate: int,
    n_fft: int,
    hop: int,
    range_db: float,
    size: tuple[float, float],
):
    """Draw ``rows`` of ``(title, dB image)`` panels on one colour scale, log frequency.

    The scale runs from the loudest bin of any panel down ``range_db``; quieter bins,
    digital silence included, sit at its floor (drawn, not blank). One colour bar for all.
    """
    from bsr.viz.static import ShownFigure  # a Figure that shows itself in Jupyter

    top = max(image.max() for row in rows for _, image in row)
    columns = max(len(row) for row in rows)
    fig = ShownFigure(figsize=(size[0] * columns, size[1] * len(rows)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), columns, sharex=True, sharey=True))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    keep = freqs >= 30.0  # a log axis: music lives in the low octaves, which linear hides
    for row_axes, row in zip(axes, rows):
        for ax, (title, image) in zip(row_axes, row):
            times = np.arange(image.shape[1]) * hop / sample_rate
            shown = ax.pcolormesh(times, freqs[keep], image[keep], shading="auto",
                                  cmap="magma", vmin=top - range_db, vmax=top)  # fmt: skip
            ax.set_yscale("log")
            ax.set_title(title)
        for ax in row_axes[len(row) :]:
            ax.set_visible(False)
        row_axes[0].set_ylabel("frequency (Hz)")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.colorbar(shown, ax=axes, label="dB (one scale for every panel)", shrink=0.8)
    return fig


def error_spectrograms(
    references: dict[str, np.ndarray],
    estimates: dict[str, np.ndarray],
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop: int = 512,
    range_db: float = 80.0,
):
    """Reference, estimate and error (estimate - reference) of each stem, one dB scale.

    ``references`` and ``estimates`` map a stem to ``(channels, samples)``. Every panel
    shares one colour scale, from the loudest bin of any panel down ``range_db``, with a
    colour bar; silence sits at the bottom of the scale (drawn, not left blank as -inf).
    Returns a matplotlib Figure (no pyplot, so it neither needs nor changes a backend).
    """
    rows = []
    for stem in (s for s in references if s in estimates):
        reference, estimate = np.asarray(references[stem]), np.asarray(estimates[stem])
        rows.append([
            (f"{stem}: reference", _db(reference, n_fft, hop)),
            (f"{stem}: estimate", _db(estimate, n_fft, hop)),
            (f"{stem}: error", _db(estimate - reference, n_fft, hop)),
        ])  # fmt: skip
    return _spectrogram_grid(rows, sample_rate, n_fft, hop, range_db, size=(4.0, 2.6))


def stem_spectrograms(
    signals: dict[str, np.ndarray],
    sample_rate: int,
    *,
    columns: int = 3,
    n_fft: int = 2048,
    hop: int = 512,
    range_db: float = 80.0,
):
    """Named ``(channels, samples)`` signals (a mixture and its stems) on one dB scale.

    ``columns`` panels a row, log frequency, one colour scale and colour bar as in
    :func:`error_spectrograms`, so a darker panel really is quieter. Returns a Figure.
    """
    panels = [(name, _db(audio, n_fft, hop)) for name, audio in signals.items()]
    rows = [panels[i : i + columns] for i in range(0, len(panels), columns)]
    return _spectrogram_grid(rows, sample_rate, n_fft, hop, range_db, size=(4.2, 2.6))
