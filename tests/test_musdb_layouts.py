"""Real data in both of MUSDB's layouts: MUSDB18 (.stem.mp4) and MUSDB18HQ (wav folders).

Both roots are built from two real MUSDB18 excerpts: Falcon 69 (shipped by stempeg) under
test/, and 80s Rock (from ../shared) under train/. Where ../shared lacks 80s Rock, a copy
of Falcon 69 under another name stands in for it (a warning says so), and the one test that
needs 80s Rock itself skips.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import shutil
import threading
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import yaml

from bsr.audio import read_audio
from bsr.cli import main
from bsr.config import load_config
from bsr.data import examples, wavcache
from bsr.data.musdb import (
    STEMS,
    WAV_FILES,
    detect_layout,
    open_db,
    track_name,
    validation_tracks,
)
from bsr.errors import BsrError
from bsr.ffmpeg import ensure_ffmpeg
from bsr.separate import output_folder

ROCK_STANDIN = "Stand In - Falcon 69 Copy"
"""The train song's name when the shared 80s Rock excerpt is absent."""
ROCK_ABSENT = (
    "the MUSDB18 sample in ../shared is not present: this test needs it "
    f"({examples.ROCK_IN_SHARED})"
)


@pytest.fixture(scope="module")
def sources():
    """``{subset: (track name, .stem.mp4 path)}`` of the two real excerpts."""
    try:
        ensure_ffmpeg()
    except BsrError as err:
        pytest.skip(f"needs ffmpeg to decode MUSDB18: {err}")
    import stempeg

    falcon = Path(stempeg.example_stem_path())
    try:
        rock = examples.find_rock_stem()
    except BsrError:  # $BSR_SHARED names a folder without it
        rock = None
    if rock is None:
        warnings.warn(
            f"{examples.ROCK_IN_SHARED} is not in ../shared: train/ holds a copy of Falcon 69 "
            f"named {ROCK_STANDIN!r} instead of 80s Rock",
            stacklevel=1,
        )
    train = (examples.ROCK, rock) if rock is not None else (ROCK_STANDIN, falcon)
    return {"train": train, "test": (examples.FALCON, falcon)}


def write_stem_root(root: Path, sources) -> Path:
    """A MUSDB18 root: ``<subset>/<track>.stem.mp4`` copies of the excerpts."""
    for subset, (name, path) in sources.items():
        (root / subset).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / subset / f"{name}.stem.mp4")
    return root


def write_wav_root(root: Path, sources) -> Path:
    """A MUSDB18HQ root of the same excerpts, made without bsr.data.wavcache: the mixture as
    bsr.audio.read_audio reads it, the stems from examples.true_stems (float wav)."""
    for subset, (name, path) in sources.items():
        folder = root / subset / name
        folder.mkdir(parents=True)
        mixture, rate = read_audio(path)
        audio = {"mixture": mixture, **examples.true_stems(path)}
        for stem, array in audio.items():
            sf.write(folder / f"{stem}.wav", array.T, rate, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory, sources):
    base = tmp_path_factory.mktemp("layouts")
    return SimpleNamespace(
        stems=write_stem_root(base / "musdb18", sources),
        wavs=write_wav_root(base / "musdb18hq", sources),
    )


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The tiny preset with a 0.5 s segment, batch 1, 1 s validation chunks: quick on a CPU."""
    config = load_config("tiny").to_dict()
    config["train"].update(segment_seconds=0.5, batch_size=1, valid_seconds=1.0)
    path = tmp_path_factory.mktemp("config") / "tiny-quick.yaml"
    path.write_text(yaml.safe_dump({"model": config["model"], "train": config["train"]}))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh course folder for this test, so that caches made elsewhere do not count."""
    folder = tmp_path / "course"
    monkeypatch.setenv("BSR_HOME", str(folder))
    return folder


def train_cli(config_file, data, out) -> int:
    args = ["train", "--config", str(config_file), "--data", str(data), "--out", str(out)]
    return main([*args, "--steps", "2", "--device", "cpu", "--threads", "1"])


def step_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["event"] == "step"]


def read_wav(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, roots, config_file):
    """Train on both layouts through the CLI; returns run folders and what was printed."""
    base = tmp_path_factory.mktemp("runs")
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BSR_HOME", str(base / "course"))
        for layout, root in (("stems", roots.stems), ("wavs", roots.wavs)):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                code = train_cli(config_file, root, base / layout)
            assert code == 0, printed.getvalue()
            runs[layout] = SimpleNamespace(out=base / layout, stdout=printed.getvalue())
        runs["cache"] = wavcache.cache_folder(roots.stems)
    return runs


def test_the_two_layouts_are_told_apart(roots, tmp_path):
    assert detect_layout(roots.stems) == "MUSDB18"
    assert detect_layout(roots.wavs) == "MUSDB18HQ"
    assert detect_layout(tmp_path) is None
    assert wavcache.wav_root(roots.wavs) == roots.wavs  # MUSDB18HQ is read where it is


def test_train_on_both_layouts_reads_the_same_songs(trained, roots):
    # the MUSDB18 root was converted once per subset (test/ validates: no official split)
    converted = [ln for ln in trained["stems"].stdout.splitlines() if ln.startswith("converted")]
    assert len(converted) == 2 and all("1 MUSDB18 song(s)" in ln for ln in converted)
    assert str(trained["cache"] / "train") in converted[0]
    assert str(trained["cache"] / "test") in converted[1]
    assert "converted" not in trained["wavs"].stdout
    for layout in ("stems", "wavs"):
        out = trained[layout].out
        assert (out / "model.pt").is_file()
        records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if r["event"] == "valid"] == [2]
    # the same chunks, drawn from the same songs: the same losses to the last bit
    assert step_losses(trained["stems"].out) == step_losses(trained["wavs"].out)
    # the cache holds exactly what the MUSDB18HQ root holds: stream 0 as stored, the stems,
    # all cut to the length the container declares
    for subset in ("train", "test"):
        songs = sorted(p.name for p in (roots.wavs / subset).iterdir())
        assert sorted(p.name for p in (trained["cache"] / subset).iterdir()) == songs
        for stem in WAV_FILES:
            ours = read_wav(trained["cache"] / subset / songs[0] / f"{stem}.wav")
            np.testing.assert_array_equal(
                ours, read_wav(roots.wavs / subset / songs[0] / f"{stem}.wav")
            )


def test_the_cache_of_80s_rock_is_cut_to_its_declared_length(sources, tmp_path, home):
    if sources["train"][0] != examples.ROCK:
        pytest.skip(ROCK_ABSENT)
    root = write_stem_root(tmp_path / "root", {"train": sources["train"]})
    decoded = examples.decode_stem(sources["train"][1])
    cache = wavcache.wav_root(root, "train", progress=False)
    song = cache / "train" / examples.ROCK
    frames = sf.info(str(song / "mixture.wav")).frames
    assert frames == 299880 < len(decoded["mixture"])  # the AAC decoder pads to 300032
    for stem in WAV_FILES:  # the mixture is stream 0 as stored, not the sum of the stems
        np.testing.assert_array_equal(read_wav(song / f"{stem}.wav"), decoded[stem][:frames])
    assert not np.allclose(decoded["mixture"][:frames], sum(decoded[s][:frames] for s in STEMS))


def test_the_cache_is_reused_then_rebuilt_when_the_source_changes(
    roots, tmp_path, home, capsys, monkeypatch
):
    root = tmp_path / "root"
    shutil.copytree(roots.stems, root)
    decoded = []
    real = wavcache.convert_song
    monkeypatch.setattr(wavcache, "convert_song", lambda p: decoded.append(p.name) or real(p))
    first = wavcache.wav_root(root, "test")
    assert first.parent == home / "data" / "cache" and first.name.startswith("root-")
    assert "converted 1 MUSDB18 song(s)" in capsys.readouterr().out
    mixture = first / "test" / examples.FALCON / "mixture.wav"
    stamp = mixture.stat().st_mtime_ns
    # reused: by the sampler's sets too, and no second line
    from bsr.data.sampler import TrainingSet, ValidationSet

    assert wavcache.wav_root(root, "test") == first
    assert ValidationSet(root, seconds=1.0, subset="test", split=None).rate == 44100
    assert TrainingSet(root, seconds=1.0, subset="test", min_db=None).root == first
    assert decoded == [f"{examples.FALCON}.stem.mp4"] and mixture.stat().st_mtime_ns == stamp
    assert capsys.readouterr().out == ""
    # a changed source file: a new folder; the old one is left alone and named
    source = root / "test" / f"{examples.FALCON}.stem.mp4"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    second = wavcache.wav_root(root, "test")
    line = capsys.readouterr().out
    assert second != first and mixture.stat().st_mtime_ns == stamp
    assert len(decoded) == 2 and f"no longer used: {first}" in line and line.count("\n") == 1
    # and nothing half-written lies around
    assert sorted(p.name for p in second.iterdir()) == ["bsr-cache.json", "test"]


def test_an_interrupted_conversion_leaves_no_subset_behind(sources, tmp_path, home, monkeypatch):
    root = write_stem_root(tmp_path / "root", {"train": sources["test"]})
    shutil.copyfile(sources["train"][1], root / "train" / "Zed - Second.stem.mp4")
    real, calls = wavcache.convert_song, []

    def stop_at_the_second(path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(wavcache, "convert_song", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        wavcache.wav_root(root, "train", progress=False)
    cache = wavcache.cache_folder(root)
    assert sorted(p.name for p in cache.iterdir()) == ["bsr-cache.json"]  # no train/, no temp
    monkeypatch.setattr(wavcache, "convert_song", real)
    assert wavcache.wav_root(root, "train", progress=False) == cache
    assert len(list((cache / "train").iterdir())) == 2


def test_a_conversion_finished_meanwhile_elsewhere_wins(sources, tmp_path, home, monkeypatch):
    """Two processes (DDP ranks) converting at once: the first rename wins, the other's
    work is dropped and both read the same complete folder."""
    root = write_stem_root(tmp_path / "root", {"test": sources["test"]})
    cache, real = wavcache.cache_folder(root), wavcache.convert_song

    def another_rank_finishes_first(path):
        audio = real(path)
        examples.write_song(audio, cache / ".elsewhere" / track_name(path))
        (cache / ".elsewhere").rename(cache / "test")
        return audio

    monkeypatch.setattr(wavcache, "convert_song", another_rank_finishes_first)
    assert wavcache.wav_root(root, "test") == cache
    assert sorted(p.name for p in cache.iterdir()) == ["bsr-cache.json", "test"]
    assert len(list((cache / "test").iterdir())) == 1


def break_root(kind: str, root: Path, sources) -> list[str]:
    """Make a bad root of ``kind``; returns words its error must name."""
    root.mkdir()
    if kind == "empty":
        return ["no tracks found", "mixture.wav", ".stem.mp4"]
    write_stem_root(root, {"train": sources["test"]})
    bad = root / "train" / "Bad - Song.stem.mp4"
    if kind == "mixed":
        (root / "test" / "Some - Song").mkdir(parents=True)
        return ["mixes", ".stem.mp4", "song folders", "one layout"]
    if kind == "not audio":
        bad.write_bytes(b"this is no mp4 at all")
        return ["Bad - Song.stem.mp4", "cannot read"]
    bad.write_bytes(sources["test"][1].read_bytes()[:200_000])  # a truncated download
    return ["Bad - Song.stem.mp4", "download it again"]


@pytest.mark.parametrize("kind", ["empty", "mixed", "not audio", "truncated"])
def test_bad_roots_give_one_line_errors(kind, sources, config_file, tmp_path, home, capsys):
    words = break_root(kind, tmp_path / "root", sources)
    assert train_cli(config_file, tmp_path / "root", tmp_path / "run") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bsr: error: ") and "\n" not in error, error
    for word in words:
        assert word in error, (word, error)
    caches = list((home / "data" / "cache").glob("*/*"))
    assert all(p.name == "bsr-cache.json" for p in caches)  # nothing converted, no temp
    if kind == "mixed":
        with pytest.raises(BsrError, match="mixes"):
            open_db(tmp_path / "root")


def test_the_official_validation_split_of_a_musdb18_root(sources, tmp_path, home):
    from bsr.train import open_datasets

    valid = validation_tracks()[0]
    root = write_stem_root(tmp_path / "root", {"train": sources["train"]})
    shutil.copyfile(sources["test"][1], root / "train" / f"{valid}.stem.mp4")
    config = load_config("tiny")
    training, validation = open_datasets(root, config, total_items=4)
    assert [song.name for song in training.songs] == [sources["train"][0]]
    assert list(validation.songs) == [valid]
    assert validation.songs[valid].folder == wavcache.cache_folder(root) / "train" / valid
    assert not (wavcache.cache_folder(root) / "test").exists()  # test/ was never needed
    assert [t.name for t in open_db(root, split="valid")] == [valid]  # musdb reads it too


def test_separated_stem_files_are_named_after_their_track(tmp_path):
    out = tmp_path / "out"
    assert output_folder(Path("r/test/A - B.stem.mp4"), out) == out / "A - B"
    assert output_folder(Path("r/test/A - B/mixture.wav"), out) == out / "test" / "A - B"
    assert output_folder(Path("my song.mp3"), out) == out / "my song"
    assert output_folder(Path(".stem.mp4"), out) == out / ".stem"


def evaluate_cli(estimates, data, out) -> dict:
    """What ``bsr evaluate --out`` writes: the table (CSV) and the track's museval JSON."""
    args = ["evaluate", "--estimates", str(estimates), "--data", str(data), "--subset", "test"]
    assert main([*args, "--workers", "1", "--out", str(out)]) == 0
    return {
        "csv": (out / "results.csv").read_text(),
        "json": json.loads((out / "test" / f"{examples.FALCON}.json").read_text()),
    }


def test_evaluate_scores_the_same_estimates_the_same_on_both_layouts(
    trained, roots, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BSR_HOME", str(trained["cache"].parents[2]))  # the cache made above
    falcon = roots.stems / "test" / f"{examples.FALCON}.stem.mp4"
    model = trained["stems"].out / "model.pt"
    args = ["separate", str(falcon), "--checkpoint", str(model), "--out", str(tmp_path / "est")]
    assert main([*args, "--window", "2", "--device", "cpu"]) == 0
    track = tmp_path / "est" / examples.FALCON  # named after the track, not "<track>.stem"
    assert sorted(p.name for p in track.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    capsys.readouterr()
    on_stems = evaluate_cli(tmp_path / "est", roots.stems, tmp_path / "scores-musdb18")
    assert "converted" not in capsys.readouterr().out  # the training run's cache served
    # a folder named as older bsr separate named it ("<track>.stem") is matched too
    track.rename(track.with_name(f"{examples.FALCON}.stem"))
    on_wavs = evaluate_cli(tmp_path / "est", roots.wavs, tmp_path / "scores-musdb18hq")
    assert on_stems == on_wavs
    sdr = [t["frames"][0]["metrics"]["SDR"] for t in on_stems["json"]["targets"]]
    assert len(sdr) == 4 and np.isfinite(sdr).all()


def test_two_estimate_folders_of_one_track_are_refused(roots, tmp_path):
    from bsr.evaluate import evaluate_folder

    for name in (examples.FALCON, f"{examples.FALCON}.stem"):
        (tmp_path / "est" / name).mkdir(parents=True)
    with pytest.raises(BsrError, match="both hold estimates of track") as info:
        evaluate_folder(tmp_path / "est", roots.wavs, "test", workers=1, progress=False)
    assert "\n" not in str(info.value) and "keep one" in str(info.value)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:  # no lines on stderr for each request
        pass

    def do_GET(self) -> None:
        QuietHandler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def previews_server(tmp_path, sources):
    """A web server on 127.0.0.1 serving a zip laid out as musdb's previews zip is:
    ``train/<track>.stem.mp4`` and ``test/<track>.stem.mp4`` at its top level (musdb
    extracts it into ROOT and then looks for ROOT/train)."""
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "MUSDB18-7-STEMS.zip", "w") as archive:
        for subset, (name, path) in sources.items():
            archive.write(path, f"{subset}/{name}.stem.mp4")
    handler = functools.partial(QuietHandler, directory=str(served))
    QuietHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/MUSDB18-7-STEMS.zip"
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_previews_from_loopback_then_train(
    previews_server, sources, config_file, tmp_path, home, monkeypatch, capsys
):
    from urllib.request import Request

    import musdb

    asked = []

    def to_loopback(url, *args, **kwargs):  # musdb builds Request(sample-url, headers=...)
        asked.append(url)
        return Request(previews_server, *args, **kwargs)

    monkeypatch.setattr(musdb, "Request", to_loopback)
    root = tmp_path / "previews"
    assert main(["data", "download", "musdb18-7s", "--out", str(root)]) == 0
    official = yaml.safe_load((Path(musdb.__file__).parent / "configs" / "mus.yaml").read_text())[
        "sample-url"
    ]
    assert asked == [official] and QuietHandler.requests == ["/MUSDB18-7-STEMS.zip"]
    assert f"MUSDB18 7-second previews in {root}" in capsys.readouterr().out
    for subset, (name, path) in sources.items():
        assert (root / subset / f"{name}.stem.mp4").read_bytes() == path.read_bytes()
    # downloading again changes nothing and asks nobody
    assert main(["data", "download", "musdb18-7s", "--out", str(root)]) == 0
    assert len(asked) == 1
    assert train_cli(config_file, root, tmp_path / "run") == 0
    assert (tmp_path / "run" / "model.pt").is_file()
    assert capsys.readouterr().out.count("converted 1 MUSDB18 song(s)") == 2


def test_bsr_data_cache_converts_ahead_and_refuses_a_wav_root(roots, tmp_path, home, capsys):
    assert main(["data", "cache", str(roots.stems)]) == 0
    printed = capsys.readouterr().out.splitlines()
    cache = wavcache.cache_folder(roots.stems)
    assert [ln.split(" song(s) of ")[0] for ln in printed[:2]] == ["converted 1 MUSDB18"] * 2
    assert printed[2] == f"wav cache of {roots.stems} (train, test): {cache}"
    assert sorted(p.name for p in cache.iterdir()) == ["bsr-cache.json", "test", "train"]
    assert main(["data", "cache", str(roots.stems), "--subset", "test"]) == 0
    assert "converted" not in capsys.readouterr().out  # already there
    assert main(["data", "cache", str(roots.wavs)]) == 2
    error = capsys.readouterr().err.strip()
    assert "no MUSDB18 .stem.mp4 files" in error and "\n" not in error
