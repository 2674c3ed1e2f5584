"""Evaluation: museval regression, uSDR/cSDR definitions, baselines, folders, bad input."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from bsr.errors import BsrError
from bsr.evaluate import (
    CSDR_LABEL,
    USDR_LABEL,
    baseline_estimates,
    evaluate_baselines,
    evaluate_folder,
    evaluate_track,
    format_table,
    museval_json,
    usdr,
)

RATE = 8000  # small rate keeps BSSEval (512-tap filters per frame) fast; metrics are rate-free
SECONDS = 4
SAMPLE_TRACK = "Music Delta - 80s Rock"


def synthetic_stems(
    seed: int = 0, seconds: float = SECONDS, channels: int = 1
) -> dict[str, np.ndarray]:
    """Four stems with distinct spectra, ``(samples, channels)`` float64 each.

    Mono by default: BSSEval's cost grows with (sources * channels)^3, and the stereo
    path is covered by the museval regression test.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pan = np.array([0.8, 0.6])[:channels]
    vocals = np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    bass = 0.8 * np.sin(2 * np.pi * 55 * t)
    drums = rng.standard_normal(n) * (np.sin(2 * np.pi * 2 * t) > 0.7)
    other = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    stems = {"vocals": vocals, "drums": 0.5 * drums, "bass": bass, "other": 0.4 * other}
    return {k: v[:, None] * pan for k, v in stems.items()}


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# --------------------------------------------------------------------------- museval


def test_reproduces_museval_published_scores(shared_dir):
    """museval's own regression test: np.random.seed(0), then random(shape) per target."""
    sample = shared_dir / "data" / "musdb18-7s-sample"
    published = sample / f"{SAMPLE_TRACK}.museval.json"
    if not published.is_file():
        pytest.skip(f"{published} is absent")
    from bsr.ffmpeg import ensure_ffmpeg

    try:
        ensure_ffmpeg()
    except BsrError as exc:
        pytest.skip(f"ffmpeg unavailable, cannot decode the .stem.mp4: {exc}")
    import musdb

    track = musdb.DB(root=str(sample), subsets="train").tracks[0]
    assert track.name == SAMPLE_TRACK
    np.random.seed(0)
    estimates = {
        "vocals": np.random.random(track.audio.shape),
        "accompaniment": np.random.random(track.audio.shape),
    }
    references = {k: track.targets[k].audio for k in estimates}
    scores = evaluate_track(references, estimates, rate=track.rate, track_name=track.name)
    ours = {t["name"]: t["frames"] for t in museval_json(scores)["targets"]}

    ref = json.loads(published.read_text())
    for target in ref["targets"]:
        assert len(ours[target["name"]]) == len(target["frames"]) == 6
        for metric in ("SDR", "SIR", "ISR", "SAR"):
            want = np.array([f["metrics"][metric] for f in target["frames"]])
            got = np.array([f["metrics"][metric] for f in ours[target["name"]]])
            np.testing.assert_allclose(got, want, atol=0.1, err_msg=f"{target['name']} {metric}")
        sdr = scores["targets"][target["name"]]["SDR"]
        assert scores["targets"][target["name"]]["cSDR"] == pytest.approx(np.nanmedian(sdr))


# --------------------------------------------------------------------------- definitions


def test_usdr_is_the_float64_energy_ratio():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((5000, 2)).astype(np.float32)
    s_hat = (s + 0.1 * rng.standard_normal((5000, 2))).astype(np.float32)
    s64, e64 = s.astype(np.float64), s_hat.astype(np.float64)
    want = 10 * math.log10((np.sum(s64**2) + 1e-7) / (np.sum((s64 - e64) ** 2) + 1e-7))
    assert usdr(s, s_hat) == pytest.approx(want, abs=1e-9)
    assert usdr(s, s) > 100  # perfect estimate: only the epsilon limits it
    assert usdr(np.zeros((10, 1)), np.zeros((10, 1))) == 0.0  # silence vs silence


def test_csdr_is_nanmedian_of_frames_and_silent_frames_are_nan():
    stems = synthetic_stems()
    stems["vocals"][RATE : 2 * RATE] = 0.0  # vocals rest during the second frame
    rng = np.random.default_rng(2)
    est = {k: v + 0.05 * rng.standard_normal(v.shape) for k, v in stems.items()}
    scores = evaluate_track(stems, est, rate=RATE)
    assert list(scores["targets"]) == ["vocals", "drums", "bass", "other"]
    for t in scores["targets"].values():
        assert len(t["SDR"]) == SECONDS
        assert np.isnan(t["SDR"][1])  # museval: a silent reference blanks the frame
        assert t["cSDR"] == pytest.approx(np.nanmedian(t["SDR"]))
    # v4 image SDR of a frame is the energy ratio of that frame (no filter on the target).
    s, e = stems["bass"][:RATE], est["bass"][:RATE]
    frame0 = 10 * np.log10(np.sum(s**2) / np.sum((s - e) ** 2))
    assert scores["targets"]["bass"]["SDR"][0] == pytest.approx(frame0, abs=1e-3)


def test_single_target_gets_accompaniment_added():
    stems = synthetic_stems()
    rng = np.random.default_rng(3)
    est = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in stems.items()}
    alone = evaluate_track(stems, {"vocals": est["vocals"]}, rate=RATE)
    assert list(alone["targets"]) == ["vocals", "accompaniment"]
    assert alone["targets"]["accompaniment"]["added"]
    assert not alone["targets"]["vocals"]["added"]
    # accompaniment estimate = mixture - vocals estimate, so its error is the vocals' error
    err = np.sum((est["vocals"] - stems["vocals"]) ** 2)
    acc = sum(stems[k] for k in ("drums", "bass", "other"))
    assert alone["targets"]["accompaniment"]["uSDR"] == pytest.approx(
        10 * np.log10(np.sum(acc**2) / err), abs=1e-3
    )
    # SDR needs no other target: same frames as when scored with all four stems
    full = evaluate_track(stems, est, rate=RATE)
    np.testing.assert_allclose(alone["targets"]["vocals"]["SDR"], full["targets"]["vocals"]["SDR"])
    # a lone stem with no other references needs the mixture
    with pytest.raises(BsrError) as exc:
        evaluate_track({"vocals": stems["vocals"]}, {"vocals": est["vocals"]}, rate=RATE)
    assert "mixture" in one_line(exc)
    mix = sum(stems.values())
    ok = evaluate_track({"vocals": stems["vocals"]}, {"vocals": est["vocals"]}, RATE, mixture=mix)
    np.testing.assert_allclose(ok["targets"]["vocals"]["SDR"], full["targets"]["vocals"]["SDR"])


# --------------------------------------------------------------------------- baselines


def test_oracle_baselines_rank_as_expected():
    stems = synthetic_stems()
    mix = sum(stems.values())
    avg = {}
    for kind in ("mixture", "constant_gain", "irm", "cirm"):
        est = baseline_estimates(stems, mix, kind)
        assert set(est) == set(stems) and all(e.shape == mix.shape for e in est.values())
        scores = evaluate_track(stems, est, rate=RATE)["targets"]
        avg[kind] = (
            np.mean([t["cSDR"] for t in scores.values()]),
            np.mean([t["uSDR"] for t in scores.values()]),
        )
    for i in (0, 1):  # cSDR and uSDR agree on the ranking
        assert avg["mixture"][i] < avg["constant_gain"][i] < avg["irm"][i] < avg["cirm"][i]
    assert avg["cirm"][1] > 60  # exact up to float32 STFT round-off
    # least squares: g*x is never worse than x itself, per stem
    for k, s in stems.items():
        g = baseline_estimates(stems, mix, "constant_gain")[k]
        assert usdr(s, g) >= usdr(s, mix) - 1e-9


def test_cirm_survives_digital_silence():
    stems = synthetic_stems(seconds=2)
    for s in stems.values():
        s[: RATE // 2] = 0.0  # a silent intro: X == 0 there
    est = baseline_estimates(stems, sum(stems.values()), "cirm")
    for k, e in est.items():
        assert np.all(np.isfinite(e)) and usdr(stems[k], e) > 60, k


# --------------------------------------------------------------------------- folders


def write_dataset(root, subset="test", tracks=("Alpha - One", "Beta - Two"), channels=1):
    """A MUSDB18HQ-layout folder with short synthetic tracks; returns stems per track."""
    out = {}
    for i, name in enumerate(tracks):
        stems = synthetic_stems(seed=i, seconds=3, channels=channels)
        folder = root / subset / name
        folder.mkdir(parents=True)
        for k, v in stems.items():
            sf.write(folder / f"{k}.wav", v, RATE, subtype="FLOAT")
        sf.write(folder / "mixture.wav", sum(stems.values()), RATE, subtype="FLOAT")
        out[name] = stems
    return out


def write_estimates(root, data, stems=("vocals", "drums", "bass", "other"), noise=0.1):
    rng = np.random.default_rng(7)
    for name, refs in data.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in stems:
            est = refs[k] + noise * rng.standard_normal(refs[k].shape)
            sf.write(root / name / f"{k}.wav", est, RATE, subtype="FLOAT")


def test_evaluate_folder_writes_reports_and_workers_agree(tmp_path):
    data = write_dataset(tmp_path / "data")
    write_estimates(tmp_path / "est" / "test", data)
    out = tmp_path / "out"
    results = evaluate_folder(tmp_path / "est", tmp_path / "data", workers=2, out_dir=out)
    model = results[0]
    assert model.method == "model" and sorted(model.tracks) == sorted(data)
    for name in data:
        museval_style = json.loads((out / "test" / f"{name}.json").read_text())
        assert [t["name"] for t in museval_style["targets"]] == ["vocals", "drums", "bass", "other"]
        frame = museval_style["targets"][0]["frames"][0]
        assert frame["time"] == 0.0 and frame["duration"] == 1.0
        assert set(frame["metrics"]) == {"SDR", "SIR", "ISR", "SAR"}
    md = (out / "results.md").read_text()
    assert CSDR_LABEL in md and USDR_LABEL in md
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["stem"] for r in rows} == {"vocals", "drums", "bass", "other", "average"}
    assert all(CSDR_LABEL in r and USDR_LABEL in r for r in rows)
    # cSDR = median over tracks of per-track medians; uSDR = mean over tracks
    per_track = [model.tracks[n]["targets"]["drums"] for n in data]
    assert model.csdr()["drums"] == pytest.approx(np.median([t["cSDR"] for t in per_track]))
    assert model.usdr()["drums"] == pytest.approx(np.mean([t["uSDR"] for t in per_track]))

    # one process gives the same numbers; the layout without <subset>/ is accepted too
    serial = evaluate_folder(tmp_path / "est" / "test", tmp_path / "data", workers=1)[0]
    assert serial.csdr() == pytest.approx(model.csdr(), rel=1e-9)
    assert serial.usdr() == pytest.approx(model.usdr(), rel=1e-9)


def test_vocals_only_folder_with_baselines(tmp_path):
    data = write_dataset(tmp_path / "data", tracks=("Gamma - Three",))
    write_estimates(tmp_path / "est", data, stems=("vocals",))
    results = evaluate_folder(
        tmp_path / "est", tmp_path / "data", workers=1, baselines=("mixture", "cirm")
    )
    assert [r.method for r in results] == ["model", "mixture", "cirm"]
    assert all(r.targets == ["vocals", "accompaniment"] for r in results)
    # the mixture baseline guesses the mixture for the added accompaniment too, so each
    # frame's SDR is +-10 log10(|v|^2 / |a|^2): the two stems mirror each other
    mix = results[1].csdr()
    assert mix["vocals"] == pytest.approx(-mix["accompaniment"], abs=1e-3)
    table = format_table(results)
    assert table.count("| model |") == 2 and table.count("| cIRM |") == 2
    csdr_part, usdr_part = table.split(USDR_LABEL)
    assert CSDR_LABEL in csdr_part and CSDR_LABEL not in usdr_part
    base = evaluate_baselines(tmp_path / "data", kinds=("irm",), targets=("bass",), workers=1)
    assert base[0].targets == ["bass", "not_bass"]
    with pytest.raises(BsrError) as exc:
        evaluate_baselines(tmp_path / "data", tracks=["Nobody - Nothing"], workers=1)
    assert "Nobody" in one_line(exc)


# --------------------------------------------------------------------------- bad input


def test_bad_arrays_give_one_line_errors():
    stems = synthetic_stems(seconds=2, channels=2)
    ref = {"vocals": stems["vocals"], "drums": stems["drums"]}
    good = {k: v.copy() for k, v in ref.items()}
    cases = {
        "NaN": {**good, "vocals": np.where(good["vocals"] > 0.5, np.nan, good["vocals"])},
        "channel": {**good, "vocals": good["vocals"][:, :1]},
        "(channels, samples)": {**good, "vocals": good["vocals"].T},
        "samples": {**good, "vocals": good["vocals"][: RATE // 2]},
        "no reference": {**good, "piano": good["vocals"]},
    }
    for word, est in cases.items():
        with pytest.raises(BsrError) as exc:
            evaluate_track(ref, est, rate=RATE)
        assert word in one_line(exc), word
    # within one window of the reference length: truncated / zero-padded like museval
    longer = {k: np.concatenate([v, v[:100]]) for k, v in good.items()}
    shorter = {k: v[:-100] for k, v in good.items()}
    assert len(evaluate_track(ref, longer, rate=RATE)["targets"]["vocals"]["SDR"]) == 2
    assert len(evaluate_track(ref, shorter, rate=RATE)["targets"]["vocals"]["SDR"]) == 2
    # an all-silent estimate is valid: museval blanks those frames, uSDR is 0 dB
    silent = evaluate_track(ref, {**good, "vocals": np.zeros_like(good["vocals"])}, rate=RATE)
    assert np.all(np.isnan(silent["targets"]["vocals"]["SDR"]))
    assert math.isnan(silent["targets"]["vocals"]["cSDR"])
    assert silent["targets"]["vocals"]["uSDR"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(BsrError) as exc:
        baseline_estimates(ref, sum(ref.values()), "wiener")
    assert "wiener" in one_line(exc)


def test_bad_folders_give_one_line_errors(tmp_path):
    data = write_dataset(tmp_path / "data", tracks=("Delta - Four",), channels=2)
    est = tmp_path / "est"
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data")
    assert "not found" in one_line(exc)
    (est / "Unknown - Track").mkdir(parents=True)
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data")
    assert "matches" in one_line(exc)
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data", subset="valid")
    assert "valid" in one_line(exc)

    write_estimates(est, data, stems=("vocals", "drums"))
    (est / "Unknown - Track").rmdir()
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data", targets=["vocals", "bass"], workers=1)
    assert "bass.wav" in one_line(exc)

    track = est / "Delta - Four"
    vocals = data["Delta - Four"]["vocals"]
    sf.write(track / "drums.wav", vocals, 44100, subtype="FLOAT")
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data", workers=1)
    assert "Hz" in one_line(exc)
    sf.write(track / "drums.wav", vocals[:, 0], RATE, subtype="FLOAT")
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data", workers=1)
    assert "channel" in one_line(exc)
    sf.write(track / "drums.wav", np.concatenate([vocals, vocals]), RATE, subtype="FLOAT")
    with pytest.raises(BsrError) as exc:
        evaluate_folder(est, tmp_path / "data", workers=1)
    assert "samples" in one_line(exc)
