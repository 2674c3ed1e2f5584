"""ZFTurbo's published RoFormer configs, transcribed into tests/msst_configs/ (the numbers
are the publisher's): every one loads, and three run at their real sizes.

The real-size checks build each network twice (bsr's and the peer's, random weights, about
130-230M parameters each) and run a short input through both: the outputs must agree within
1e-4 of their peak, and the parameter counts exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from community_peers import TOLERANCE, MsstReference, peak_error, peer, peer_output

from bsr import BSRoformer, count_parameters
from bsr.community import from_community_state_dict, load_zfturbo

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

CONFIGS = Path(__file__).parent / "msst_configs"

# file: (model type, dim, depth, stems, hop, bsr mask depth, mlp factor, window, hop samples)
FACTS = {
    "model_bs_roformer_ep_317_sdr_12.9755.yaml": ("bs", 512, 12, 1, 441, 2, 4, 352800, 176400),
    "model_bs_roformer_ep_937_sdr_10.5309.yaml": ("bs", 384, 12, 1, 512, 2, 4, 131584, 65792),
    "config_musdb18_bs_roformer_384_8_2_485100_sage.yaml": (
        "bs", 384, 8, 4, 441, 2, 2, 485100, 242550,
    ),
    "config_musdb18_bs_roformer_with_lora.yaml": ("bs", 384, 8, 4, 441, 2, 2, 485100, 242550),
    "config_musdb18_bs_roformer.yaml": ("bs", 192, 6, 1, 512, 2, 4, 131584, 32896),
    "config_vocals_bs_roformer.yaml": ("bs", 192, 6, 1, 512, 2, 4, 131584, 32896),
    "mvsep_mega_model_bs_roformer_53_stems.yaml": ("bs", 256, 12, 53, 512, 2, 2, 882000, 441000),
    "config_vocals_mel_band_roformer_kj.yaml": ("mel", 384, 6, 1, 441, 3, 4, 352800, 176400),
    "model_mel_band_roformer_ep_3005_sdr_11.4360.yaml": (
        "mel", 384, 12, 1, 441, 3, 4, 352800, 176400,
    ),
    "config_vocals_mel_band_roformer.yaml": ("mel", 192, 8, 1, 512, 3, 4, 131584, 32896),
    "config_musdb18_mel_band_roformer.yaml": ("mel", 192, 8, 1, 512, 3, 4, 131584, 32896),
    "config_mel_band_roformer_musdb18.yaml": ("mel", 192, 8, 1, 512, 3, 4, 131584, 32896),
    "config_musdb18_mel_band_roformer_all_stems.yaml": (
        "mel", 384, 6, 4, 441, 3, 4, 352800, 176400,
    ),
    "config_musdb18_mel_band_roformer_sage.yaml": ("mel", 384, 6, 4, 441, 3, 2, 352800, 176400),
}  # fmt: skip


def test_every_transcribed_config_has_its_facts():
    assert sorted(FACTS) == sorted(p.name for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("name", FACTS)
def test_msst_config_loads(name):
    kind, dim, depth, stems, hop, mask, mlp, window, step = FACTS[name]
    found = load_zfturbo(CONFIGS / name)
    config = found.model
    assert found.model_type == {"bs": "bs_roformer", "mel": "mel_band_roformer"}[kind]
    assert (config.dim, config.depth, len(config.stems), config.hop_length) == (
        dim, depth, stems, hop,
    )  # fmt: skip
    assert (config.mask_estimator_depth, config.mlp_expansion_factor) == (mask, mlp)
    assert (config.channels, config.n_fft, config.heads, config.head_dim) == (2, 2048, 8, 64)
    assert config.bands == "mel" if kind == "mel" else len(config.bands) == 62
    assert (config.mask_norm, config.output_norm) == (
        ("none", True) if kind == "mel" else ("final", False)
    )
    assert config.zero_dc  # none of them names it: ZFTurbo's current default
    assert found.separation == {"window": window, "hop": step}
    assert all(note.startswith(("model.flash_attn", "model.sage_attention", "model.use_torch"))
               for note in found.notes)  # fmt: skip


REAL_SIZES = {
    # viperx's BS-RoFormer, the one UVR ships: bs-roformer 0.4.1 builds the same network.
    "model_bs_roformer_ep_317_sdr_12.9755.yaml": None,
    # ZFTurbo's MUSDB18 4-stem 384/8: mask MLPs 2x wide, which 0.4.1's model cannot build,
    # so its mask estimators are rebuilt from 0.4.1's MaskEstimator (MsstReference).
    "config_musdb18_bs_roformer_384_8_2_485100_sage.yaml": 2,
    # Kimberley Jensen's Mel-Band RoFormer vocals: 0.4.1's MelBandRoformer.
    "config_vocals_mel_band_roformer_kj.yaml": None,
}


@pytest.mark.parametrize("name", REAL_SIZES)
def test_msst_config_runs_at_real_size(name):
    torch.manual_seed(0)
    config = load_zfturbo(CONFIGS / name).model
    frames = 16  # a short input: 0.16 s at hop 441
    audio = torch.randn(1, 2, frames * config.hop_length)
    mlp = REAL_SIZES[name]
    plain = config if mlp is None else dataclasses.replace(config, mlp_expansion_factor=4)
    reference = peer(plain)
    if mlp is not None:
        reference = MsstReference(reference, mlp_expansion_factor=mlp, zero_dc=True).eval()
        with torch.no_grad():
            theirs = reference(audio)
    else:
        theirs = peer_output(reference, audio, zero_dc=True)
    model = BSRoformer(config).eval()
    model.load_state_dict(from_community_state_dict(reference.state_dict(), config))
    assert count_parameters(model) == count_parameters(reference)
    del reference
    with torch.no_grad():
        ours = model(audio)
    assert ours.shape == (1, len(config.stems), 2, audio.shape[-1])
    assert torch.isfinite(ours).all()
    assert peak_error(ours, theirs) <= TOLERANCE
