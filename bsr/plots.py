"""Static figures for runs and reports (matplotlib, no display needed).

* :func:`plot_run`: training loss (every term the preset uses, smoothed) and validation
  uSDR against steps, from a run's ``metrics.jsonl`` (``bsr plot RUN_DIR``).
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


def loss_terms(records: list[dict]) -> tuple[list[tuple[str, str]], str]:
    """The loss terms a run logged, ``[(metrics key, label), ...]``, and a caption naming them.

    Read from the run's start record (its ``train.stft_loss_windows``), else from the logged
    values: a preset without STFT windows logs ``stft_l1 = 0`` and a total equal to the
    waveform L1, so one line is drawn for the two, and the caption says why.
    """
    start = next((r for r in records if r.get("event") == "start"), {})
    config = start.get("config", {})
    windows = config.get("train", {}).get("stft_loss_windows")
    if windows is None:  # an older log without a start record: ask the values
        windows = [None] if any(r.get("stft_l1") for r in records) else []
    preset = f"preset `{config['name']}`" if "name" in config else "this run"
    if not windows:
        caption = (f"{preset}: the loss is the waveform L1 alone (train.stft_loss_windows is "
                   "empty), so the total and the waveform L1 are one line")  # fmt: skip
        return [("loss", "total = waveform L1")], caption
    sizes = ", ".join(str(w) for w in windows if w is not None)
    resolutions = f"{len(windows)} resolutions ({sizes})" if sizes else "several resolutions"
    caption = f"{preset}: total = waveform L1 + STFT L1 at {resolutions}"
    terms = [("loss", "total"), ("waveform_l1", "waveform L1"), ("stft_l1", "STFT L1")]
    return terms, caption


def smooth(values: list[float], span: int) -> np.ndarray:
    """Mean of each value and the ``span - 1`` before it (fewer at the start): the trend
    under the step-to-step noise of random-mix batches, without shifting its start."""
    x = np.asarray(values, dtype=float)
    sums = np.cumsum(np.concatenate([[0.0], x]))
    first = np.maximum(np.arange(len(x)) + 1 - span, 0)
    return (sums[1:] - sums[first]) / (np.arange(len(x)) + 1 - first)


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Loss and validation-uSDR curves of a run; writes and returns ``RUN_DIR/curves.png``.

    Every loss term the run has is one line: each step faint, its running mean bold; the
    caption under the figure says which terms the preset's loss uses.
    """
    records = read_metrics(run_dir)
    steps = [r for r in records if r.get("event") == "step"]
    valid = [r for r in records if r.get("event") == "valid"]
    if not steps:
        raise BsrError(f"{run_dir} has no training steps logged yet: train first")
    plt = _pyplot()
    fig, (ax_loss, ax_sdr) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    x = [r["step"] for r in steps]
    span = max(1, len(steps) // 20)
    terms, caption = loss_terms(records)
    for key, label in terms:
        values = [r[key] for r in steps]
        (line,) = ax_loss.plot(x, values, linewidth=0.6, alpha=0.3)
        ax_loss.plot(x, smooth(values, span), color=line.get_color(), linewidth=1.8, label=label)
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax_loss.legend(title=f"bold: mean of {span} steps" if span > 1 else None)
    if valid:
        vx = [r["step"] for r in valid]
        for stem in valid[0]["usdr"]:
            ax_sdr.plot(vx, [r["usdr"][stem] for r in valid], marker="o", label=stem)
        ax_sdr.plot(vx, [r["usdr_mean"] for r in valid], "k--", marker="s", label="mean")
        ax_sdr.legend()
    ax_sdr.set_xlim(ax_loss.get_xlim())  # the same steps as the loss, even with one point
    ax_sdr.set(xlabel="step", ylabel="uSDR (dB)", title="validation uSDR (EMA weights)")
    fig.supxlabel(caption + "; faint: every step", fontsize=9)
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


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
