"""Separating with a community model: the windows its YAML names (``audio.chunk_size``,
``inference.num_overlap``) unless others are given; ``bsr separate`` on such a model."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import community_config

from bsr.checkpoint import export_community, load_model
from bsr.cli import main
from bsr.community import zfturbo_config
from bsr.model import BSRoformer
from bsr.separate import separate, window_and_hop

RATE = 44100


@pytest.fixture
def community_files(tmp_path):
    """A small community checkpoint and its ZFTurbo YAML: 4096-sample windows every 1024."""
    model = BSRoformer(community_config(stems=["vocals", "other"])).eval()
    data = zfturbo_config(model.config)
    data["audio"]["chunk_size"] = 4096
    data["inference"]["num_overlap"] = 4
    data["model"]["sage_attention"] = True  # speed only: accepted, with a note
    export_community(model, tmp_path / "m.ckpt")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "m.ckpt", tmp_path / "m.yaml"


def chunk_lengths(model) -> list[int]:
    """Record the length of every chunk the model is given."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    return seen


def test_the_yaml_windows_are_the_default(community_files):
    model = load_model(*community_files)
    assert model.separation_defaults == {"window": 4096, "hop": 1024}
    seen = chunk_lengths(model)
    audio = np.random.default_rng(0).standard_normal((2, 10000)).astype(np.float32)
    stems = separate(audio, RATE, model, batch_size=1)
    assert set(seen) == {4096}
    # Padded by window - hop at both ends, a window every hop: ceil((10000 + 3072) / 1024).
    assert len(seen) == 13
    assert stems["vocals"].shape == (2, 10000)


def test_given_windows_win(community_files):
    model = load_model(*community_files)
    seen = chunk_lengths(model)
    audio = np.zeros((2, 10000), dtype=np.float32)
    separate(audio, RATE, model, window_seconds=2048 / RATE, hop_seconds=2048 / RATE)
    assert set(seen) == {2048}
    # A window alone keeps the YAML's overlap: a quarter of it.
    assert window_and_hop(model, 2048 / RATE, None) == (2048, 512)
    assert window_and_hop(model, None, 0.01) == (4096, 441)


def test_without_a_yaml_the_paper_windows(community_files):
    model = BSRoformer(community_config())
    assert model.separation_defaults is None
    assert window_and_hop(model, None, None) == (8 * RATE, 4 * RATE)
    with pytest.raises(Exception, match="no longer than the window"):
        window_and_hop(model, 1.0, 2.0)


def test_bsr_separate_uses_the_yaml_windows_and_notes_speed_keys(community_files, tmp_path, capsys):
    ckpt, config = community_files
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((6000, 2), dtype=np.float32), RATE)
    argv = ["separate", str(song), "--checkpoint", str(ckpt), "--config", str(config)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert f"windows from the config: {4096 / RATE:g} s every {1024 / RATE:g} s" in captured.out
    assert "bsr: note: model.sage_attention ignored" in captured.err
    assert sf.read(tmp_path / "out" / "song" / "vocals.wav")[0].shape == (6000, 2)
    assert main([*argv, "--out", str(tmp_path / "o2"), "--window", "0.05"]) == 0
    assert "windows from the config" not in capsys.readouterr().out
