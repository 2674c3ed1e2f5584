"""The stems a separation returns: the model's own, picked by name, and the accompaniment.

A four-stem model gives vocals, drums, bass and other; what people most often want is two
of them: the vocals, and everything else (karaoke). museval and musdb call everything else
the *accompaniment* and score vocals against it as a pair of their own (see
:mod:`bsr.evaluate.track`), so ``stems=["vocals", "accompaniment"]`` gives exactly that pair.
"""

from __future__ import annotations

import numpy as np

from bsr.errors import BsrError

ACCOMPANIMENT = "accompaniment"
"""Everything but the vocals (karaoke): musdb's and museval's second target beside vocals."""


def check_stems(stems: list[str] | None, model_stems: list[str]) -> None:
    """Refuse stem names the model cannot give, before any work is done."""
    if stems is None:
        return
    known = [*model_stems, ACCOMPANIMENT] if "vocals" in model_stems else list(model_stems)
    unknown = [name for name in stems if name not in known]
    if unknown or not stems or len(set(stems)) < len(stems):
        example = f"vocals,{ACCOMPANIMENT}" if ACCOMPANIMENT in known else known[0]
        raise BsrError(
            f"cannot give the stems {','.join(stems) or '(none)'}: name each once, from "
            f"{', '.join(known)} (e.g. --stems {example})"
        )


def pick_stems(
    estimates: dict[str, np.ndarray], stems: list[str], mixture: np.ndarray
) -> dict[str, np.ndarray]:
    """``stems`` of ``estimates`` (``{stem: (channels, samples)}``), in that order.

    ``"accompaniment"`` is musdb's and museval's: the sum of every stem but the vocals
    (drums + bass + other for a four-stem model). A model that separates the vocals alone
    has no other stems to sum, so its accompaniment is ``mixture - vocals`` instead.
    """
    picked = {}
    for name in stems:
        if name != ACCOMPANIMENT:
            picked[name] = estimates[name]
        elif len(estimates) > 1:
            picked[name] = sum(audio for stem, audio in estimates.items() if stem != "vocals")
        else:
            picked[name] = (mixture - estimates["vocals"]).astype(np.float32)
    return picked
