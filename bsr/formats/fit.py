"""Fitting a state dict to a model, or saying exactly what does not fit.

``model.load_state_dict(state)`` fails with every key torch could not place, in one long
message. A learner loading the wrong file needs the gist: how many keys have the wrong
shape, are missing or are unexpected, a few of each by the names *their* file uses, and
what to do (pass the config the checkpoint was trained with).
"""

from __future__ import annotations

import torch

from bsr.errors import BsrError

MAX_LISTED = 8  # keys shown per category in a mismatch report


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(n) for n in tensor.shape) + ")"


def _listed(label: str, lines: list[str]) -> list[str]:
    """At most MAX_LISTED lines of one category, then a count of the rest."""
    shown = [f"  {label}: {line}" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"  ... and {len(lines) - MAX_LISTED} more {label}")
    return shown


def load_weights(model: torch.nn.Module, state: dict, source: str, name=lambda key: key) -> None:
    """``model.load_state_dict(state)``, or a BsrError listing every key that does not fit.

    ``name`` maps a bsr key to the name the user's file uses, for the report.
    """
    expected = model.state_dict()
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if wrong or missing or unexpected:
        lines = [
            f"{source} does not fit the model config ({len(wrong)} wrong shape, "
            f"{len(missing)} missing, {len(unexpected)} unexpected): pass the config the "
            "checkpoint was trained with"
        ]
        lines += _listed(
            "wrong shape",
            [
                f"{name(k)}: checkpoint {_shape(state[k])} vs model {_shape(expected[k])}"
                for k in wrong
            ],
        )
        lines += _listed("missing", [f"{name(k)} {_shape(expected[k])}" for k in missing])
        lines += _listed("unexpected", [f"{name(k)} {_shape(state[k])}" for k in unexpected])
        raise BsrError("\n".join(lines))
    model.load_state_dict(state)
