"""The offline practice set: procedural songs with stems (bsr.data.synth)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from bsr.data import synth
from bsr.errors import BsrError

SR = 44100


def frame_db(x: np.ndarray, frame: int = SR // 2) -> np.ndarray:
    """Level in dB of each half-second frame of a (samples, 2) signal."""
    mono = x.mean(axis=1)
    count = len(mono) // frame
    power = np.mean(mono[: count * frame].reshape(count, frame) ** 2, axis=1)
    return 10 * np.log10(power + 1e-12)


@pytest.fixture(scope="module")
def song20() -> dict[str, np.ndarray]:
    return synth.compose_song(synth.song_seed(7, 0), 20.0)


def test_compose_shapes_and_determinism():
    a = synth.compose_song(3, 6.0)
    b = synth.compose_song(3, 6.0)
    c = synth.compose_song(4, 6.0)
    assert list(a) == list(synth.STEMS)
    for name in synth.STEMS:
        assert a[name].shape == (6 * SR, 2) and a[name].dtype == np.float32
        assert a[name].tobytes() == b[name].tobytes(), f"{name} differs between two runs"
        assert not np.allclose(a[name], c[name]), f"{name} is the same for seeds 3 and 4"
    assert synth.plan_song(3, 6.0).title == synth.plan_song(3, 60.0).title


def test_other_sample_rate():
    stems = synth.compose_song(1, 2.0, sample_rate=22050)
    assert stems["vocals"].shape == (44100, 2)


def test_levels_no_clipping_and_stems_take_turns(song20):
    for seed in (synth.song_seed(7, 0), 2, 5):
        stems = song20 if seed == synth.song_seed(7, 0) else synth.compose_song(seed, 20.0)
        mixture = synth.mixture_of(stems)
        assert 0.3 < np.abs(mixture).max() < 1.0
        for name, audio in stems.items():
            rms = float(np.sqrt(np.mean(audio**2)))
            levels = frame_db(audio)
            spread = np.percentile(levels, 90) - np.percentile(levels, 10)
            print(
                f"seed {seed} {name:7s} rms {20 * np.log10(rms):6.1f} dB, spread {spread:5.1f} dB"
            )
            assert rms > 0.01, f"{name} is (nearly) silent"
            assert np.abs(audio).max() < 1.0
            assert spread > 6.0, f"{name} plays at one level all song: it never takes turns"
        # Realistic balance: no stem more than 12 dB louder than another.
        loudness = [np.sqrt(np.mean(a**2)) for a in stems.values()]
        assert 20 * np.log10(max(loudness) / min(loudness)) < 12.0


def test_fixed_equaliser_is_far_worse_than_ideal_mask(song20):
    figures = [synth.oracle_sdr(song20), synth.oracle_sdr(synth.compose_song(2, 15.0))]
    gaps = []
    for name in synth.STEMS:
        irm = np.mean([f[name]["irm"] for f in figures])
        eq = np.mean([f[name]["eq"] for f in figures])
        print(f"{name:7s} IRM {irm:5.1f} dB   fixed EQ {eq:5.1f} dB")
        assert irm > eq + 2.0, name
        gaps.append(irm - eq)
    assert np.mean(gaps) >= 4.0, "stems barely overlap in time-frequency: an EQ separates them"


def test_oracle_sdr_detects_separable_stems():
    """Control: stems in separate bands that never change are separable by a fixed EQ."""
    t = np.arange(4 * SR) / SR
    tones = {"vocals": 1000.0, "drums": 5000.0, "bass": 60.0, "other": 300.0}
    stems = {k: np.stack([np.sin(2 * np.pi * f * t)] * 2, axis=1) * 0.2 for k, f in tones.items()}
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    figures = synth.oracle_sdr(stems)
    for name in synth.STEMS:
        assert figures[name]["eq"] > 20.0
        assert figures[name]["irm"] - figures[name]["eq"] < 4.0  # not "far worse" here


def pitched_fraction(x: np.ndarray, frame: int = 2048) -> float:
    """Share of loud frames with a clear pitch between 70 and 1000 Hz (autocorrelation)."""
    count = len(x) // frame
    frames = x[: count * frame].reshape(count, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = frames[rms > 0.3 * rms.max()]
    pitched = 0
    for f in loud:
        f = f - f.mean()
        ac = np.fft.irfft(np.abs(np.fft.rfft(f, 2 * frame)) ** 2)[:frame]
        lags = slice(SR // 1000, SR // 70)
        pitched += ac[lags].max() > 0.5 * ac[0]
    return pitched / max(len(loud), 1)


def test_vocals_are_pitched_and_voice_like(song20):
    vocals = song20["vocals"].mean(axis=1)
    spectrum = np.abs(np.fft.rfft(vocals)) ** 2
    freqs = np.fft.rfftfreq(len(vocals), 1 / SR)
    in_voice_band = spectrum[(freqs > 100) & (freqs < 4000)].sum() / spectrum.sum()
    centroid = (freqs * spectrum).sum() / spectrum.sum()
    voiced = pitched_fraction(vocals)
    noise = pitched_fraction(np.random.default_rng(0).standard_normal(10 * SR))
    print(f"vocals: {in_voice_band:.1%} in 100-4000 Hz, centroid {centroid:.0f} Hz, "
          f"{voiced:.0%} of loud frames pitched (white noise: {noise:.0%})")  # fmt: skip
    assert in_voice_band > 0.85
    assert 150 < centroid < 3000
    assert voiced > 0.7
    assert noise < 0.1  # the detector is not fooled by noise


def test_practice_set_layout_and_reproducible_bytes(tmp_path):
    a = synth.write_practice_set(tmp_path / "a", songs=3, seconds=3.0, seed=11)
    b = synth.write_practice_set(tmp_path / "b", songs=3, seconds=3.0, seed=11)
    train = sorted(p.name for p in (a / "train").iterdir())
    test = sorted(p.name for p in (a / "test").iterdir())
    assert len(train) == 2 and len(test) == 1
    assert all(name.startswith("Practice 00") and " - " in name for name in train + test)
    files = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(files) == 15
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        info = sf.info(a / rel)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "FLOAT")
    for folder in [a / "train" / n for n in train] + [a / "test" / n for n in test]:
        stems = {name: sf.read(folder / f"{name}.wav", dtype="float32")[0] for name in synth.STEMS}
        mixture = sf.read(folder / "mixture.wav", dtype="float32")[0]
        assert np.array_equal(mixture, synth.mixture_of(stems))
        assert np.abs(mixture).max() < 1.0
    c = synth.write_practice_set(tmp_path / "c", songs=3, seconds=3.0, seed=12)
    assert sorted(p.name for p in (c / "train").iterdir()) != train


def test_practice_set_refuses_foreign_files(tmp_path):
    out = synth.write_practice_set(tmp_path / "set", songs=2, seconds=1.0, seed=0)
    before = {p: p.read_bytes() for p in out.rglob("*.wav")}
    synth.write_practice_set(out, songs=2, seconds=1.0, seed=0)  # same set: fine
    assert {p: p.read_bytes() for p in out.rglob("*.wav")} == before
    with pytest.raises(BsrError, match="--force"):
        synth.write_practice_set(out, songs=3, seconds=1.0, seed=0)
    forced = synth.write_practice_set(out, songs=1, seconds=1.0, seed=5, force=True)
    assert len(list(forced.rglob("*.wav"))) == 5  # the old set's songs are gone
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BsrError, match="empty folder"):
        synth.write_practice_set(other, songs=1, seconds=1.0, seed=0)
    assert (other / "notes.txt").read_text() == "mine"


def test_musdb_opens_practice_set(tmp_path):
    from bsr.ffmpeg import ensure_ffmpeg

    try:
        ensure_ffmpeg()
    except BsrError as error:
        pytest.skip(f"musdb needs ffmpeg and ffprobe on PATH: {error}")
    import musdb

    out = synth.write_practice_set(tmp_path / "set", songs=3, seconds=2.0, seed=3)
    train = musdb.DB(root=str(out), is_wav=True, subsets="train")
    test = musdb.DB(root=str(out), is_wav=True, subsets="test")
    assert len(train.tracks) == 2 and len(test.tracks) == 1
    track = train.tracks[0]
    assert track.rate == SR
    folder = out / "train" / track.name
    # musdb decodes every file through ffmpeg as 16-bit ("s16le"): equal to 1/32768.
    one_lsb = 2.0**-15
    for name in synth.STEMS:
        stored = sf.read(folder / f"{name}.wav", dtype="float32")[0]
        assert np.abs(stored).max() > 0.01
        assert np.allclose(track.targets[name].audio, stored, rtol=0, atol=one_lsb)
    mixture = sf.read(folder / "mixture.wav")[0]
    assert np.allclose(track.audio, mixture, rtol=0, atol=one_lsb)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"songs": 0},
        {"songs": 2.5},
        {"seconds": 0},
        {"seconds": -1.0},
        {"seconds": math.nan},
        {"seed": -1},
        {"test_fraction": 1.0},
        {"sample_rate": 8000},
    ],
)
def test_bad_arguments_raise_bsr_error(tmp_path, kwargs):
    args = {"out": tmp_path / "x", "songs": 2, "seconds": 1.0, "seed": 0, **kwargs}
    with pytest.raises(BsrError) as caught:
        synth.write_practice_set(**args)
    assert "\n" not in str(caught.value)


def test_bad_song_arguments(tmp_path):
    with pytest.raises(BsrError):
        synth.compose_song(-3, 5.0)
    with pytest.raises(BsrError):
        synth.compose_song(0, math.inf)
    with pytest.raises(BsrError):
        next(synth.endless_source(0, 0.0))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BsrError, match="not a folder"):
        synth.write_practice_set(tmp_path / "file", songs=1, seconds=1.0, seed=0)


def test_endless_source_is_fresh_and_reproducible():
    first = list(itertools.islice(synth.endless_source(5, 1.5), 3))
    again = list(itertools.islice(synth.endless_source(5, 1.5), 3))
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in synth.STEMS)
    assert not np.array_equal(first[0]["drums"], first[1]["drums"])
    assert first[0]["bass"].shape == (int(1.5 * SR), 2)


def test_synth_stems_dataloader_workers_differ_and_reproduce():
    dataset = synth.SynthStems(seed=9, seconds=1.0)
    single = list(itertools.islice(iter(dataset), 4))
    assert single[0].shape == (4, 2, SR) and single[0].dtype == torch.float32

    def run() -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
        return list(itertools.islice(iter(loader), 4))

    first, second = run(), run()
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    # Workers take turns (song 0 from worker 0, song 1 from worker 1, ...): all songs are
    # different, and the run is the same songs as without workers.
    for i, j in itertools.combinations(range(4), 2):
        assert not torch.equal(first[i], first[j])
    for a, b in zip(first, single, strict=True):
        assert torch.equal(a, b)
