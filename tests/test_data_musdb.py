"""Tests for bsr.data.musdb (opening MUSDB18/HQ) and bsr.data.examples (real excerpts)."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bsr.audio import read_audio
from bsr.data import examples
from bsr.data.musdb import (
    STEMS,
    WAV_FILES,
    add_accompaniment,
    load_track,
    open_db,
    validate_wav_root,
    validation_tracks,
)
from bsr.errors import BsrError
from bsr.ffmpeg import ensure_ffmpeg

VALID_SONG = "Actions - One Minute Smile"  # in musdb's official validation split


def write_song(root, name, subset="train", seconds=1.0, rate=8000, seed=0, channels=2):
    """Write a tiny MUSDB18HQ song of noise stems; mixture = their sum. Returns the arrays."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    audio = {s: (0.1 * rng.standard_normal((frames, channels))).astype(np.float32) for s in STEMS}
    audio["mixture"] = sum(audio[s] for s in STEMS)
    folder = Path(root) / subset / name
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in audio.items():
        sf.write(str(folder / f"{stem}.wav"), array, rate, subtype="FLOAT")
    return audio


@pytest.fixture
def ffmpeg():
    """Skip (with the reason) where ffmpeg/ffprobe cannot be found: musdb needs them."""
    try:
        ensure_ffmpeg()
    except BsrError as err:
        pytest.skip(f"needs ffmpeg: {err}")


def test_open_db_and_load_track_match_written(tmp_path, ffmpeg):
    written = {
        name: write_song(tmp_path, name, seed=i) for i, name in enumerate(["A - x", "B - y"])
    }
    db = open_db(tmp_path)  # is_wav auto-detected
    assert db.is_wav and [t.name for t in db] == ["A - x", "B - y"]
    for track in db:
        audio = load_track(track)
        assert set(audio) == set(WAV_FILES)
        for key, array in audio.items():
            assert array.dtype == np.float32 and array.shape == (8000, 2)
            np.testing.assert_array_equal(array, written[track.name][key])
    full = add_accompaniment(audio)
    np.testing.assert_allclose(
        full["accompaniment"], audio["drums"] + audio["bass"] + audio["other"]
    )


def test_official_split_reaches_musdb(tmp_path, ffmpeg):
    write_song(tmp_path, VALID_SONG)
    write_song(tmp_path, "Some - Train Song")
    assert VALID_SONG in validation_tracks() and len(validation_tracks()) == 14
    assert [t.name for t in open_db(tmp_path, split="valid")] == [VALID_SONG]
    assert [t.name for t in open_db(tmp_path, split="train")] == ["Some - Train Song"]
    assert len(open_db(tmp_path, split=None)) == 2


def test_stem_mp4_folder_is_detected_and_loaded(tmp_path, ffmpeg):
    import stempeg

    (tmp_path / "test").mkdir()
    shutil.copy(stempeg.example_stem_path(), tmp_path / "test")
    db = open_db(tmp_path, subset="test")
    assert not db.is_wav and len(db) == 1
    audio = load_track(db[0])
    assert set(audio) == set(WAV_FILES)
    assert all(a.shape[1] == 2 and a.dtype == np.float32 for a in audio.values())
    # stream 4 is vocals in musdb's order: it must not equal drums (stream 1)
    assert not np.allclose(audio["vocals"], audio["drums"])


def break_root(kind, root):
    """Make a broken dataset folder of the given kind; return (root, words the error names)."""
    if kind == "missing root":
        return root / "nope", ["does not exist"]
    if kind == "empty":
        root.mkdir(exist_ok=True)
        return root, ["no tracks found", "mixture.wav"]
    write_song(root, "Bad - Song")
    folder = root / "train" / "Bad - Song"
    if kind == "missing stem":
        (folder / "bass.wav").unlink()
        return root, ["bass.wav", "Bad - Song"]
    if kind == "length":
        sf.write(str(folder / "drums.wav"), np.zeros((100, 2), np.float32), 8000)
        return root, ["drums.wav", "same length"]
    if kind == "rate":
        sf.write(str(folder / "other.wav"), np.zeros((8000, 2), np.float32), 16000)
        return root, ["other.wav", "16000 Hz"]
    if kind == "mono":
        sf.write(str(folder / "vocals.wav"), np.zeros(8000, np.float32), 8000)
        return root, ["vocals.wav", "stereo"]
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["missing root", "empty", "missing stem", "length", "rate", "mono"]
)
def test_bad_folders_give_one_line_errors(tmp_path, kind):
    root, words = break_root(kind, tmp_path / "db")
    for check in (validate_wav_root, open_db):
        with pytest.raises(BsrError) as info:
            check(root)
        message = str(info.value)
        assert "\n" not in message
        for word in words:
            assert word in message


def test_subset_folder_passed_as_root_gets_a_hint(tmp_path):
    write_song(tmp_path, "A - x")
    with pytest.raises(BsrError, match="pass the folder above train"):
        validate_wav_root(tmp_path / "train")


@pytest.mark.parametrize(
    "subset, split, words",
    [("dev", None, "unknown subset"), ("train", "val", "unknown split"), ("test", "valid", "only")],
)
def test_bad_subset_or_split(tmp_path, subset, split, words):
    write_song(tmp_path, "A - x")
    with pytest.raises(BsrError, match=words):
        open_db(tmp_path, subset=subset, split=split)


def test_split_without_matching_songs(tmp_path):
    write_song(tmp_path, "A - x")
    with pytest.raises(BsrError, match="split=None"):
        validate_wav_root(tmp_path, split="valid")


def check_example_song(folder, subset, name):
    """The folder holds a 44.1 kHz stereo song that musdb opens; print mixture vs stem sum."""
    for stem in WAV_FILES:
        info = sf.info(str(folder / f"{stem}.wav"))
        assert (info.samplerate, info.channels) == (44100, 2)
        assert 5.5 < info.duration < 7.5
    track = open_db(folder.parent.parent, subset=subset)[0]
    assert track.name == name
    audio = load_track(track)
    diff = np.abs(audio["mixture"] - sum(audio[s] for s in STEMS))
    edges, middle = diff.max(), diff[4096:-4096].max()
    print(f"{name}: max |mixture - sum of stems| = {edges:.4f} ({middle:.4f} away from the edges)")
    assert np.sqrt(np.mean(diff**2)) < 0.1 * np.sqrt(np.mean(audio["mixture"] ** 2)) + 0.05


def test_write_examples_falcon(tmp_path, ffmpeg, monkeypatch):
    monkeypatch.delenv("BSR_SHARED", raising=False)
    monkeypatch.setattr(examples, "default_shared", lambda: tmp_path / "no-shared")
    paths = examples.write_examples(tmp_path / "out")
    folder = tmp_path / "out" / "test" / examples.FALCON
    assert sorted(paths) == sorted(folder / f"{s}.wav" for s in WAV_FILES)
    check_example_song(folder, "test", examples.FALCON)


def test_write_examples_80s_rock_from_shared(tmp_path, ffmpeg, monkeypatch):
    monkeypatch.delenv("BSR_SHARED", raising=False)
    if examples.find_rock_stem() is None:
        pytest.skip(
            f"the MUSDB18 sample in ../shared is not present ({examples.default_shared()} has "
            f"no {examples.ROCK_IN_SHARED}): this test needs it"
        )
    paths = examples.write_examples(tmp_path / "out")
    assert len(paths) == 10
    check_example_song(tmp_path / "out" / "train" / examples.ROCK, "train", examples.ROCK)


def test_explicit_shared_folder_must_hold_the_song(tmp_path, monkeypatch):
    with pytest.raises(BsrError, match="80s Rock.stem.mp4 not found"):
        examples.find_rock_stem(tmp_path)
    monkeypatch.setenv("BSR_SHARED", str(tmp_path))
    with pytest.raises(BsrError, match="BSR_SHARED"):
        examples.find_rock_stem()


def point_download_at(monkeypatch, port):
    """Make musdb's downloader talk to 127.0.0.1:port instead of the internet."""
    import musdb

    real = musdb.urlopen
    monkeypatch.setattr(musdb, "urlopen", lambda req, *a, **k: real(f"http://127.0.0.1:{port}/x"))


def test_download_previews_without_network(tmp_path, ffmpeg, monkeypatch):
    with socket.socket() as s:  # find a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_download_at(monkeypatch, port)
    with pytest.raises(BsrError) as info:
        examples.download_previews(tmp_path / "previews")
    message = str(info.value)
    assert message.startswith("downloading MUSDB18 previews needs network access: ")
    assert "\n" not in message and "fix" in message


def test_download_previews_does_not_hang(tmp_path, ffmpeg, monkeypatch):
    with socket.socket() as server:  # accepts the connection but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        point_download_at(monkeypatch, server.getsockname()[1])
        start = time.monotonic()
        with pytest.raises(BsrError, match="needs network access"):
            examples.download_previews(tmp_path / "previews", timeout=0.5)
        assert time.monotonic() - start < 10
    assert socket.getdefaulttimeout() is None  # the global default is restored


def test_stream_order_matches_musdb(tmp_path, ffmpeg):
    import musdb
    import stempeg

    db = musdb.DB(root=str(tmp_path), subsets="test")  # only to read musdb's stem_ids
    ids = db.setup["stem_ids"]
    assert examples.STREAM_ORDER == tuple(sorted(ids, key=ids.get))
    # our float conversion equals musdb's own decoding of the same file, apart from its
    # 16-bit rounding and clipping (Falcon 69's mixture peaks at about 1.02)
    (tmp_path / "test").mkdir()
    shutil.copy(stempeg.example_stem_path(), tmp_path / "test")
    from_musdb = load_track(open_db(tmp_path, subset="test")[0])
    ours = examples.decode_stem(Path(stempeg.example_stem_path()))
    for stem in WAV_FILES:
        np.testing.assert_allclose(np.clip(ours[stem], -1, 1), from_musdb[stem], atol=2e-4)


def test_missing_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    write_song(tmp_path, "A - x")
    monkeypatch.setenv("BSR_NO_BUNDLED_FFMPEG", "1")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BsrError, match="ffmpeg and ffprobe not found on PATH") as info:
        open_db(tmp_path)
    assert "\n" not in str(info.value)
    assert [s.name for s in validate_wav_root(tmp_path)] == ["A - x"]  # needs no ffmpeg


def test_true_stems_of_a_song_file(tmp_path, ffmpeg):
    """A MUSDB18HQ mixture.wav and a .stem.mp4 come with their stems; other files do not."""
    import stempeg

    written = write_song(tmp_path, "A - x", seed=3)
    stems = examples.true_stems(tmp_path / "train" / "A - x" / "mixture.wav")
    assert list(stems) == list(WAV_FILES[1:])
    for name, audio in stems.items():  # (channels, samples), as bsr.separate returns stems
        np.testing.assert_array_equal(audio, written[name].T)
    (tmp_path / "train" / "A - x" / "bass.wav").unlink()  # one stem missing: no references
    assert examples.true_stems(tmp_path / "train" / "A - x" / "mixture.wav") is None
    assert examples.true_stems(tmp_path / "train" / "A - x" / "vocals.wav") is None
    falcon = Path(stempeg.example_stem_path())
    from_mp4 = examples.true_stems(falcon)
    streams = examples.decode_stem(falcon)
    assert list(from_mp4) == list(WAV_FILES[1:])
    mixture, _ = read_audio(falcon)  # what bsr separate reads of the file: the mixture
    assert from_mp4["vocals"].shape == mixture.shape  # so the two line up sample for sample
    np.testing.assert_array_equal(from_mp4["vocals"], streams["vocals"][: mixture.shape[1]].T)
    np.testing.assert_allclose(mixture, streams["mixture"][: mixture.shape[1]].T, atol=1e-6)
