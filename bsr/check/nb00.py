"""Checks for notebook 00, the data (it has no exercises, only its prediction).

* 00.P: how many dB above one stem four stems of equal level sum to (within 1 dB), and
  whether the mixture's peak is the sum of the stems' peaks or below it; checked against
  what the run measured on the practice song and the real excerpt.
"""

from __future__ import annotations

from bsr.check import CheckFailed, register, wrong_prediction

LEVEL, PEAK = "dB above one stem", "peak"
PEAKS = ("the sum of the peaks", "below the sum")
TOLERANCE_DB = 1.0  # the text asks for the level to the nearest dB
SUMMED = 0.95  # a mixture peak within 5 % of the summed peaks counts as their sum


def _observed(observed) -> dict:
    """``observed`` maps each song to ``{LEVEL: dB, PEAK: mixture peak / sum of peaks}``."""
    songs = observed if isinstance(observed, dict) else {}
    if not songs or not all(
        isinstance(m, dict) and {LEVEL, PEAK} <= set(m) for m in songs.values()
    ):
        raise CheckFailed(
            f"00.P: observed should map each song to {{{LEVEL!r}: dB, {PEAK!r}: ratio}}, "
            f"got {observed!r}; run the cell as it is"
        )
    return songs


@register("00.P")
def check_prediction(answer, observed=None) -> None:
    """``answer`` is ``{LEVEL: dB, PEAK: one of PEAKS}``."""
    if not isinstance(answer, dict) or set(answer) != {LEVEL, PEAK}:
        raise CheckFailed(f"00.P: PREDICTION should be a dict with the keys {LEVEL!r} and {PEAK!r}")
    if answer[PEAK] not in PEAKS:
        raise CheckFailed(f"00.P: the peak should be one of {PEAKS}, got {answer[PEAK]!r}")
    said = float(answer[LEVEL])
    for song, measured in _observed(observed).items():
        level = float(measured[LEVEL])
        if abs(said - level) > TOLERANCE_DB:
            raise wrong_prediction(
                "00.P",
                f"you said four stems of equal level sum to {said:+.1f} dB above one stem, but "
                f"on the {song} they gave {level:+.1f} dB",
            )
        ratio = float(measured[PEAK])
        truth = PEAKS[0] if ratio >= SUMMED else PEAKS[1]
        if answer[PEAK] != truth:
            raise wrong_prediction(
                "00.P",
                f"you said the mixture's peak is {answer[PEAK]}, but on the {song} it is "
                f"{ratio:.0%} of the stems' summed peaks",
            )
