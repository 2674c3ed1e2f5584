"""Mel-Band RoFormer community checkpoints: lucidrains' MelBandRoformer (bs-roformer 0.4.1)
and ZFTurbo's mel_band_roformer. Same weights, same output; their key layouts; their YAML."""

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

from bsr import BsrError, BSRoformer
from bsr.checkpoint import export_community, load_model, load_weights
from bsr.community import (
    block_positions,
    community_kwargs,
    config_from_lucidrains,
    config_from_zfturbo,
    from_community_state_dict,
    load_zfturbo,
    to_community_state_dict,
    weights_model_type,
    zfturbo_config,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def mel_config(**overrides):
    """A small Mel-Band RoFormer in the community layout: a norm closing every transformer,
    no final norm, gates, 16 mel bands."""
    values = dict(bands="mel", num_mel_bands=16, mask_norm="none", output_norm=True)
    return community_config(**{**values, **overrides})


# mono/stereo, 1-4 stems, mask MLPs of 1-3 hidden layers (bsr depth 2-4), linear
# transformer off/on, hop 128/441/512, a normalised STFT with another window.
CASES = {
    "stereo-1stem-hidden1-no-linear": dict(),
    "mono-2stems-hidden2-linear1-hop441": dict(
        channels=1, stems=["a", "b"], mask_estimator_depth=3, linear_transformer_depth=1,
        n_fft=2048, hop_length=441, num_mel_bands=24,
    ),
    "stereo-4stems-hidden3-linear2-hop512": dict(
        stems=["a", "b", "c", "d"], mask_estimator_depth=4, linear_transformer_depth=2,
        n_fft=1024, hop_length=512, depth=2,
    ),
    "stereo-3stems-normalized-hamming": dict(
        stems=["a", "b", "c"], stft_normalized=True, stft_window="hamming", depth=2
    ),
}  # fmt: skip


@pytest.mark.parametrize("zero_dc", [False, True], ids=["dc-kept", "zero-dc"])
@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_mel_band_weights_give_the_peers_output(overrides, zero_dc):
    config = mel_config(**overrides, zero_dc=zero_dc)
    reference = peer(config)
    assert isinstance(reference, bs_roformer.MelBandRoformer)
    assert_gives_the_peers_output(config, reference, zero_dc)


def test_mask_estimator_depth_counts_hidden_layers_in_the_mel_band_code():
    yaml_config = {"model": {"dim": 16, "depth": 1, "num_bands": 8, "mask_estimator_depth": 2}}
    config = config_from_zfturbo(yaml_config)
    assert config.mask_estimator_depth == 3  # Linear, Tanh, Linear, Tanh, Linear
    assert community_kwargs(dataclasses.replace(config, zero_dc=False))["mask_estimator_depth"] == 2
    state = peer(dataclasses.replace(config, zero_dc=False)).state_dict()
    linears = {k for k in state if k.startswith("mask_estimators.0.to_freqs.0.0.")}
    assert {k.split(".")[5] for k in linears} == {"0", "2", "4"}  # three Linear layers
    # The BS code counts Linear layers, as bsr does.
    assert config_from_zfturbo({"model": {"dim": 16, "depth": 1, "mask_estimator_depth": 2}})\
        .mask_estimator_depth == 2  # fmt: skip


# ---------------------------------------------------------------------------- key layouts


def test_block_layouts_of_the_two_codes():
    """lucidrains keeps slot 0 for the linear transformer; ZFTurbo numbers from 0."""
    with_linear = mel_config(linear_transformer_depth=1)
    without = mel_config()
    lucidrains = peer(without).state_dict()
    assert any(k.startswith("layers.0.2.") for k in lucidrains)
    assert not any(k.startswith("layers.0.0.") for k in lucidrains)
    assert block_positions(lucidrains) == {"1": "time", "2": "band"}
    assert block_positions(peer(with_linear).state_dict()) == {
        "0": "linear",
        "1": "time",
        "2": "band",
    }
    zfturbo = to_community_state_dict(BSRoformer(without))
    assert block_positions(zfturbo) == {"0": "time", "1": "band"}
    assert not any(k.startswith("layers.0.2.") for k in zfturbo)


def test_zfturbo_layout_loads_and_lucidrains_layout_loads_into_the_peer(tmp_path):
    config = mel_config(stems=["vocals", "other"])
    model = BSRoformer(config).eval()
    # ZFTurbo's layout (what MSST saves) comes back into bsr unchanged.
    again = BSRoformer(config).eval()
    load_weights(again, from_community_state_dict(to_community_state_dict(model), config), "x")
    # lucidrains' layout loads strictly into MelBandRoformer 0.4.1, rotary tables included.
    reference = bs_roformer.MelBandRoformer(**community_kwargs(config)).eval()
    reference.load_state_dict(to_community_state_dict(model, layout="lucidrains"))
    audio = audio_for(config, hops=8)
    with torch.no_grad():
        ours = model(audio)
        assert torch.equal(again(audio), ours)
    assert peak_error(ours, peer_output(reference, audio)) <= TOLERANCE


MSST_CASES = {
    "skip-mlp2": dict(skip_connection=True, mlp_expansion_factor=2, depth=3),
    "linear1-skip-zero-dc-2stems": dict(
        linear_transformer_depth=1, skip_connection=True, zero_dc=True, stems=["a", "b"], depth=2
    ),
}


@pytest.mark.parametrize("overrides", MSST_CASES.values(), ids=MSST_CASES.keys())
def test_zfturbo_mel_band_options_give_the_reference_output(overrides):
    config = mel_config(**overrides)
    reference = msst_reference(config)
    state = reference.state_dict()  # ZFTurbo's layout: no empty slot
    assert block_positions(state) == block_positions((), config.linear_transformer_depth > 0)
    model = BSRoformer(config).eval()
    load_weights(model, from_community_state_dict(state, config), "reference")
    audio = audio_for(config)
    with torch.no_grad():
        assert peak_error(model(audio), reference(audio)) <= TOLERANCE


def test_mel_reference_equals_the_peer_without_new_options():
    assert_reference_is_the_peer(mel_config(stems=["a", "b"], depth=2))


# ---------------------------------------------------------------------------- configs


def small_yaml(**model):
    """A ZFTurbo Mel-Band YAML (KJ's layout) at toy sizes."""
    return {
        "audio": {"chunk_size": 4096, "sample_rate": 44100},
        "model": {
            "dim": 16, "depth": 1, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
            "freq_transformer_depth": 1, "num_bands": 16, "dim_head": 8, "heads": 2,
            "attn_dropout": 0, "ff_dropout": 0, "flash_attn": True, "dim_freqs_in": 257,
            "sample_rate": 44100, "stft_n_fft": 512, "stft_hop_length": 128,
            "stft_win_length": 512, "stft_normalized": False, "mask_estimator_depth": 2,
            "match_input_audio_length": True, **model,
        },
        "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
        "inference": {"num_overlap": 4},
    }  # fmt: skip


def test_zfturbo_mel_band_yaml(tmp_path):
    path = tmp_path / "kj.yaml"
    path.write_text(yaml.safe_dump(small_yaml()))
    found = load_zfturbo(path)
    config = found.model
    assert found.model_type == "mel_band_roformer"
    assert (config.bands, config.num_mel_bands, config.mask_norm, config.output_norm) == (
        "mel", 16, "none", True,
    )  # fmt: skip
    assert (config.mask_estimator_depth, config.linear_transformer_depth) == (3, 0)
    assert config.zero_dc and config.stems == ["vocals"]
    assert found.separation == {"window": 4096, "hop": 1024}
    assert [n.split()[0] for n in found.notes] == ["model.flash_attn"]
    # Written back out: the same network again.
    assert config_from_zfturbo(zfturbo_config(config)) == config


def test_lucidrains_mel_band_defaults():
    """bs-roformer 0.4.1's MelBandRoformer: one linear-attention layer per block, no zero_dc."""
    config = config_from_lucidrains({"dim": 16, "depth": 1, "num_bands": 8})
    assert (config.linear_transformer_depth, config.zero_dc) == (1, False)
    assert (config.mask_estimator_depth, config.attn_dropout) == (2, 0.1)


def test_model_type_from_the_yaml_or_the_weights(tmp_path):
    assert weights_model_type(peer(mel_config()).state_dict()) == "mel_band_roformer"
    assert weights_model_type(peer(community_config()).state_dict()) == "bs_roformer"
    # A YAML that names neither num_bands nor freqs_per_bands: the weights decide.
    config = mel_config(num_mel_bands=60, n_fft=2048, hop_length=512, stems=["stem0"])
    reference = peer(config)
    torch.save(reference.state_dict(), tmp_path / "mel.ckpt")
    silent = {"model": {"dim": 16, "depth": 1, "stereo": True, "heads": 2, "dim_head": 8,
                        "time_transformer_depth": 1, "freq_transformer_depth": 1}}  # fmt: skip
    (tmp_path / "silent.yaml").write_text(yaml.safe_dump(silent))
    model = load_model(tmp_path / "mel.ckpt", tmp_path / "silent.yaml")
    assert model.config.bands == "mel" and model.config.zero_dc
    audio = audio_for(config, batch=1)
    with torch.no_grad():
        assert peak_error(model(audio), peer_output(reference, audio, zero_dc=True)) <= TOLERANCE
    # Without weights, a silent YAML is a BS-RoFormer, unless it names its model_type.
    assert config_from_zfturbo(silent).bands != "mel"
    named = {**silent, "training": {"model_type": "mel_band_roformer"}}
    assert config_from_zfturbo(named).bands == "mel"


def test_weights_that_disagree_with_the_yaml_are_one_line_error(tmp_path):
    reference = peer(mel_config())
    torch.save(reference.state_dict(), tmp_path / "mel.ckpt")
    bs_yaml = {"model": {"dim": 16, "depth": 1, "freqs_per_bands": [4, 12, 48, 64, 129]}}
    path = tmp_path / "bs.yaml"
    path.write_text(yaml.safe_dump(bs_yaml))
    with pytest.raises(BsrError, match="holds a Mel-Band RoFormer .* describes a BS-RoFormer"):
        load_model(tmp_path / "mel.ckpt", path)
    with pytest.raises(BsrError, match="mel_band_roformer but the config describes a bs_roformer"):
        load_model(tmp_path / "mel.ckpt", community_config())


def test_load_model_reads_a_mel_band_checkpoint_with_its_yaml(tmp_path):
    path = tmp_path / "kj.yaml"
    path.write_text(yaml.safe_dump(small_yaml()))
    config = config_from_zfturbo(path)
    reference = peer(config)
    torch.save(reference.state_dict(), tmp_path / "kj.ckpt")
    model = load_model(tmp_path / "kj.ckpt", path)
    assert model.separation_defaults == {"window": 4096, "hop": 1024}
    audio = audio_for(config, batch=1)
    with torch.no_grad():
        ours = model(audio)
    assert peak_error(ours, peer_output(reference, audio, zero_dc=True)) <= TOLERANCE


def test_mel_band_sample_rates_must_agree():
    data = small_yaml(sample_rate=48000)
    with pytest.raises(BsrError, match="model.sample_rate=48000 .* differs from audio"):
        config_from_zfturbo(data)
    del data["audio"]["sample_rate"]
    assert config_from_zfturbo(data).sample_rate == 48000  # the mel filterbank's rate


def test_export_of_a_mel_band_model_with_its_yaml(tmp_path):
    config = mel_config(stems=["vocals", "other"], linear_transformer_depth=1, zero_dc=True)
    model = BSRoformer(config).eval()
    export_community(model, tmp_path / "m.ckpt", tmp_path / "m.yaml")
    loaded = load_model(tmp_path / "m.ckpt", tmp_path / "m.yaml")
    audio = audio_for(config, batch=1)
    with torch.no_grad():
        assert torch.equal(loaded(audio), model(audio))
    with pytest.raises(BsrError, match="mask_norm='per_band' in the community Mel-Band"):
        to_community_state_dict(BSRoformer(mel_config(mask_norm="per_band")))
