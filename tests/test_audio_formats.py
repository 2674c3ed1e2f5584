"""``bsr separate`` reads what learners have: every usual format, bit depth, rate, channel
count and file name, made here with the ``ffmpeg`` on PATH from a known signal.

What the decoders really do, measured with the ffmpeg 7 and libsndfile 1.2 that
``make setup`` installs: mp3 (libsndfile reads LAME's gapless header), m4a/mp4 (ffmpeg
honours the priming edit list, bsr drops the padding to a whole 1024-sample frame), ogg
and opus decode to exactly the input's length and alignment; raw ``.aac`` (ADTS) keeps
the encoder's 1024 samples of priming in front, as in every player.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_config

from bsr.audio import probe_audio, read_audio
from bsr.checkpoint import save_model
from bsr.cli import main
from bsr.config import Config
from bsr.errors import BsrError
from bsr.ffmpeg import ensure_ffmpeg
from bsr.model import BSRoformer
from bsr.separate import separate_files


def _ffmpeg_missing() -> str | None:
    try:
        ensure_ffmpeg()
    except BsrError as error:
        return str(error)
    return None


pytestmark = pytest.mark.skipif(
    _ffmpeg_missing() is not None,
    reason=f"these tests make their files with ffmpeg: {_ffmpeg_missing()}",
)

SECONDS = 1.5
STEMS = ["vocals", "other"]


TONES = (220, 330, 440, 70, 550, 660, 770, 880)
"""Hz, one per channel; the fourth is low because 5.1's fourth channel is the LFE, which
AAC keeps only below about 120 Hz."""


def signal(rate: int, channels: int) -> np.ndarray:
    """``(samples, channels)``: one tone per channel (:data:`TONES`) under a slow swell, so
    that a channel swapped, dropped or shifted shows in the correlation."""
    t = np.arange(round(SECONDS * rate)) / rate
    swell = 0.3 + 0.2 * np.sin(np.pi * t / SECONDS)
    tones = [swell * np.sin(2 * np.pi * TONES[c] * t + c) for c in range(channels)]
    return np.stack(tones, axis=1).astype(np.float32)


# name: (ffmpeg options, channels, sample rate, lossy)
CASES = {
    "song.mp3": (["-c:a", "libmp3lame", "-b:a", "192k"], 2, 44100, True),
    "song.m4a": (["-c:a", "aac", "-b:a", "192k"], 2, 44100, True),
    "song.mp4": (["-c:a", "aac", "-b:a", "192k"], 2, 44100, True),
    "song.ogg": (["-c:a", "libvorbis", "-q:a", "6"], 2, 44100, True),
    "song.opus": (["-c:a", "libopus", "-b:a", "160k"], 2, 48000, True),
    "song.flac": (["-c:a", "flac"], 2, 44100, False),
    "u8.wav": (["-c:a", "pcm_u8"], 2, 44100, False),
    "s16.wav": (["-c:a", "pcm_s16le"], 2, 44100, False),
    "s24.wav": (["-c:a", "pcm_s24le"], 2, 44100, False),
    "s32.wav": (["-c:a", "pcm_s32le"], 2, 44100, False),
    "float.wav": (["-c:a", "pcm_f32le"], 2, 44100, False),
    "rate22050.wav": (["-c:a", "pcm_s16le"], 2, 22050, False),
    "mono.flac": (["-c:a", "flac"], 1, 44100, False),
    "mono.m4a": (["-c:a", "aac", "-b:a", "128k"], 1, 44100, True),
    "surround51.flac": (["-c:a", "flac"], 6, 44100, False),
    "surround51.m4a": (["-c:a", "aac", "-b:a", "384k"], 6, 44100, True),
    "Café del Mar — ünïcode.m4a": (["-c:a", "aac", "-b:a", "192k"], 2, 44100, True),
}
LSB = {"u8.wav": 2**-7, "s16.wav": 2**-15, "rate22050.wav": 2**-15, "s24.wav": 2**-23}
"""One step of each lossless file's integer samples; ffmpeg writes float input as 24-bit flac."""


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    for name, (options, channels, rate, _) in CASES.items():
        source = root / f"source-{channels}-{rate}.wav"
        if not source.exists():
            sf.write(source, signal(rate, channels), rate, subtype="FLOAT")
        ffmpeg("-i", source, *options, root / name)
    torch.manual_seed(0)
    config = tiny_config(stems=STEMS)
    save_model(BSRoformer(config), root / "model.pt", Config(model=config))
    return root


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("name", CASES)
def test_every_format_reads_as_the_signal(files, name):
    _, channels, rate, lossy = CASES[name]
    audio, got_rate = read_audio(files / name)
    source = signal(rate, channels).T
    assert got_rate == rate and audio.dtype == np.float32
    assert audio.shape == source.shape  # exactly the input's length, also for lossy codecs
    if lossy:
        for c in range(channels):  # each channel in its place
            assert correlation(audio[c], source[c]) > 0.99, (name, c)
    else:
        step = 2**-23 if name.endswith(".flac") else LSB.get(name, 1e-7)  # s32, float: exact
        np.testing.assert_allclose(audio, source, rtol=0, atol=step)


@pytest.mark.parametrize("name", CASES)
def test_bsr_separate_writes_stems_shaped_like_the_input(files, name, tmp_path, capsys):
    _, channels, rate, _ = CASES[name]
    argv = ["separate", str(files / name), "--checkpoint", str(files / "model.pt"),
            "--out", str(tmp_path), "--threads", "1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    folder = tmp_path / name.rsplit(".", 1)[0]
    for stem in STEMS:
        data, got_rate = sf.read(folder / f"{stem}.wav", always_2d=True)
        assert got_rate == rate
        assert data.shape == (round(SECONDS * rate), channels)
        assert np.isfinite(data).all() and np.abs(data).max() > 0


def test_raw_aac_keeps_the_encoders_priming(files, tmp_path):
    """ADTS records neither the priming nor the length: 1024 samples of priming come first
    and the end is padded to a whole frame, as any player decodes it."""
    ffmpeg("-i", files / "source-2-44100.wav", "-c:a", "aac", "-b:a", "192k", tmp_path / "a.aac")
    audio, rate = read_audio(tmp_path / "a.aac")
    source = signal(44100, 2).T
    assert rate == 44100 and audio.shape[1] % 1024 == 0
    assert 1024 + source.shape[1] <= audio.shape[1] < 1024 + source.shape[1] + 2048
    assert correlation(audio[:, 1024 : 1024 + source.shape[1]], source) > 0.99
    assert probe_audio(tmp_path / "a.aac").reader == "ffmpeg"


def test_a_musdb_stem_file_gives_its_mixture(files, tmp_path):
    """A ``.stem.mp4`` holds five streams (mixture, drums, bass, other, vocals)."""
    tones = [signal(44100, 2 + k)[:, -2:] for k in range(5)]  # five different tone pairs
    inputs = []
    for k, tone in enumerate(tones):
        sf.write(tmp_path / f"{k}.wav", tone, 44100, subtype="FLOAT")
        inputs += ["-i", tmp_path / f"{k}.wav"]
    maps = [arg for k in range(5) for arg in ("-map", str(k))]
    ffmpeg(*inputs, *maps, "-c:a", "aac", "-b:a", "192k", tmp_path / "track.stem.mp4")
    audio, rate = read_audio(tmp_path / "track.stem.mp4")
    assert (rate, audio.shape) == (44100, tones[0].T.shape)
    assert correlation(audio, tones[0].T) > 0.99
    assert abs(correlation(audio, tones[4].T)) < 0.5


@pytest.fixture
def bad_files(tmp_path, files):
    (tmp_path / "song.mp3").write_text("this is a text file, not mp3\n")
    whole = (files / "song.m4a").read_bytes()
    (tmp_path / "cut.m4a").write_bytes(whole[: len(whole) // 2])  # the index comes last
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "folder.flac").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "name, says",
    [("song.mp3", "a text file"), ("cut.m4a", "moov atom not found"),
     ("empty.wav", "is empty (0 bytes)"), ("folder.flac", "is a directory")],
)  # fmt: skip
def test_bad_files_are_one_line_naming_the_file(bad_files, files, name, says, capfd):
    argv = ["separate", str(bad_files / name), "--checkpoint", str(files / "model.pt"),
            "--out", str(bad_files / "out")]  # fmt: skip
    assert main(argv) == 2
    err = capfd.readouterr().err.strip()  # file descriptor 2: C libraries' notes included
    assert err.startswith("bsr: error:") and "\n" not in err, err
    assert str(bad_files / name) in err and says in err, err
    assert not (bad_files / "out").exists()


def test_a_bad_file_among_good_ones_stops_before_anything_is_written(bad_files, files):
    good = bad_files / "good.wav"
    sf.write(good, signal(44100, 2), 44100)
    model = BSRoformer(tiny_config(stems=STEMS)).eval()
    with pytest.raises(BsrError, match="song.mp3 as audio: it is a text file"):
        separate_files([good, bad_files / "song.mp3"], model, bad_files / "out")
    assert not (bad_files / "out").exists()


def test_without_ffmpeg_an_m4a_is_one_line_saying_so(files, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg, no ffprobe
    monkeypatch.setenv("BSR_NO_BUNDLED_FFMPEG", "1")
    with pytest.raises(BsrError, match="cannot read .*song.m4a with soundfile .*ffmpeg"):
        read_audio(files / "song.m4a")
    assert read_audio(files / "song.flac")[0].shape == (2, round(SECONDS * 44100))
