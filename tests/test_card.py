"""Model cards and the shipped course models: export, curve, loading by name, and quality."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

import bsr
from bsr.card import half_precision_checkpoint, make_card, training_curve
from bsr.checkpoint import atomic_save
from bsr.config import Config, load_config
from bsr.errors import BsrError
from bsr.hub import SHIPPED, model_card, shipped_path
from bsr.train import build_run


def fake_run(folder, steps=6):
    """A run folder as `bsr train` leaves it: last.pt and metrics.jsonl (resumed at step 4)."""
    run = build_run(Config(model=tiny_config(), name="tiny-test"), torch.device("cpu"))
    with torch.no_grad():  # move the EMA away from the model, so the export must pick it
        for p in run.ema.module.parameters():
            p.add_(0.01)
    run.step = steps
    folder.mkdir()
    atomic_save(run.state(), folder / "last.pt")
    records = [{"event": "start"}]
    records += [
        {"event": "step", "step": s, "loss": 1.0 / s, "steps_per_s": 2.0} for s in (1, 2, 3, 4, 5)
    ]
    records += [{"event": "valid", "step": 4, "usdr": {"vocals": 1.0}, "usdr_mean": 1.0}]
    # killed after step 5, resumed from the checkpoint at step 4: steps 5 and 6 again
    records += [{"event": "step", "step": s, "loss": 0.5 / s, "steps_per_s": 4.0} for s in (5, 6)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{cut")
    return run


def test_training_curve_takes_the_resumed_records(tmp_path):
    fake_run(tmp_path / "run")
    from bsr.plots import read_metrics

    curve = training_curve(read_metrics(tmp_path / "run"))
    assert curve["step"] == [1, 2, 3, 4, 5, 6]
    assert curve["loss"][4] == pytest.approx(0.1)  # step 5 as trained the second time
    assert curve["steps"] == 6
    assert curve["hours"] == pytest.approx((4 * 0.5 + 2 * 0.25) / 3600)
    assert curve["valid_step"] == [4] and curve["valid_usdr"] == [1.0]


def test_export_is_the_ema_in_half_precision(tmp_path):
    run = fake_run(tmp_path / "run")
    payload = half_precision_checkpoint(tmp_path / "run")
    assert all(v.dtype == torch.float16 for v in payload["model"].values() if v.is_floating_point())
    card = make_card(tmp_path / "run", "tiny-test", tmp_path / "out", sets={}, commands=["x"],
                     data="none", summary="a test", evaluate=False)  # fmt: skip
    assert card["steps"] == 6 and card["parameters"] == bsr.count_parameters(run.model)
    for suffix in (".pt", ".json", ".md", "-curve.png"):
        assert (tmp_path / "out" / f"tiny-test{suffix}").is_file()
    model = bsr.load_model(tmp_path / "out" / "tiny-test.pt")
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(BsrError, match="already exists: pass --force"):
        make_card(tmp_path / "run", "tiny-test", tmp_path / "out", sets={}, commands=["x"],
                  data="none", summary="again", evaluate=False)  # fmt: skip
    assert json.loads((tmp_path / "out" / "tiny-test.json").read_text())["summary"] == "a test"
    audio = torch.randn(1, 2, 8000)
    with torch.no_grad():
        want = run.ema.module.eval()(audio)
        got = model(audio)
        raw = run.model.eval()(audio)
    scale = want.abs().max()
    assert (got - want).abs().max() < 2e-2 * scale  # float16 rounding of the EMA weights
    assert (got - want).abs().max() < (raw - want).abs().max()  # the EMA, not the raw weights


def test_a_training_state_loads_its_ema_unless_asked(tmp_path):
    run = fake_run(tmp_path / "run")
    audio = torch.randn(1, 2, 8000)
    with torch.no_grad():
        ema = bsr.load_model(tmp_path / "run" / "last.pt")(audio)
        raw = bsr.load_model(tmp_path / "run" / "last.pt", weights="raw")(audio)
        torch.testing.assert_close(ema, run.ema.module.eval()(audio))
        torch.testing.assert_close(raw, run.model.eval()(audio))
    with pytest.raises(BsrError, match="use 'ema'"):
        bsr.load_model(tmp_path / "run" / "last.pt", weights="best")


def test_a_bsr_model_separates_in_windows_of_its_training_segment():
    model = bsr.load_model("course")
    segment = model_card("course")["config"]["train"]["segment_seconds"]
    window = round(segment * 44100)
    assert model.separation_defaults == {"window": window, "hop": window // 2}
    from bsr.separate import window_and_hop

    assert window_and_hop(model, None, None) == (window, window // 2)
    assert window_and_hop(model, 8.0, None) == (8 * 44100, 4 * 44100)  # given values win


def test_unknown_model_name_is_one_line():
    with pytest.raises(BsrError, match="neither a file nor a known model"):
        bsr.load_model("no-such-model")
    with pytest.raises(BsrError, match="no shipped model"):
        shipped_path("nope")


# --------------------------------------------------------------------- the shipped models


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_offline_and_matches_its_card(name):
    path = shipped_path(name)
    assert path.stat().st_size <= 10e6, f"{path} is over 10 MB"
    stored = torch.load(path, weights_only=True)
    assert stored["model"]["band_split.bands.0.linear.weight"].dtype == torch.float16
    card = model_card(name)
    assert card["steps"] == stored["step"]
    model = bsr.load_model(name)
    assert model.config == load_config(card["preset"]).model
    assert model.use_rope == (name == "course")


def test_top_level_separation_api():
    model = bsr.load_model("course")
    mono = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
    stems = bsr.separate_audio(mono, 22050, model, window_seconds=2.0, hop_seconds=1.0)
    assert list(stems) == model.stems
    assert all(v.shape == (1, 22050) and np.isfinite(v).all() for v in stems.values())


def constant_gain_usdr(reference: np.ndarray, mixture: np.ndarray) -> float:
    """uSDR of the best single gain g = <s, x> / <x, x> applied to the mixture."""
    from bsr.evaluate import usdr

    gain = np.sum(reference * mixture) / np.sum(mixture * mixture)
    return usdr(reference.T, gain * mixture.T)


def test_course_model_separates_songs_it_never_saw():
    """Four practice songs from a seed the course model never trained on (it saw seed 1000)."""
    from bsr.data.synth import compose_song, mixture_of, song_seed
    from bsr.evaluate import usdr

    model = bsr.load_model("course")
    gains = {stem: [] for stem in model.stems}
    for index in range(4):
        stems = compose_song(song_seed(4242, index), 12.0)  # name -> (samples, 2)
        mixture = mixture_of(stems).T  # (2, samples)
        estimates = bsr.separate_audio(mixture, 44100, model)  # its own 2 s windows
        for stem in model.stems:
            reference = stems[stem].T
            model_db = usdr(reference.T, estimates[stem].T)
            gains[stem].append(model_db - constant_gain_usdr(reference, mixture))
    per_stem = {stem: float(np.mean(v)) for stem, v in gains.items()}
    average = float(np.mean(list(per_stem.values())))
    assert average >= 4.0, f"uSDR above the best constant gain: {per_stem}, average {average:.2f}"
    assert min(per_stem.values()) >= 1.0, f"a stem is within 1 dB of a constant gain: {per_stem}"


def test_course_card_reports_the_target_on_unseen_songs():
    from bsr.card import gain_over_constant

    card = model_card("course")
    gains = gain_over_constant(card["scores"]["unseen practice songs"])
    assert gains["average"] >= 4.0, gains
    assert min(v for k, v in gains.items() if k != "average") >= 1.0, gains
    assert {"mixture", "constant_gain", "ibm", "irm", "irm2", "mwf"} <= set(
        card["scores"]["unseen practice songs"]
    )
    assert any(title.startswith("real MUSDB18") for title in card["scores"])
    twin = model_card("course-norope")
    assert twin["steps"] == card["steps"], "the twin must have the same training budget"
