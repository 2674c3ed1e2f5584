"""bsr against the community's BS-RoFormer: same weights, same outputs; ZFTurbo configs;
bsr checkpoints; and the errors a user meets when a file or config is wrong."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import community_config

from bsr import BsrError, BSRoformer, Config, ModelConfig
from bsr.checkpoint import export_community, load_model, load_weights, save_model
from bsr.community import (
    community_kwargs,
    config_from_zfturbo,
    from_community_state_dict,
    rotary_frequencies,
    to_community_state_dict,
    zfturbo_config,
)

bs_roformer = pytest.importorskip("bs_roformer")

# The peer warns about its STFT window check and torch's deprecated sdp_kernel context.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

PAPER_BANDS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]


def peer(config: ModelConfig, seed: int = 1):
    """lucidrains' BSRoformer 0.4.1 with the same settings and seeded random weights."""
    torch.manual_seed(seed)
    model = bs_roformer.BSRoformer(**community_kwargs(config)).eval()
    with torch.no_grad():  # gammas start at one: randomise them too, so norms are tested
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return model


def peer_output(model, audio: torch.Tensor) -> torch.Tensor:
    """The peer's output as (batch, stems, C, samples): it drops the stem axis for one."""
    with torch.no_grad():
        out = model(audio)
    return out if out.dim() == 4 else out.unsqueeze(1)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def audio_for(config: ModelConfig, hops: int = 12, batch: int = 2) -> torch.Tensor:
    # A whole number of hops: the peer's iSTFT then returns exactly the input length.
    return torch.randn(batch, config.channels, hops * config.hop_length)


CASES = {
    "mono-1stem-hop128": dict(channels=1),
    "stereo-4stems-paper-hop441-mlp1": dict(
        stems=["vocals", "drums", "bass", "other"],
        n_fft=2048,
        hop_length=441,
        bands="paper",
        mask_estimator_depth=1,
    ),
    "stereo-nfft1024-hop512-mlp3-depth2-dimhead32": dict(
        n_fft=1024,
        hop_length=512,
        bands=[8, 8, 16, 32, 64, 128, 257],
        mask_estimator_depth=3,
        time_transformer_depth=2,
        band_transformer_depth=2,
        dim_head=32,
        depth=2,
    ),
    "mono-2stems-win384": dict(channels=1, stems=["a", "b"], win_length=384, hop_length=96),
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_community_weights_give_the_peers_output(overrides):
    config = community_config(**overrides)
    reference = peer(config)
    model = BSRoformer(config).eval()
    model.load_state_dict(from_community_state_dict(reference.state_dict(), config))
    audio = audio_for(config)
    with torch.no_grad():
        ours = model(audio)
    theirs = peer_output(reference, audio)
    assert ours.shape == theirs.shape == (2, len(config.stems), config.channels, audio.shape[-1])
    assert relative_error(ours, theirs) <= 1e-5


def test_export_loads_into_the_peer_and_matches(tmp_path):
    config = community_config(stems=["vocals", "other"], n_fft=2048, hop_length=512, bands="paper")
    model = BSRoformer(config).eval()
    export_community(model, tmp_path / "model.ckpt", tmp_path / "model.yaml")
    reference = bs_roformer.BSRoformer(**community_kwargs(config)).eval()
    state = torch.load(tmp_path / "model.ckpt", weights_only=True)
    reference.load_state_dict(state)  # strict: every key, rotary tables included
    audio = audio_for(config, hops=8)
    with torch.no_grad():
        ours = model(audio)
    assert relative_error(ours, peer_output(reference, audio)) <= 1e-5
    # The YAML written beside it describes the same network.
    again = config_from_zfturbo(tmp_path / "model.yaml")
    assert community_kwargs(again) == community_kwargs(config)


def test_export_refuses_a_paper_model():
    with pytest.raises(BsrError, match="mask_norm"):
        to_community_state_dict(BSRoformer(community_config(mask_norm="per_band")))
    with pytest.raises(BsrError, match="gates"):
        to_community_state_dict(BSRoformer(community_config(gates=False)))


# ---------------------------------------------------------------------------- ZFTurbo YAML

MUSDB_YAML = {
    "audio": {"chunk_size": 131584, "num_channels": 2, "sample_rate": 44100},
    "model": {
        "dim": 192,
        "depth": 6,
        "stereo": True,
        "num_stems": 1,
        "time_transformer_depth": 1,
        "freq_transformer_depth": 1,
        "linear_transformer_depth": 0,
        "freqs_per_bands": PAPER_BANDS,
        "dim_head": 64,
        "heads": 8,
        "attn_dropout": 0.1,
        "ff_dropout": 0.1,
        "flash_attn": True,
        "dim_freqs_in": 1025,
        "stft_n_fft": 2048,
        "stft_hop_length": 441,
        "stft_win_length": 2048,
        "stft_normalized": False,
        "mask_estimator_depth": 2,
        "multi_stft_resolution_loss_weight": 1.0,
        "multi_stft_resolutions_window_sizes": [4096, 2048, 1024, 512, 256],
        "multi_stft_hop_size": 147,
        "multi_stft_normalized": False,
    },
    "training": {
        "batch_size": 10,
        "instruments": ["vocals", "other"],
        "target_instrument": "vocals",
    },
    "inference": {"num_overlap": 4},
}


def write_yaml(path, data, tuple_bands: bool = False):
    """Write ``data`` as YAML; ``tuple_bands`` writes freqs_per_bands as ZFTurbo does."""
    text = yaml.safe_dump(data, sort_keys=False)
    if tuple_bands:
        text = text.replace("freqs_per_bands:\n", "freqs_per_bands: !!python/tuple\n")
    path.write_text(text)
    return path


def test_zfturbo_yaml_gives_the_model_config(tmp_path):
    config = config_from_zfturbo(write_yaml(tmp_path / "c.yaml", MUSDB_YAML, tuple_bands=True))
    assert config.stems == ["vocals"]  # target_instrument: one stem
    assert (config.channels, config.n_fft, config.hop_length, config.win_length) == (
        2,
        2048,
        441,
        2048,
    )
    assert config.bands == PAPER_BANDS
    assert (config.dim, config.depth, config.heads, config.head_dim) == (192, 6, 8, 64)
    assert (config.time_transformer_depth, config.band_transformer_depth) == (1, 1)
    assert (config.attn_dropout, config.ff_dropout, config.mask_estimator_depth) == (0.1, 0.1, 2)
    assert (config.mask_norm, config.gates, config.mlp_expansion_factor) == ("final", True, 4)


def test_zfturbo_defaults_are_the_peers():
    config = config_from_zfturbo({"model": {"dim": 16, "depth": 1}})
    assert config.bands == list(bs_roformer.bs_roformer.DEFAULT_FREQS_PER_BANDS)
    assert (config.channels, config.hop_length, config.head_dim) == (1, 512, 64)
    assert (config.time_transformer_depth, config.band_transformer_depth) == (2, 2)


def test_zfturbo_value_of_wrong_type():
    with pytest.raises(BsrError, match="model.dim='wide' should be int"):
        config_from_zfturbo({"model": {**MUSDB_YAML["model"], "dim": "wide"}})


def test_zfturbo_stem_names():
    data = {
        "model": {**MUSDB_YAML["model"], "num_stems": 2},
        "training": {"instruments": ["v", "o"]},
    }
    assert config_from_zfturbo(data).stems == ["v", "o"]
    data = {"model": {**MUSDB_YAML["model"], "num_stems": 3}}
    assert config_from_zfturbo(data).stems == ["stem0", "stem1", "stem2"]


@pytest.mark.parametrize(
    "key, value",
    [("linear_transformer_depth", 1), ("stft_normalized", True), ("skip_connection", True)],
)
def test_zfturbo_unsupported_feature_is_one_line_error(key, value):
    data = {"model": {**MUSDB_YAML["model"], key: value}}
    with pytest.raises(BsrError, match=key) as info:
        config_from_zfturbo(data)
    assert "\n" not in str(info.value)


def test_zfturbo_unknown_model_key_is_refused():
    with pytest.raises(BsrError, match="model.use_mystery"):
        config_from_zfturbo({"model": {**MUSDB_YAML["model"], "use_mystery": True}})


def test_zfturbo_config_round_trip():
    config = community_config(n_fft=2048, hop_length=441, bands="paper", stems=["a", "b"])
    again = config_from_zfturbo(zfturbo_config(config))
    assert again.bands == PAPER_BANDS and again.stems == ["a", "b"]
    assert community_kwargs(again) == community_kwargs(config)


SMALL_YAML = {
    "audio": {"sample_rate": 44100},
    "model": {
        **MUSDB_YAML["model"],
        "dim": 16,
        "depth": 1,
        "heads": 2,
        "dim_head": 8,
        "freqs_per_bands": [4, 12, 48, 64, 129],
        "stft_n_fft": 512,
        "stft_win_length": 512,
        "stft_hop_length": 128,
        "attn_dropout": 0.0,
        "ff_dropout": 0.0,
    },
    "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
}


@pytest.fixture
def community_files(tmp_path):
    """A peer saved as a plain state dict, and its ZFTurbo YAML."""
    yaml_path = write_yaml(tmp_path / "small.yaml", SMALL_YAML, tuple_bands=True)
    reference = peer(config_from_zfturbo(yaml_path))
    ckpt = tmp_path / "small.ckpt"
    torch.save(reference.state_dict(), ckpt)
    return reference, ckpt, yaml_path


def test_load_model_reads_a_community_checkpoint(community_files, tmp_path):
    reference, ckpt, yaml_path = community_files
    model = load_model(ckpt, yaml_path)
    assert not model.training and model.stems == ["vocals"]
    audio = torch.randn(1, 2, 128 * 10)
    with torch.no_grad():
        ours = model(audio)
    assert relative_error(ours, peer_output(reference, audio)) <= 1e-5
    # Wrapped as ZFTurbo's trainer sometimes saves it.
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "wrapped.ckpt")
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "wrapped.ckpt", yaml_path)(audio), ours)


def test_load_model_accepts_a_model_config(community_files):
    _, ckpt, yaml_path = community_files
    model = load_model(ckpt, config_from_zfturbo(yaml_path))
    assert model.config.dim == 16


def test_community_checkpoint_without_config(community_files):
    _, ckpt, _ = community_files
    with pytest.raises(BsrError, match="needs its YAML config: pass --config") as info:
        load_model(ckpt)
    assert "\n" not in str(info.value)


def test_checkpoint_that_does_not_fit_lists_keys_and_shapes(community_files, tmp_path):
    _, ckpt, _ = community_files
    wider = {**SMALL_YAML, "model": {**SMALL_YAML["model"], "dim": 24, "depth": 2}}
    with pytest.raises(BsrError) as info:
        load_model(ckpt, write_yaml(tmp_path / "wider.yaml", wider))
    message = str(info.value)
    first, *rest = message.splitlines()
    assert "does not fit the model config" in first and "missing" in first
    # Reported in the checkpoint's own (community) names, with both shapes.
    assert "band_split.to_features.0.1.weight: checkpoint (16, 16) vs model (24, 16)" in message
    assert any(
        line.strip().startswith("missing: layers.1.0.layers.0.0.to_qkv.weight") for line in rest
    )
    assert "more" in message  # long categories are cut short


def test_rotary_table_is_checked(community_files):
    reference, _, _ = community_files
    state = reference.state_dict()
    key = "layers.0.0.layers.0.0.rotary_embed.freqs"
    config = config_from_zfturbo(SMALL_YAML)
    assert torch.allclose(state[key], rotary_frequencies(8))
    with pytest.raises(BsrError, match="dim_head 4"):
        from_community_state_dict({**state, key: rotary_frequencies(4)}, config)
    with pytest.raises(BsrError, match="non-standard rotary"):
        from_community_state_dict({**state, key: state[key] * 2}, config)


# ---------------------------------------------------------------------------- bsr files


def test_bsr_checkpoint_round_trip(tmp_path):
    config = Config(model=ModelConfig(dim=16, depth=1, heads=2, n_fft=512, hop_length=128))
    model = BSRoformer(config.model).eval()
    save_model(model, tmp_path / "run" / "model.pt", config, extra={"step": 7})
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["model.pt"]  # no temp left
    loaded = load_model(tmp_path / "run" / "model.pt", config="ignored.yaml")
    assert not loaded.training and loaded.config == config.model
    audio = torch.randn(1, 2, 1000)
    with torch.no_grad():
        assert torch.equal(loaded(audio), model(audio))


def test_bare_bsr_state_dict_loads_with_its_config(tmp_path):
    config = community_config(mask_norm="per_band", gates=False)
    model = BSRoformer(config).eval()
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(BsrError, match="bare bsr state dict and needs its YAML config"):
        load_model(tmp_path / "bare.pt")
    loaded = load_model(tmp_path / "bare.pt", config)
    audio = audio_for(config, batch=1)
    with torch.no_grad():
        assert torch.equal(loaded(audio), model(audio))


def test_mismatch_report_for_bsr_keys():
    small = BSRoformer(community_config())
    deeper = BSRoformer(community_config(depth=2))
    with pytest.raises(BsrError, match=r"\(0 wrong shape, 20 missing, 0 unexpected\)") as info:
        load_weights(deeper, small.state_dict(), "x.pt")
    expected = "missing: layers.1.time_transformer.layers.0.attention.norm.gamma (16)"
    assert expected in str(info.value)


def write_corrupt(kind: str, path, tmp_path):
    if kind == "random bytes":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif kind == "truncated":
        whole = tmp_path / "whole.pt"
        save_model(BSRoformer(community_config()), whole)
        path.write_bytes(whole.read_bytes()[:5000])
    elif kind == "text":
        path.write_text("model:\n  dim: 384\n")
    elif kind == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("kind", ["random bytes", "truncated", "text", "empty"])
def test_unreadable_file_is_one_line_error(kind, tmp_path):
    path = tmp_path / "bad.pt"
    write_corrupt(kind, path, tmp_path)
    with pytest.raises(BsrError, match="is not a readable checkpoint") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BsrError, match="not found"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(BsrError, match="is a directory"):
        load_model(tmp_path)


def test_file_without_weights(tmp_path):
    torch.save({"epoch": 3}, tmp_path / "x.pt")
    with pytest.raises(BsrError, match="holds no state dict"):
        load_model(tmp_path / "x.pt", config=community_config())
