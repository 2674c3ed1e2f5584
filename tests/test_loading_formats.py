"""Every file format ``bsr.load_model`` reads gives the same model, bit for bit.

Each case builds a small bsr model from fixed seeds, writes it in one format (a bsr
checkpoint, a training state, a bare state dict, lucidrains' BS and Mel-Band layouts with
their keyword arguments, ZFTurbo's YAML + checkpoint for BS and Mel-Band), loads the file
through ``bsr.load_model`` and checks:

* the loaded weights are the written ones, tensor for tensor (``torch.equal``);
* the output for a fixed input equals the source model's bit for bit (same machine);
* the config and separation windows are exactly those recorded in
  ``tests/data/loading_formats.json``, and the output's fingerprint matches the one
  recorded there (to 1e-5 of the peak, as another CPU may round a last bit differently).

The JSON was written by the loading code as it stood before ``bsr/loaders/`` existed
(commit 4b00a1f), with ``python tests/test_loading_formats.py --write``; the cases and
seeds below are the ones that made it. The YAMLs and keyword arguments are written out by
hand, so the files do not depend on bsr's own exporters of configs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # conftest, when run as a script
from conftest import community_config  # noqa: E402

import bsr  # noqa: E402
from bsr.checkpoint import save_model  # noqa: E402
from bsr.community import to_community_state_dict  # noqa: E402
from bsr.config import Config, ModelConfig, TrainConfig  # noqa: E402
from bsr.model import BSRoformer  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "loading_formats.json"
SAMPLES = 4096  # input length: a few STFT frames of every case below
TOLERANCE = 1e-5  # of the output's peak, for the recorded fingerprint only

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def mel_config(**overrides) -> ModelConfig:
    """A small Mel-Band RoFormer in the community layout (16 mel bands, no final norm)."""
    values = dict(bands="mel", num_mel_bands=16, mask_norm="none", output_norm=True)
    return community_config(**{**values, **overrides})


def seeded_model(config: ModelConfig, seed: int) -> BSRoformer:
    """``BSRoformer(config)`` with seeded weights; norms and temperatures randomised too
    (they start at one and zero, where a mix-up of two of them would not show)."""
    torch.manual_seed(seed)
    model = BSRoformer(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("temperature"):
                p.uniform_(-0.5, 0.5)
    return model.eval()


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# Each case: (source model, its file(s) in tmp, the arguments of bsr.load_model). The
# source is the model whose weights the file holds, and whose output the loaded one must
# give; the loaded config may name things differently (stems, bands as a list).


def bsr_checkpoint(tmp: Path):
    """``model.pt`` as training writes it: config with a training segment, EMA weights."""
    model = seeded_model(community_config(stems=["vocals", "drums"]), 1)
    config = Config(model=model.config, train=TrainConfig(segment_seconds=0.25))
    save_model(model, tmp / "model.pt", config)
    return model, (tmp / "model.pt",), {}


def training_state(tmp: Path, weights: str):
    """``last.pt``: raw weights under ``model``, their moving average under ``ema``."""
    raw = seeded_model(community_config(), 2)
    ema = seeded_model(community_config(), 3)
    extra = {"ema": ema.state_dict(), "step": 7}
    save_model(raw, tmp / "last.pt", extra=extra)
    return (ema if weights == "ema" else raw), (tmp / "last.pt",), {"weights": weights}


def bare_bsr_state_dict(tmp: Path):
    """``torch.save(model.state_dict())`` of a bsr model: bsr's names, config given."""
    model = seeded_model(community_config(), 4)
    torch.save(model.state_dict(), tmp / "bare.pt")
    return model, (tmp / "bare.pt",), {"config": community_config()}


def lucidrains_bs(tmp: Path):
    """lucidrains' BSRoformer: its state dict and the keyword arguments that built it."""
    model = seeded_model(community_config(), 5)
    torch.save(to_community_state_dict(model, layout="lucidrains"), tmp / "bs.ckpt")
    kwargs = dict(dim=16, depth=1, stereo=True, num_stems=1, time_transformer_depth=1,
                  freq_transformer_depth=1, freqs_per_bands=(4, 12, 48, 64, 129), dim_head=8,
                  heads=2, attn_dropout=0.0, ff_dropout=0.0, stft_n_fft=512,
                  stft_hop_length=128, stft_win_length=512, mask_estimator_depth=2)  # fmt: skip
    return model, (tmp / "bs.ckpt",), {"config": kwargs}


def lucidrains_mel(tmp: Path):
    """lucidrains' MelBandRoformer without linear attention: slot 0 of each block empty."""
    model = seeded_model(mel_config(stems=["vocals", "other"]), 6)
    torch.save(to_community_state_dict(model, layout="lucidrains"), tmp / "mel.ckpt")
    kwargs = dict(dim=16, depth=1, stereo=True, num_stems=2, time_transformer_depth=1,
                  freq_transformer_depth=1, num_bands=16, sample_rate=44100, dim_head=8,
                  heads=2, attn_dropout=0.0, ff_dropout=0.0, stft_n_fft=512,
                  stft_hop_length=128, stft_win_length=512, mask_estimator_depth=1,
                  linear_transformer_depth=0)  # fmt: skip
    return model, (tmp / "mel.ckpt",), {"config": kwargs}


ZF_NETWORK = dict(dim=16, depth=1, stereo=True, time_transformer_depth=1,
                  freq_transformer_depth=1, dim_head=8, heads=2, attn_dropout=0.0,
                  ff_dropout=0.0, stft_n_fft=512, stft_hop_length=128,
                  stft_win_length=512)  # fmt: skip
BANDS = [4, 12, 48, 64, 129]  # community_config's bands, as freqs_per_bands


def zfturbo_bs(tmp: Path):
    """MSST's bs_roformer: a YAML file, the weights under ``state_dict``; zero_dc by default."""
    model = seeded_model(community_config(zero_dc=True), 7)
    torch.save({"state_dict": to_community_state_dict(model)}, tmp / "bs.ckpt")
    data = {
        "audio": {"chunk_size": 8192, "sample_rate": 44100},
        "model": {**ZF_NETWORK, "num_stems": 1, "freqs_per_bands": BANDS, "flash_attn": True},
        "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
        "inference": {"num_overlap": 4},
    }
    return model, (tmp / "bs.ckpt",), {"config": write_yaml(tmp / "bs.yaml", data)}


def zfturbo_bs_msst_options(tmp: Path):
    """MSST's options (linear attention, skip connections, a 2x mask MLP), as a parsed
    mapping; no chunk_size, so no separation windows."""
    options = dict(linear_transformer_depth=1, skip_connection=True, mlp_expansion_factor=2)
    config = community_config(stems=["bass", "drums"], depth=2, zero_dc=True, **options)
    model = seeded_model(config, 8)
    torch.save(to_community_state_dict(model), tmp / "msst.ckpt")
    data = {
        "model": {**ZF_NETWORK, "depth": 2, "num_stems": 2, "freqs_per_bands": BANDS, **options},
        "training": {"instruments": ["bass", "drums"]},
    }
    return model, (tmp / "msst.ckpt",), {"config": data}


def zfturbo_mel(tmp: Path):
    """MSST's mel_band_roformer: DataParallel's ``module.`` prefix, under ``state_dict``."""
    model = seeded_model(mel_config(zero_dc=True), 9)
    weights = {f"module.{k}": v for k, v in to_community_state_dict(model).items()}
    torch.save({"state_dict": weights, "epoch": 3}, tmp / "mel.ckpt")
    data = {
        "audio": {"chunk_size": 4096, "sample_rate": 44100},
        "model": {**ZF_NETWORK, "num_stems": 1, "num_bands": 16, "mask_estimator_depth": 1},
        "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
        "inference": {"num_overlap": 2},
    }
    return model, (tmp / "mel.ckpt",), {"config": write_yaml(tmp / "mel.yaml", data)}


def zfturbo_mel_silent_yaml(tmp: Path):
    """A YAML that names neither model: the weights (norms closing each transformer) say
    Mel-Band; every size the YAML leaves out takes the Mel-Band code's default."""
    config = mel_config(stems=["stem0"], num_mel_bands=60, n_fft=2048, hop_length=512,
                        zero_dc=True, attn_dropout=0.1, ff_dropout=0.1)  # fmt: skip
    model = seeded_model(config, 10)
    torch.save(to_community_state_dict(model), tmp / "mel.ckpt")
    data = {"model": {"dim": 16, "depth": 1, "stereo": True, "heads": 2, "dim_head": 8,
                      "time_transformer_depth": 1, "freq_transformer_depth": 1}}  # fmt: skip
    return model, (tmp / "mel.ckpt",), {"config": write_yaml(tmp / "silent.yaml", data)}


def shipped_course(tmp: Path):
    """The shipped course model, by name: half-precision weights, loaded as float32."""
    from bsr.config import config_from_dict
    from bsr.hub import shipped_path

    payload = torch.load(shipped_path("course"), map_location="cpu", weights_only=True)
    model = BSRoformer(config_from_dict({"model": payload["config"]["model"]}).model)
    model.load_state_dict(payload["model"])
    return model.float().eval(), ("course",), {}


CASES = {
    "bsr-checkpoint": bsr_checkpoint,
    "bsr-training-state-ema": lambda tmp: training_state(tmp, "ema"),
    "bsr-training-state-raw": lambda tmp: training_state(tmp, "raw"),
    "bsr-bare-state-dict": bare_bsr_state_dict,
    "lucidrains-bs-roformer": lucidrains_bs,
    "lucidrains-mel-band-roformer": lucidrains_mel,
    "zfturbo-bs-roformer-yaml": zfturbo_bs,
    "zfturbo-bs-roformer-msst-options": zfturbo_bs_msst_options,
    "zfturbo-mel-band-roformer-yaml": zfturbo_mel,
    "zfturbo-mel-band-roformer-silent-yaml": zfturbo_mel_silent_yaml,
    "shipped-course": shipped_course,
}


def fixed_input(channels: int) -> torch.Tensor:
    """``(1, channels, SAMPLES)`` of seeded noise, the same for every case."""
    generator = torch.Generator().manual_seed(2024)
    return torch.randn(1, channels, SAMPLES, generator=generator)


def fingerprint(output: torch.Tensor) -> dict:
    """A few numbers that pin the output down: its shape, sums, peak and 8 samples."""
    flat = output.double().flatten()
    picks = torch.linspace(0, flat.numel() - 1, 8).long()
    return {
        "shape": list(output.shape),
        "sum": flat.sum().item(),
        "abs_sum": flat.abs().sum().item(),
        "peak": flat.abs().max().item(),
        "samples": flat[picks].tolist(),
    }


def load_case(name: str, tmp: Path):
    """The source model, the loaded one, and both outputs for the fixed input."""
    source, args, kwargs = CASES[name](tmp)
    loaded = bsr.load_model(*args, **kwargs)
    audio = fixed_input(source.config.channels)
    with torch.no_grad():
        return source, loaded, source(audio), loaded(audio)


def record(loaded: BSRoformer, output: torch.Tensor) -> dict:
    return {
        "config": dataclasses.asdict(loaded.config),
        "separation_defaults": loaded.separation_defaults,
        "output": fingerprint(output),
    }


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", CASES)
def test_each_format_loads_bit_for_bit(name, tmp_path, reference):
    source, loaded, expected, output = load_case(name, tmp_path)
    assert type(loaded) is BSRoformer and not loaded.training
    theirs, ours = source.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        assert value.dtype == torch.float32, key
        assert torch.equal(value, theirs[key]), key
    assert torch.equal(output, expected)
    # As the loading code before the split into bsr/loaders/ read the same file.
    recorded = reference[name]
    assert dataclasses.asdict(loaded.config) == recorded["config"]
    assert loaded.separation_defaults == recorded["separation_defaults"]
    now, then = fingerprint(output), recorded["output"]
    assert now["shape"] == then["shape"]
    scale = then["peak"]
    for a, b in zip(now["samples"], then["samples"]):
        assert abs(a - b) <= TOLERANCE * scale
    assert abs(now["peak"] - then["peak"]) <= TOLERANCE * scale
    assert abs(now["sum"] - then["sum"]) <= TOLERANCE * then["abs_sum"]
    assert abs(now["abs_sum"] - then["abs_sum"]) <= TOLERANCE * then["abs_sum"]


@pytest.mark.parametrize(
    ("name", "peer"),
    [("lucidrains-bs-roformer", "BSRoformer"), ("lucidrains-mel-band-roformer", "MelBandRoformer")],
)
def test_the_lucidrains_files_are_what_lucidrains_code_saves(name, peer, tmp_path):
    """The same keys and shapes as bs-roformer 0.4.1's own model built from the same
    keyword arguments (so the files above are the real layout, empty slot included)."""
    bs_roformer = pytest.importorskip("bs_roformer")
    _, (path,), kwargs = CASES[name](tmp_path)
    theirs = getattr(bs_roformer, peer)(**kwargs["config"]).state_dict()
    ours = torch.load(path, weights_only=True)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_the_reference_covers_every_case(reference):
    assert set(reference) == set(CASES)


def write_reference() -> None:
    """Load every case with the current code and record what it gives (run once)."""
    import tempfile

    result = {}
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            _, loaded, _, output = load_case(name, Path(tmp))
            result[name] = record(loaded, output)
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_loading_formats.py --write")
    write_reference()
