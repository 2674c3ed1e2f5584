"""The peer: lucidrains' bs-roformer 0.4.1, built with a bsr model's settings and weights,
and the check that both give the same output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import sys
import warnings

import torch

from bsr.config import ModelConfig
from bsr.errors import BsrError

PEERS = ("lucidrains",)
PEER_PACKAGE = "bs-roformer"
PEER_VERSION = "0.4.1"
SAME_OUTPUT_TOLERANCE = 1e-4  # relative error allowed between bsr and the peer, fp32

COMMUNITY_SETTINGS = {
    "mask_norm": "final",
    "gates": True,
    "mlp_expansion_factor": 4,
    "ff_mult": 4,
    "rope_theta": 10000.0,
}


def comparable_config(config: ModelConfig) -> tuple[ModelConfig, list[str]]:
    """``config`` in the community layout that bs-roformer 0.4.1 can build.

    Same dims, bands, STFT and hop; final norm, attention gates and expansion 4 where the
    preset differs. Returns the new config and the changes as ``"key: old -> new"``.
    """
    if config.bands == "mel":
        raise BsrError(
            "--compare lucidrains needs band-split bands, not mel bands: use a preset "
            "such as tiny, small or paper-l6"
        )
    changes = [
        f"{key}: {getattr(config, key)!r} -> {value!r}"
        for key, value in COMMUNITY_SETTINGS.items()
        if getattr(config, key) != value
    ]
    bands = list(config.bands) if isinstance(config.bands, list) else config.bands
    new = dataclasses.replace(config, stems=list(config.stems), bands=bands, **COMMUNITY_SETTINGS)
    return new.validate(), changes


PEER_WHEELS = (
    f"{PEER_PACKAGE}=={PEER_VERSION}",
    "beartype",
    "rotary-embedding-torch",
    "einops",
    "packaging",
)
"""What ``--compare lucidrains`` needs installed (librosa not: see :func:`import_peer`)."""


def import_peer():
    """``import bs_roformer``; where librosa is missing, its band-split module alone.

    bs-roformer's ``__init__`` also imports its mel-band model, whose filters come from
    librosa (a large install: numba, llvmlite, scikit-learn, ...). The band-split model
    bsr compares with needs none of it, so without librosa the package is created without
    running its ``__init__`` and only ``bs_roformer.bs_roformer`` is loaded into it.
    """
    try:
        import bs_roformer

        return bs_roformer
    except ImportError as error:
        if (error.name or "").partition(".")[0] != "librosa":
            raise
    spec = importlib.util.find_spec("bs_roformer")
    package = importlib.util.module_from_spec(spec)  # not executed: its __init__ needs librosa
    sys.modules["bs_roformer"] = package
    package.BSRoformer = importlib.import_module("bs_roformer.bs_roformer").BSRoformer
    return package


def peer_module():
    """The ``bs_roformer`` package, or a BsrError saying how to install it."""
    from importlib import metadata

    try:
        bs_roformer = import_peer()
    except ImportError as error:
        raise BsrError(
            f"--compare lucidrains needs {PEER_PACKAGE} {PEER_VERSION} (missing here: "
            f"{error.name or error}): pip install {' '.join(PEER_WHEELS)}"
        ) from None
    version = metadata.version(PEER_PACKAGE)
    if version != PEER_VERSION:
        raise BsrError(
            f"--compare lucidrains is written for {PEER_PACKAGE} {PEER_VERSION}, found "
            f"{version}: pip install {PEER_PACKAGE}=={PEER_VERSION}"
        )
    return bs_roformer


@contextlib.contextmanager
def quiet_peer():
    """Hide the peer's chatter: deprecation warnings and a print on first use of a GPU."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def build_peer(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """bs-roformer 0.4.1's BSRoformer with the bsr ``model``'s settings and weights."""
    from bsr.formats.keys import to_community_state_dict
    from bsr.formats.lucidrains import community_kwargs

    package = peer_module()
    with quiet_peer():
        peer = package.BSRoformer(**community_kwargs(model.config))
        peer.load_state_dict(to_community_state_dict(model))  # strict: every key
    return peer.to(device)


def with_stem_axis(out: torch.Tensor) -> torch.Tensor:
    """The peer drops the stem axis for one stem: give it back, ``(batch, stems, C, L)``."""
    return out if out.dim() == 4 else out.unsqueeze(1)


def output_error(model: torch.nn.Module, peer: torch.nn.Module, audio: torch.Tensor) -> float:
    """Relative error ``|bsr - peer| / |peer|`` of the two outputs, fp32, eval mode."""
    modes = model.training, peer.training
    model.eval(), peer.eval()
    try:
        with torch.no_grad(), quiet_peer():
            ours = model(audio).float()
            theirs = with_stem_axis(peer(audio)).float()
    finally:
        model.train(modes[0]), peer.train(modes[1])
    if ours.shape != theirs.shape:
        raise BsrError(
            f"bsr gives {tuple(ours.shape)} but {PEER_PACKAGE} gives {tuple(theirs.shape)}: "
            f"check that {PEER_PACKAGE}=={PEER_VERSION} is installed"
        )
    return ((ours - theirs).norm() / theirs.norm().clamp_min(1e-12)).item()
