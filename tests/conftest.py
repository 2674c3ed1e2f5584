"""Shared fixtures: seeded randomness and the optional ../shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def tiny_config(**overrides):
    """A model small enough for unit tests (no dropout unless asked for)."""
    from bsr.config import ModelConfig

    values = dict(n_fft=256, hop_length=64, dim=16, depth=1, heads=2, mlp_expansion_factor=1,
                  attn_dropout=0.0, ff_dropout=0.0)  # fmt: skip
    values.update(overrides)
    return ModelConfig(**values)


def community_config(**overrides):
    """A small community-flavoured config: final norm, gates, no dropout."""
    from bsr.config import ModelConfig

    values = dict(
        channels=2,
        stems=["vocals"],
        n_fft=512,
        hop_length=128,
        bands=[4, 12, 48, 64, 129],
        dim=16,
        depth=1,
        heads=2,
        attn_dropout=0.0,
        ff_dropout=0.0,
        mask_norm="final",
        gates=True,
    )
    values.update(overrides)
    return ModelConfig(**values)


def check_fails(exercise_id: str, answer, *fragments: str) -> str:
    """Assert that ``answer`` fails exercise ``exercise_id`` with every fragment in the message."""
    import bsr.check

    with pytest.raises(bsr.check.CheckFailed) as caught:
        bsr.check.exercise(exercise_id, answer)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{exercise_id}: {fragment!r} not in {message!r}"
    return message


def prediction_fails(prediction_id: str, answer, observed=None, *fragments: str) -> str:
    """Assert that ``answer`` fails prediction ``prediction_id``, with every fragment."""
    import bsr.check

    with pytest.raises(bsr.check.CheckFailed) as caught:
        bsr.check.prediction(prediction_id, answer, observed)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{prediction_id}: {fragment!r} not in {message!r}"
    return message


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder beside the clone (the MUSDB18 sample); tests using it skip
    where it is absent, as on a fresh clone."""
    if not SHARED.is_dir():
        pytest.skip(
            f"the MUSDB18 sample in ../shared ({SHARED}) is not present: this test needs it"
        )
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _course_folder(tmp_path_factory):
    """Every test (and every notebook kernel, which inherits the environment) writes its
    course data, runs and downloads into a fresh folder, never into the user's ~/bsr-course."""
    import os

    folder = tmp_path_factory.mktemp("bsr-home")
    previous = os.environ.get("BSR_HOME")
    os.environ["BSR_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("BSR_HOME", None)
    else:
        os.environ["BSR_HOME"] = previous


from notebook_tools import course_data, executed  # noqa: E402, F401  (shared by test modules)
