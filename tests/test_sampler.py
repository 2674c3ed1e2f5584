"""Tests for bsr.data.sampler: random-mix training chunks and fixed validation chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from bsr.data import sampler
from bsr.data.sampler import STEMS, TrainingSet, ValidationSet, rms_db
from bsr.errors import BsrError

RATE = 8000  # a low rate keeps the fixture files tiny; the sampler does not care
VALID_SONG = "Actions - One Minute Smile"  # in musdb's official validation split


def write_song(root, name, seconds=2.0, level=0.1, seed=0, subset="train"):
    """Write a MUSDB18HQ song of noise stems (``level`` 0 gives silence); mixture = sum."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * RATE)
    audio = {s: (level * rng.standard_normal((frames, 2))).astype(np.float32) for s in STEMS}
    audio["mixture"] = sum(audio[s] for s in STEMS)
    folder = Path(root) / subset / name
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in audio.items():
        sf.write(str(folder / f"{stem}.wav"), array, RATE, subtype="FLOAT")
    return audio


@pytest.fixture(scope="module")
def loud_root(tmp_path_factory):
    """Six noisy songs of 1 to 2.5 s."""
    root = tmp_path_factory.mktemp("loud")
    for i in range(6):
        write_song(root, f"Song {i}", seconds=1.0 + 0.3 * i, seed=i)
    return root


@pytest.fixture(scope="module")
def half_silent_root(tmp_path_factory):
    """Three noisy songs and three silent ones, so that silent mixtures are drawn often."""
    root = tmp_path_factory.mktemp("half_silent")
    for i in range(6):
        write_song(root, f"Song {i}", level=0.1 if i < 3 else 0.0, seed=i)
    return root


def draws(dataset, count=None):
    """``count`` (default: all) items of the dataset as (stems, info) pairs."""
    return [dataset.draw(i) for i in range(count or len(dataset))]


def test_item_shape_and_type(loud_root):
    data = TrainingSet(loud_root, seconds=0.5, steps_per_epoch=3, batch_size=2)
    assert len(data) == 6 and data.chunk == 4000
    item = data[5]
    assert item.dtype == torch.float32 and item.shape == (4, 2, 4000)


def test_augmentation_statistics(loud_root):
    data = TrainingSet(
        loud_root, seconds=0.01, steps_per_epoch=2000, seed=3, cache=True, p_swap=0.5
    )
    infos = [info for _, info in draws(data)]
    gains = np.concatenate([i["gains_db"] for i in infos])
    assert -3.0 <= gains.min() and gains.max() <= 3.0 and gains.min() < -2.9 and gains.max() > 2.9
    counts, _ = np.histogram(gains, bins=6, range=(-3, 3))  # uniform: 8000 / 6 per bin
    assert np.all(np.abs(counts - 8000 / 6) < 150), counts  # about 4 standard deviations
    silenced = np.concatenate([i["silenced"] for i in infos])
    assert abs(silenced.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / silenced.size)
    swaps = np.array([i["swap"] for i in infos])
    assert abs(swaps.mean() - 0.5) < 4 * np.sqrt(0.25 / swaps.size)
    songs = np.concatenate([i["song_ids"] for i in infos])
    assert set(songs) == set(range(6))  # every song gets used
    stems_of_one_song = np.mean([len(set(i["song_ids"])) == 1 for i in infos])
    assert stems_of_one_song < 0.05  # random mixing: stems come from different songs


def test_audio_follows_the_plan(loud_root):
    data = TrainingSet(loud_root, seconds=0.05, steps_per_epoch=50, seed=4, cache=True, p_swap=0.5)
    for stems, info in draws(data):
        for k, stem in enumerate(STEMS):
            raw = data.cache[info["song_ids"][k], stem]
            raw = raw[:, info["offsets"][k] : info["offsets"][k] + data.chunk]
            if info["swap"]:
                raw = raw[::-1]
            gain = 0.0 if info["silenced"][k] else 10 ** (info["gains_db"][k] / 20)
            np.testing.assert_allclose(stems[k].numpy(), raw * gain, rtol=1e-5, atol=1e-7)


def test_silent_stem_segments_are_redrawn_per_stem(half_silent_root):
    data = TrainingSet(half_silent_root, seconds=0.01, steps_per_epoch=500, p_silence=0.3)
    results = draws(data)
    for _, info in results:  # every stem's segment, before silencing, is louder than -50 dB
        for k, stem in enumerate(STEMS):
            raw = data.read(info["song_ids"][k], stem, info["offsets"][k])
            assert rms_db(raw) >= -50.0
            assert info["songs"][k] in ("Song 0", "Song 1", "Song 2")
    assert sum(info["tries"] > 4 for _, info in results) > 20  # the skip was exercised
    # deliberate silencing still happens after the skip: the model must learn silence
    assert np.mean([info["silenced"].mean() for _, info in results]) == pytest.approx(0.3, abs=0.05)
    loose = TrainingSet(half_silent_root, seconds=0.01, steps_per_epoch=500, min_db=None)
    assert min(rms_db(stems.sum(0).numpy()) for stems, _ in draws(loose)) < -50.0


def test_channel_swap_is_off_unless_asked(loud_root):
    data = TrainingSet(loud_root, seconds=0.01, steps_per_epoch=200, seed=3)
    assert not any(info["swap"] for _, info in draws(data))  # the paper does not swap


def test_a_stem_silent_everywhere_gives_a_clear_error(tmp_path):
    for i in range(3):
        audio = write_song(tmp_path, f"Song {i}", seed=i)
        audio["vocals"][:] = 0.0  # an instrumental set: no vocals anywhere
        sf.write(str(tmp_path / "train" / f"Song {i}" / "vocals.wav"), audio["vocals"], RATE)
    data = TrainingSet(tmp_path, seconds=0.01, max_tries=5)
    with pytest.raises(BsrError, match="no vocals chunk louder than -50.0 dB in 5 tries.*min_db"):
        data[0]


def test_same_seed_same_items_and_epochs_differ(loud_root):
    def items(seed, epoch):
        data = TrainingSet(loud_root, seconds=0.05, steps_per_epoch=8, seed=seed)
        data.set_epoch(epoch)
        return torch.stack([data[i] for i in range(len(data))])

    first = items(1, 0)
    assert torch.equal(first, items(1, 0))
    assert not torch.equal(first, items(2, 0))
    assert not torch.equal(first, items(1, 1))


def test_cache_gives_the_same_items(loud_root):
    on_disk = TrainingSet(loud_root, seconds=0.05, steps_per_epoch=8)
    in_ram = TrainingSet(loud_root, seconds=0.05, steps_per_epoch=8, cache=True)
    assert all(torch.equal(on_disk[i], in_ram[i]) for i in range(8))


def batches(data, workers, epochs=(0,), persistent=False):
    """All batches of the given epochs, concatenated."""
    loader = DataLoader(data, batch_size=4, num_workers=workers, persistent_workers=persistent)
    out = []
    for epoch in epochs:
        data.set_epoch(epoch)
        out += list(loader)
    return torch.cat(out)


def test_dataloader_workers_do_not_change_the_items(loud_root):
    data = TrainingSet(loud_root, seconds=0.05, steps_per_epoch=4, batch_size=4, seed=5)
    single = batches(data, workers=0, epochs=(0, 1))
    assert torch.equal(single, batches(data, workers=2, epochs=(0, 1)))
    assert torch.equal(single, batches(data, workers=2, epochs=(0, 1)))
    # set_epoch must also reach workers that live across epochs
    assert torch.equal(single, batches(data, workers=2, epochs=(0, 1), persistent=True))


def test_reads_only_the_frames_it_needs(loud_root, monkeypatch):
    calls = []
    real_read = sampler.sf.read

    def spy(path, **kwargs):
        calls.append(kwargs)
        return real_read(path, **kwargs)

    monkeypatch.setattr(sampler.sf, "read", spy)
    data = TrainingSet(loud_root, seconds=0.25, steps_per_epoch=10)
    _, info = data.draw(3)
    assert len(calls) == info["tries"]
    assert all(call["frames"] == 2000 for call in calls)
    assert [call["start"] for call in calls[-4:]] == list(info["offsets"])


def test_same_song_option(loud_root):
    data = TrainingSet(loud_root, seconds=0.05, steps_per_epoch=20, p_same_song=1.0)
    for _, info in draws(data):
        assert len(set(info["song_ids"])) == 1 and len(set(info["offsets"])) == 1


def test_short_songs_are_skipped_or_refused(loud_root):
    data = TrainingSet(loud_root, seconds=2.0)
    assert data.too_short == ["Song 0", "Song 1", "Song 2", "Song 3"]
    assert {s.name for s in data.songs} == {"Song 4", "Song 5"}
    with pytest.raises(BsrError, match="shorter than the 9.0 s chunk.*smaller seconds"):
        TrainingSet(loud_root, seconds=9.0)


def test_official_validation_songs_can_be_left_out(tmp_path):
    write_song(tmp_path, VALID_SONG)
    write_song(tmp_path, "Some - Song")
    assert len(TrainingSet(tmp_path, seconds=0.5, split=None).songs) == 2
    assert [s.name for s in TrainingSet(tmp_path, seconds=0.5, split="train").songs] == [
        "Some - Song"
    ]


@pytest.mark.parametrize(
    "kwargs, words",
    [({"p_silence": 1.5}, "p_silence"), ({"seconds": 0}, "positive"), ({"seed": -1}, "negative")],
)
def test_bad_settings(loud_root, kwargs, words):
    with pytest.raises(BsrError, match=words):
        TrainingSet(loud_root, **kwargs)


def test_validation_set(tmp_path):
    written = write_song(tmp_path, VALID_SONG, seconds=2.0)
    write_song(tmp_path, "Some - Song")
    short = write_song(tmp_path, "Actions - One Minute Smile", subset="test", seconds=0.2)
    val = ValidationSet(tmp_path, seconds=0.5, chunks_per_song=2)
    assert val.items == [(VALID_SONG, 3000), (VALID_SONG, 9000)]
    mixture, stems = val[1]
    assert mixture.shape == (2, 4000) and stems.shape == (4, 2, 4000)
    np.testing.assert_array_equal(mixture.numpy(), written["mixture"][9000:13000].T)
    np.testing.assert_array_equal(stems[0].numpy(), written["vocals"][9000:13000].T)
    mixture2, stems2 = val[1]
    assert torch.equal(mixture, mixture2) and torch.equal(stems, stems2)
    padded = ValidationSet(tmp_path, seconds=0.5, subset="test", split=None)
    mixture, stems = padded[0]
    assert mixture.shape == (2, 4000) and not mixture[:, 1600:].any()
    np.testing.assert_array_equal(stems[3, :, :1600].numpy(), short["other"].T)
