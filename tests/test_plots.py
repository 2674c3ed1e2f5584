"""The spectrogram figures: one dB scale for every panel, silence at its floor."""

from __future__ import annotations

import numpy as np

from bsr.plots import error_spectrograms, stem_spectrograms

RATE = 8000


def _tone(freq: float, amplitude: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([amplitude * np.sin(2 * np.pi * freq * t)] * 2).astype(np.float32)


def _meshes(fig):
    """The spectrogram of every visible panel (the colour bar's own axes left out)."""
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    return [ax.collections[0] for ax in panels]


def _peak_db(audio: np.ndarray, n_fft: int = 512) -> float:
    """The loudest bin in dB, from frames and numpy's rfft in float64 (an independent route)."""
    mono = audio.astype(np.float64).mean(0)
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
    frames = [mono[i : i + n_fft] * window for i in range(0, len(mono) - n_fft, 128)]
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).max())


def test_stem_spectrograms_share_one_scale_and_show_silence_at_its_floor():
    signals = {
        "mixture": _tone(440, 0.5) + _tone(1000, 0.05),
        "loud": _tone(440, 0.5),
        "quiet": _tone(1000, 0.05),
        "silent": np.zeros((2, RATE), np.float32),
    }
    fig = stem_spectrograms(signals, RATE, columns=3, n_fft=512, hop=128, range_db=60)
    meshes = _meshes(fig)
    assert len(meshes) == 4  # 2 rows x 3 columns, two panels hidden
    assert sum(ax.get_visible() for ax in fig.axes if ax.get_label() != "<colorbar>") == 4
    limits = {mesh.get_clim() for mesh in meshes}
    assert len(limits) == 1, f"panels on different scales: {limits}"
    low, high = limits.pop()
    assert abs(high - _peak_db(signals["loud"])) < 0.5 and high - low == 60
    silent = np.asarray(meshes[3].get_array())
    assert np.all(silent < low)  # drawn at the floor of the scale (not NaN, not blank)
    assert [ax.get_title() for ax in fig.axes[:4]] == list(signals)
    assert all(ax.get_yscale() == "log" for ax in fig.axes[:4])


def test_error_spectrograms_rows_are_reference_estimate_error():
    reference = {"vocals": _tone(440, 0.5), "bass": _tone(110, 0.3)}
    estimate = {"vocals": 0.9 * reference["vocals"], "bass": reference["bass"]}
    fig = error_spectrograms(reference, estimate, RATE, n_fft=512, hop=128)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        f"{s}: {k}" for s in ("vocals", "bass") for k in ("reference", "estimate", "error")
    ]
    meshes = _meshes(fig)
    assert len({mesh.get_clim() for mesh in meshes}) == 1
    error = np.asarray(meshes[2].get_array())
    assert abs(error.max() - (_peak_db(reference["vocals"]) - 20)) < 0.5  # 10 % of the vocals
    assert np.asarray(meshes[5].get_array()).max() < -150  # a perfect bass: no error at all


# --------------------------------------------------------------------------- training curves


def write_run(folder, steps: int, stft: bool):
    """A ``metrics.jsonl`` as ``bsr train`` writes it: a start record, then one per step."""
    import json

    rng = np.random.default_rng(0)
    windows = [1024, 512] if stft else []
    records = [{"event": "start", "config": {"name": "mine", "train": {
        "stft_loss_windows": windows}}}]  # fmt: skip
    for step in range(1, steps + 1):
        wave = 0.05 / step**0.3 * (1 + 0.3 * rng.standard_normal())
        spectral = 4 * wave if stft else 0.0
        records.append({"event": "step", "step": step, "loss": wave + spectral,
                        "waveform_l1": wave, "stft_l1": spectral})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def drawn_lines(monkeypatch, run_dir):
    """The loss axes' lines and the figure's caption, kept as plot_run drew them."""
    import matplotlib.figure

    from bsr.plots import plot_run

    kept = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: kept.append(fig))  # fmt: skip
    plot_run(run_dir, run_dir / "curves.png")
    (fig,) = kept
    return fig.axes[0].get_lines(), fig.get_supxlabel()


def test_a_loss_without_stft_terms_is_one_line_and_the_caption_says_why(tmp_path, monkeypatch):
    records = write_run(tmp_path, steps=200, stft=False)
    lines, caption = drawn_lines(monkeypatch, tmp_path)
    labels = [line.get_label() for line in lines if not line.get_label().startswith("_")]
    assert labels == ["total = waveform L1"]  # not two legend entries for one visible line
    assert "preset `mine`" in caption and "waveform L1 alone" in caption
    raw, smoothed = lines  # each step faint, the running mean bold, in the same colour
    assert raw.get_alpha() < 0.5 and raw.get_color() == smoothed.get_color()
    losses = np.array([r["loss"] for r in records[1:]])
    # bold: the mean of each step and the 9 before it (200 steps / 20)
    np.testing.assert_allclose(smoothed.get_ydata()[50], losses[41:51].mean())
    np.testing.assert_allclose(smoothed.get_ydata()[:3], np.cumsum(losses[:3]) / [1, 2, 3])
    assert np.std(np.diff(smoothed.get_ydata())) < np.std(np.diff(losses)) / 3


def test_a_loss_with_stft_terms_draws_each_term(tmp_path, monkeypatch):
    write_run(tmp_path, steps=40, stft=True)
    lines, caption = drawn_lines(monkeypatch, tmp_path)
    labels = [line.get_label() for line in lines if not line.get_label().startswith("_")]
    assert labels == ["total", "waveform L1", "STFT L1"]
    assert "waveform L1 + STFT L1 at 2 resolutions (1024, 512)" in caption
