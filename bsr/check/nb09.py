"""Checks for notebook 09 (your own song).

* 09.1 ``excerpt(audio, rate, seconds, start)``: the part of a song to separate, in
  ``(channels, samples)``: centred when ``start`` is None, the whole song when ``seconds`` is
  None or longer than the song, and never past either end.
* 09.2 ``karaoke(mixture, stems)``: the accompaniment as the mixture minus the estimated
  vocals, with the slip of summing the other estimated stems named (that drops whatever the
  model put in no stem at all).
* 09.P (the prediction): how many times longer separating a minute takes than a quarter of
  it, against the ratio the run measured (to within a quarter; the quadratic guess, 16, is
  four times off).
"""

from __future__ import annotations

import numpy as np

from bsr.audio import excerpt as library_excerpt
from bsr.check import CheckFailed, expect, expect_close, register, wrong_prediction

CASES = [  # (seconds, start, what the case is about)
    (2.0, None, "2 s from the middle of a 10 s song"),
    (3.0, 0.0, "3 s from the start"),
    (3.0, 8.5, "3 s from 8.5 s of a 10 s song (only 1.5 s are left)"),
    (None, None, "seconds=None: the whole song"),
    (25.0, None, "25 s of a 10 s song: the whole song"),
    (1.0, 12.0, "a start after the end of the song"),
]


@register("09.1", library=("bsr.audio.excerpt",))
def check_excerpt(excerpt) -> None:
    rate = 100  # a small rate keeps the arrays small; the rules are the same at 44.1 kHz
    song = np.random.default_rng(91).standard_normal((2, 10 * rate)).astype(np.float32)
    for seconds, start, what in CASES:
        got = excerpt(song.copy(), rate, seconds, start)
        expected = library_excerpt(song, rate, seconds, start)
        if what.startswith("3 s from 8.5") and getattr(got, "shape", (0, 0))[-1] == 3 * rate:
            raise CheckFailed(
                "exercise 09.1: 3 s from 8.5 s of a 10 s song gave 3 s: the song ends at 10 s, so "
                "stop there (1.5 s) instead of inventing audio or moving the start"
            )
        if start is None and seconds == 2.0 and np.array_equal(got, song[:, : 2 * rate]):
            raise CheckFailed(
                "exercise 09.1: with start=None the excerpt should be centred in the song, "
                "not taken from its beginning (the middle of a song is more typical of it)"
            )
        expect(
            np.asarray(got).shape[0] == song.shape[0],
            f"exercise 09.1 ({what}): the excerpt has {np.asarray(got).shape[0]} channels, the "
            "song 2: cut along the last axis (samples), keep every channel",
        )
        expect_close(
            got, expected, f"exercise 09.1 ({what}): excerpt(song, rate, {seconds}, {start})"
        )


@register("09.2")
def check_karaoke(karaoke) -> None:
    rng = np.random.default_rng(92)
    stems = {s: rng.standard_normal((2, 500)).astype(np.float32) for s in ("vocals", "drums",
             "bass", "other")}  # fmt: skip
    residual = 0.3 * rng.standard_normal((2, 500)).astype(np.float32)  # in no stem at all
    mixture = sum(stems.values()) + residual
    got = karaoke(mixture.copy(), {s: x.copy() for s, x in stems.items()})
    others = stems["drums"] + stems["bass"] + stems["other"]
    if getattr(got, "shape", None) == others.shape and np.allclose(got, others, atol=1e-5):
        raise CheckFailed(
            "exercise 09.2: you summed the other estimated stems; that loses what the model put "
            "in no stem (here 0.3 x noise in the mixture). Karaoke is the mixture minus the "
            "estimated vocals: everything that is not vocals, by construction"
        )
    if getattr(got, "shape", None) == others.shape and np.allclose(
        got, stems["vocals"] - mixture, atol=1e-5
    ):
        raise CheckFailed(
            "exercise 09.2: the sign is upside down: mixture - vocals, not the reverse"
        )
    expect_close(got, mixture - stems["vocals"], "exercise 09.2: karaoke(mixture, stems)")


@register("09.P")
def check_prediction(answer: float, observed: float | None = None) -> None:
    """``answer``: the predicted time of 60 s over the time of 15 s. ``observed``: the ratio
    the run measured (None: the linear law's 4, for tests). Right to within a quarter."""
    try:
        said = float(answer)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"prediction 09.P: PREDICTION should be a number (how many times longer), not "
            f"{answer!r}"
        ) from None
    if observed is None:
        observed = 4.0
    if not isinstance(observed, (int, float)) or not observed > 0:
        raise CheckFailed(
            f"prediction 09.P: observed should be the measured ratio, not {observed!r}"
        )
    if not 0.75 <= said / observed <= 4 / 3:
        raise wrong_prediction(
            "09.P",
            f"you said the minute takes {said:g} times as long as the quarter; the run measured "
            f"{observed:.1f} times",
        )
