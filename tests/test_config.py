import pytest

from bsr.config import ModelConfig, config_from_dict, list_presets, load_config
from bsr.errors import BsrError


def test_presets_load():
    assert {"paper-l6", "paper-l12", "mel-l6", "tiny", "small"} <= set(list_presets())
    config = load_config("paper-l6")
    assert config.model.dim == 384 and config.model.head_dim == 48 and config.model.depth == 6
    assert config.model.hop_length == 441 and config.train.lr == 5e-4


@pytest.mark.parametrize(
    "data,message",
    [
        ({"model": {"dimm": 3}}, "unknown config key 'model.dimm': did you mean 'model.dim'?"),
        ({"model": {"heads": 7}}, "model.heads: 7 heads do not divide dim=384"),
        ({"model": {"bands": [1, 2]}}, "model.bands: the bands cover 3 bins but the STFT has 1025"),
        ({"model": {"dim": "big"}}, "'model.dim' = 'big' should be of type int"),
        ({"model": {"channels": 3}}, "model.channels: must be 1 (mono) or 2 (stereo)"),
        ({"model": {"mask_norm": "layer"}}, "model.mask_norm"),
        ({"model": {"dim_head": 7, "heads": 2}}, "model.dim_head: must be even"),
        ({"train": {"precision": "fp8"}}, "train.precision"),
        ({"optimizer": {}}, "unknown config section 'optimizer'"),
    ],
)
def test_bad_configs_fail_with_one_line(data, message):
    with pytest.raises(BsrError) as info:
        config_from_dict(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(BsrError, match="unknown preset or missing file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(BsrError, match="is a directory"):
        load_config(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(BsrError, match="not valid YAML"):
        load_config(broken)


def test_yaml_file_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  dim: 64\n  heads: 4\n  stems: [vocals, bass]\n")
    config = load_config(path)
    assert config.name == "mine" and config.model.stems == ["vocals", "bass"]
    assert config.model.head_dim == 16
    assert ModelConfig(dim=64, heads=4, stems=["vocals", "bass"]) == config.model
