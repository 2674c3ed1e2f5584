"""bsr against the community's BS-RoFormer: same weights, same outputs; ZFTurbo configs;
bsr checkpoints; and the errors a user meets when a file or config is wrong."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml
from community_peers import (
    TOLERANCE,
    assert_gives_the_peers_output,
    assert_reference_is_the_peer,
    audio_for,
    bs_roformer,
    msst_reference,
    peak_error,
    peer,
    peer_output,
)
from conftest import community_config

from bsr import BsrError, BSRoformer, Config, ModelConfig
from bsr.checkpoint import (
    WEIGHT_KEYS,
    export_community,
    load_model,
    load_weights,
    save_model,
)
from bsr.community import (
    community_kwargs,
    config_from_lucidrains,
    config_from_zfturbo,
    from_community_state_dict,
    load_zfturbo,
    rotary_frequencies,
    separation_defaults,
    to_community_state_dict,
    zfturbo_config,
)

# The peer warns about its STFT window check and torch's deprecated sdp_kernel context.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

PAPER_BANDS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def same_network(a: ModelConfig, b: ModelConfig) -> bool:
    """Equal configs once "paper" bands, "as n_fft" and "dim // heads" are resolved."""

    def resolved(c: ModelConfig) -> ModelConfig:
        bands = c.bands if c.bands == "mel" else list(BSRoformer(c).layout.sizes)
        return dataclasses.replace(
            c, win_length=c.win_length or c.n_fft, dim_head=c.head_dim, bands=bands
        )

    return resolved(a) == resolved(b)


# BS-RoFormer cases against bs-roformer 0.4.1: mono/stereo, 1-4 stems, mask MLP depth 1-3,
# hop 128/441/512/96, paper and custom bands, a normalised STFT with another window.
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
    "stereo-3stems-normalized-hamming": dict(
        stems=["a", "b", "c"], stft_normalized=True, stft_window="hamming"
    ),
}


@pytest.mark.parametrize("zero_dc", [False, True], ids=["dc-kept", "zero-dc"])
@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_community_weights_give_the_peers_output(overrides, zero_dc):
    config = community_config(**overrides, zero_dc=zero_dc)
    assert_gives_the_peers_output(config, peer(config), zero_dc)


def test_zero_dc_removes_only_the_lowest_frequencies():
    """The option must matter (else the test above proves nothing), and only near 0 Hz."""
    config = community_config(stems=["a", "b"])
    kept = BSRoformer(config).eval()
    zeroed = BSRoformer(dataclasses.replace(config, zero_dc=True)).eval()
    zeroed.load_state_dict(kept.state_dict())  # same weights: zero_dc adds no parameters
    audio = audio_for(config, batch=1) + 0.5  # an offset: a strong DC component
    with torch.no_grad():
        removed = kept(audio) - zeroed(audio)
    assert removed.abs().max() > 1e-3 * kept(audio).abs().max()
    # What zero_dc took away is the DC bin through the synthesis window: bins 0 and 1.
    power = kept.stft(removed).abs().pow(2)[..., 2:-2]  # (batch, stems, C, F, T), inner frames
    assert power[..., :2, :].sum() > 0.999 * power.sum()


# ZFTurbo's current code has options bs-roformer 0.4.1 does not: checked against
# MsstReference, ZFTurbo's forward assembled from 0.4.1's modules.
MSST_CASES = {
    "linear1-mono": dict(linear_transformer_depth=1, channels=1),
    "linear2-skip-4stems": dict(
        linear_transformer_depth=2, skip_connection=True, stems=["a", "b", "c", "d"], depth=3
    ),
    "skip-mlp2-hop441": dict(
        skip_connection=True, mlp_expansion_factor=2, depth=3, n_fft=2048, hop_length=441,
        bands="paper",
    ),
    "mlp3-zero-dc-mask3": dict(mlp_expansion_factor=3, zero_dc=True, mask_estimator_depth=3),
}  # fmt: skip


@pytest.mark.parametrize("overrides", MSST_CASES.values(), ids=MSST_CASES.keys())
def test_zfturbo_options_give_the_reference_output(overrides):
    config = community_config(**overrides)
    reference = msst_reference(config)
    model = BSRoformer(config).eval()
    state = from_community_state_dict(reference.state_dict(), config)  # ZFTurbo's key layout
    load_weights(model, state, "reference")
    audio = audio_for(config)
    with torch.no_grad():
        ours, theirs = model(audio), reference(audio)
    assert peak_error(ours, theirs) <= TOLERANCE


def test_reference_equals_the_peer_without_new_options():
    """MsstReference is only trusted because, with no new option, it is the peer itself."""
    assert_reference_is_the_peer(community_config(stems=["a", "b"], depth=2))


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
    assert config.zero_dc  # the YAML does not name it: ZFTurbo's current default, on
    assert load_zfturbo(MUSDB_YAML).separation == {"window": 131584, "hop": 131584 // 4}


def test_zfturbo_defaults_are_the_peers():
    config = config_from_zfturbo({"model": {"dim": 16, "depth": 1}})
    assert config.bands == list(bs_roformer.bs_roformer.DEFAULT_FREQS_PER_BANDS)
    assert (config.channels, config.hop_length, config.head_dim) == (1, 512, 64)
    assert (config.time_transformer_depth, config.band_transformer_depth) == (2, 2)
    assert (
        config.zero_dc
        and not config_from_zfturbo({"model": {"dim": 16, "depth": 1, "zero_dc": False}}).zero_dc
    )


def test_zfturbo_current_options_are_read():
    data = {
        "model": {
            **MUSDB_YAML["model"],
            "mlp_expansion_factor": 2,
            "skip_connection": True,
            "linear_transformer_depth": 1,
            "stft_normalized": True,
            "stft_window_fn": "torch.hamming_window",  # as !!python/name: reads it
        }
    }
    config = config_from_zfturbo(data)
    assert (config.mlp_expansion_factor, config.skip_connection) == (2, True)
    assert (config.linear_transformer_depth, config.stft_normalized) == (1, True)
    assert config.stft_window == "hamming"


def test_zfturbo_python_name_tag_is_read_as_text(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(
        "model:\n  dim: 16\n  depth: 1\n  stft_window_fn: !!python/name:torch.blackman_window\n"
    )
    assert config_from_zfturbo(path).stft_window == "blackman"
    path.write_text("model:\n  dim: 16\n  depth: 1\n  stft_window_fn: !!python/name:os.system\n")
    with pytest.raises(BsrError, match="stft_window_fn='os.system' is not a window"):
        config_from_zfturbo(path)


def test_speed_only_keys_are_accepted_with_a_note():
    data = {"model": {**MUSDB_YAML["model"], "sage_attention": True, "use_torch_checkpoint": True}}
    found = load_zfturbo(data)
    assert found.model == config_from_zfturbo({"model": MUSDB_YAML["model"]})  # same network
    assert sorted(n.split()[0] for n in found.notes) == [
        "model.flash_attn",
        "model.sage_attention",
        "model.use_torch_checkpoint",
    ]
    assert all("ignored" in note for note in found.notes)


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
    "key, value, message",
    [
        ("num_residual_streams", 4, "is hyper-connections: several residual streams"),
        ("add_value_residual", True, "is value residual learning"),
        ("num_bands", 60, "model.freqs_per_bands .BS-RoFormer. and model.num_bands"),
        ("stft_window_fn", "torch.kaiser_window", "is not a window bsr knows"),
    ],
)
def test_zfturbo_unsupported_feature_is_one_line_error(key, value, message):
    data = {"model": {**MUSDB_YAML["model"], key: value}}
    with pytest.raises(BsrError, match=message) as info:
        config_from_zfturbo(data)
    assert "\n" not in str(info.value)
    if key in ("num_residual_streams", "add_value_residual"):  # the plain value loads
        plain = {"num_residual_streams": 1, "add_value_residual": False}[key]
        config_from_zfturbo({"model": {**MUSDB_YAML["model"], key: plain}})


def test_zfturbo_unknown_model_key_is_refused():
    with pytest.raises(BsrError, match="model.use_mystery") as info:
        config_from_zfturbo({"model": {**MUSDB_YAML["model"], "use_mystery": True}})
    assert "\n" not in str(info.value)


def test_zfturbo_model_type_is_checked():
    with pytest.raises(BsrError, match="model_type 'htdemucs': bsr loads only"):
        config_from_zfturbo({**MUSDB_YAML, "training": {"model_type": "htdemucs"}})
    with pytest.raises(BsrError, match="freqs_per_bands belongs to a bs_roformer"):
        config_from_zfturbo({**MUSDB_YAML, "model_type": "mel_band_roformer"})


def test_zfturbo_separation_windows():
    inference = {"chunk_size": 882000, "num_overlap": 3}
    assert separation_defaults({"audio": {"chunk_size": 441000}, "inference": inference}) == {
        "window": 882000,
        "hop": 294000,
    }
    assert separation_defaults({"audio": {"chunk_size": 1000}}) == {"window": 1000, "hop": 500}
    assert separation_defaults({"audio": {}}) is None
    with pytest.raises(BsrError, match="inference.num_overlap=0 should be a positive integer"):
        separation_defaults({"audio": {"chunk_size": 1000}, "inference": {"num_overlap": 0}})


def test_zfturbo_config_round_trip():
    config = community_config(n_fft=2048, hop_length=441, bands="paper", stems=["a", "b"])
    again = config_from_zfturbo(zfturbo_config(config))
    assert again.bands == PAPER_BANDS and again.stems == ["a", "b"]
    assert community_kwargs(again) == community_kwargs(config)
    assert same_network(again, config)  # zero_dc: false is written out, and survives
    msst = community_config(linear_transformer_depth=1, skip_connection=True, zero_dc=True)
    assert same_network(config_from_zfturbo(zfturbo_config(msst)), msst)


def test_lucidrains_keyword_arguments():
    kwargs = {**community_kwargs(community_config()), "stft_window_fn": None}
    config = config_from_lucidrains(kwargs, stems=["vocals"])
    assert same_network(config, community_config())  # no zero_dc: 0.4.1 has none
    assert not config_from_lucidrains({"dim": 8, "depth": 1}).zero_dc
    hamming = {"dim": 8, "depth": 1, "stft_window_fn": torch.hamming_window}
    assert config_from_lucidrains(hamming).stft_window == "hamming"


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
    assert model.config.zero_dc  # the YAML does not name it: on, as ZFTurbo's code runs it
    audio = torch.randn(1, 2, 128 * 10)
    with torch.no_grad():
        ours = model(audio)
    assert peak_error(ours, peer_output(reference, audio, zero_dc=True)) <= TOLERANCE
    # Wrapped as ZFTurbo's and other trainers save it, or from inside DataParallel.
    module = {f"module.{k}": v for k, v in reference.state_dict().items()}
    for key, weights in [*((key, reference.state_dict()) for key in WEIGHT_KEYS), (None, module)]:
        torch.save({key: weights, "epoch": 3} if key else weights, tmp_path / "wrapped.ckpt")
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


# ---------------------------------------------------------------------------- bsr's own model


def test_community_options_train_every_parameter():
    """The new modules are part of the model proper: gradients reach all of them."""
    config = community_config(
        bands="mel", num_mel_bands=8, mask_norm="none", output_norm=True, depth=2,
        linear_transformer_depth=1, skip_connection=True, zero_dc=True, stft_normalized=True,
        stft_window="blackman",
    )  # fmt: skip
    model = BSRoformer(config).train()
    model(audio_for(config, batch=1)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_options_off_keep_the_shipped_state_dict_keys():
    """bsr's presets keep every key they had (the shipped weights and running trainings)."""
    from bsr.hub import shipped_path

    model = BSRoformer(Config().model)  # the paper's L=6 model
    assert not any("linear_transformer" in k or k.endswith("_transformer.norm.gamma")
                   for k in model.state_dict())  # fmt: skip
    stored = torch.load(shipped_path("course"), weights_only=True)["model"]
    course = load_model(shipped_path("course"))
    assert set(course.state_dict()) == set(stored)
    assert not course.config.zero_dc and course.config.mask_norm != "none"


def test_skip_connections_survive_activation_checkpointing():
    """Checkpointing replays each block in the backward pass: with the same earlier outputs."""
    config = community_config(skip_connection=True, depth=3, linear_transformer_depth=1)
    model = BSRoformer(config).train()  # no dropout in community_config: deterministic
    audio = audio_for(config, batch=1)
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        model.activation_checkpointing = checkpointing
        model(audio).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*grads))
