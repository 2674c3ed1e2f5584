"""Baselines and oracles: what a model's scores are compared with, on the same tracks.

The first two are floors; the four oracles are the sigsep oracles of SiSEC 2018
(``sigsep-mus-oracle``): they look at the true stems, so they are upper references for a
family of methods, not results (:data:`BASELINE_NOTES` says what each one bounds):

=================  ==========================================================
``mixture``        the mixture itself as the estimate of every stem
``constant_gain``  ``g * mixture`` with the least-squares ``g = <s, x> / <x, x>``
``ibm``            ideal binary mask: bin to stem ``j`` if ``|S_j| / |X| >= 0.5``
``irm``            ideal ratio mask ``|S_j| / sum_k |S_k|`` (magnitude, alpha = 1)
``irm2``           ideal ratio mask ``|S_j|^2 / sum_k |S_k|^2`` (power, alpha = 2)
``mwf``            multichannel Wiener filter ``v_j R_j (sum_k v_k R_k)^-1 x`` with
                   per-bin spatial covariances ``R_j(f)`` and PSDs ``v_j(f, t)``
=================  ==========================================================

The masks act on every channel of the mixture STFT ``X`` separately; the MWF filters
both channels jointly. All four use a Hann STFT with ``n_fft = 4096`` and hop 1024 (93 ms
windows at 44.1 kHz with 75 % overlap: fine enough in frequency to separate bass notes;
sigsep used 2048 and 1024), arguments of :func:`baseline_estimates`. The unbounded complex
ratio mask ``S_j / X`` is not offered: it rebuilds every stem exactly, so it bounds nothing.

All arrays are ``(samples, channels)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import signal

from bsr.errors import BsrError
from bsr.evaluate.track import as_audio

BASELINES = ("mixture", "constant_gain", "ibm", "irm", "irm2", "mwf")
"""Baseline names, in the order of the tables (after the model)."""
BASELINE_NOTES = {
    "mixture": "the mixture as every stem's estimate: no separation at all",
    "constant_gain": "the best single gain per stem and track (least squares): a floor to clear",
    "ibm": "ideal binary mask (alpha 1, theta 0.5): about the best on/off time-frequency mask",
    "irm": "ideal ratio mask of magnitudes (alpha 1): about the best real mask on the mixture "
    "phase",
    "irm2": "ideal ratio mask of powers (alpha 2, one-channel Wiener filter): the same, "
    "power-weighted",
    "mwf": "multichannel Wiener filter from the true PSDs and spatial covariances: about the best "
    "linear stereo filter per bin",
}
"""One line per baseline: what its score bounds (reports print these under the tables)."""
REMOVED_BASELINES = {
    "cirm": "the unbounded complex ideal ratio mask S_j / X rebuilds every stem exactly "
    "(100+ dB), which bounds nothing",
}
"""Baselines that were offered once, and why they are not any more."""
IBM_THETA = 0.5
"""The IBM gives a bin to a stem when ``|S_j| / |X| >= IBM_THETA`` (sigsep's majority vote)."""


ORACLE_N_FFT, ORACLE_HOP = 4096, 1024
"""STFT size and hop of the oracles (the museval frames of the scores are another thing)."""


def check_baselines(kinds: Iterable[str]) -> None:
    """Raise a one-line :class:`BsrError` for a baseline name that is not offered."""
    for kind in kinds:
        if kind in REMOVED_BASELINES:
            raise BsrError(
                f"baseline {kind!r} was removed: {REMOVED_BASELINES[kind]}; use 'irm' "
                "(or 'ibm', 'irm2', 'mwf') for an oracle upper bound"
            )
        if kind not in BASELINES:
            raise BsrError(f"unknown baseline {kind!r}: choose from {', '.join(BASELINES)}")


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(samples, channels)`` -> ``(channels, bins, frames)`` complex64, Hann window."""
    *_, spec = signal.stft(
        x.T.astype(np.float32), window="hann", nperseg=n_fft, noverlap=n_fft - hop
    )
    return spec


def _stft_blocks(x: np.ndarray, n_fft: int, hop: int, block: int = 256):
    """The frames of :func:`_stft` in float64, ``block`` frames at a time.

    Pads like ``scipy.signal.stft`` (``n_fft // 2`` zeros at both ends, then zeros up to
    a whole number of hops) and transforms one slice of frames per step, so a long track
    never holds its whole complex128 spectrogram.

    Args:
        x: ``(samples, channels)``.

    Yields:
        ``(first frame, (channels, bins, frames') complex128)``.
    """
    xp = np.pad(np.asarray(x, dtype=np.float64).T, ((0, 0), (n_fft // 2, n_fft // 2)))
    xp = np.pad(xp, ((0, 0), (0, (-(xp.shape[-1] - n_fft) % hop) % n_fft)))
    frames = (xp.shape[-1] - n_fft) // hop + 1
    for t0 in range(0, frames, block):
        t1 = min(t0 + block, frames)
        *_, spec = signal.stft(
            xp[:, t0 * hop : (t1 - 1) * hop + n_fft],
            window="hann",
            nperseg=n_fft,
            noverlap=n_fft - hop,
            boundary=None,
            padded=False,
        )
        yield t0, spec


def _istft(spec: np.ndarray, length: int, n_fft: int, hop: int) -> np.ndarray:
    """``(channels, bins, frames)`` -> ``(length, channels)`` float64."""
    _, x = signal.istft(spec, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    x = x[..., :length]
    if x.shape[-1] < length:  # the padded STFT always covers the signal, but be safe
        x = np.pad(x, ((0, 0), (0, length - x.shape[-1])))
    return x.T.astype(np.float64)


def _stems_and_mixture(
    references: Mapping[str, np.ndarray], mixture: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Checked float64 ``(samples, channels)`` stems (``"mixture"`` dropped) and mixture."""
    x = as_audio("mixture", mixture)
    stems = {k: as_audio(f"reference {k!r}", v) for k, v in references.items() if k != "mixture"}
    if "accompaniment" in stems and len(set(stems) - {"vocals", "accompaniment"}) > 0:
        raise BsrError(
            "references hold 'accompaniment' and the stems it is made of: pass only stems "
            "that add up to the mixture (drop 'accompaniment')"
        )
    for k, s in stems.items():
        if s.shape != x.shape:
            raise BsrError(f"reference {k!r} has shape {s.shape} but the mixture {x.shape}")
    return stems, x


_MASK_ALPHA = {"ibm": 1, "irm": 1, "irm2": 2}
"""The exponent of the spectrograms in each mask oracle (sigsep's ``alpha``)."""


def _masks(stems: Mapping[str, np.ndarray], X: np.ndarray, kind: str, n_fft: int, hop: int):
    """Yield ``(stem, (channels, bins, frames) float32 mask)`` of a mask oracle, stem by stem.

    ``ibm``: ``1`` where ``|S_j|^a / |X|^a >= IBM_THETA``, else ``0`` (a bin may go to
    several stems, or to none, when stems cancel). ``irm``/``irm2``: ``|S_j|^a / sum_k
    |S_k|^a``. Silent bins (``0 / 0``) get ``0``. The ratio masks compute each stem's
    STFT twice rather than keep it: a 4-minute stereo stem at n_fft 4096 is ~340 MB.
    """
    alpha = _MASK_ALPHA[kind]
    tiny = np.finfo(np.float32).tiny
    if kind == "ibm":
        mix = np.abs(X) ** alpha + tiny
        for k, s in stems.items():
            yield k, (np.abs(_stft(s, n_fft, hop)) ** alpha / mix >= IBM_THETA).astype(np.float32)
        return
    denom = np.zeros(X.shape, dtype=np.float32)
    for s in stems.values():
        denom += np.abs(_stft(s, n_fft, hop)) ** alpha
    denom += tiny
    for k, s in stems.items():
        yield k, np.abs(_stft(s, n_fft, hop)) ** alpha / denom


def oracle_masks(
    references: Mapping[str, np.ndarray],
    mixture: np.ndarray,
    kind: str,
    n_fft: int = ORACLE_N_FFT,
    hop: int = ORACLE_HOP,
) -> dict[str, np.ndarray]:
    """The masks of a mask oracle (``ibm``, ``irm`` or ``irm2``), to look at or test.

    Args:
        references: stem name -> ``(samples, channels)``, adding up to the mixture.
        mixture: ``(samples, channels)``.

    Returns:
        stem name -> ``(channels, bins, frames)`` float32 mask of the mixture's STFT
        (``scipy.signal.stft``, Hann window, ``n_fft``, ``hop``).
    """
    check_baselines([kind])
    if kind not in _MASK_ALPHA:
        raise BsrError(f"{kind!r} is not a mask oracle: choose from {', '.join(_MASK_ALPHA)}")
    stems, x = _stems_and_mixture(references, mixture)
    return dict(_masks(stems, _stft(x, n_fft, hop), kind, n_fft, hop))


def _solve(C: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``C^-1 b`` for a stack of small systems: ``C (..., I, I)``, ``b (..., I)``.

    One or two channels (mono, stereo) by the explicit formulas, which are much faster
    than ``np.linalg.solve`` on millions of tiny systems.
    """
    if C.shape[-1] == 1:
        return b / C[..., 0]
    if C.shape[-1] == 2:
        a, c01, c10, d = C[..., 0, 0], C[..., 0, 1], C[..., 1, 0], C[..., 1, 1]
        det = a * d - c01 * c10
        z0 = (d * b[..., 0] - c01 * b[..., 1]) / det
        z1 = (a * b[..., 1] - c10 * b[..., 0]) / det
        return np.stack([z0, z1], axis=-1)
    return np.linalg.solve(C, b[..., None])[..., 0]


def _mwf(
    stems: Mapping[str, np.ndarray], x: np.ndarray, n_fft: int, hop: int
) -> dict[str, np.ndarray]:
    """The oracle multichannel Wiener filter (local Gaussian model), after sigsep's ``MWF``.

    Each stem ``j`` is modelled in bin ``(f, t)`` as a zero-mean Gaussian vector over
    the channels with covariance ``v_j(f, t) R_j(f)``, both taken from the true stem:
    the PSD ``v_j = mean over channels of |S_j|^2`` and the spatial covariance ``R_j(f) =
    mean over frames of S_j S_j^H / (eps + v_j)``, scaled to trace = channels, plus
    ``eps I``. The estimate is ``v_j R_j (sum_k v_k R_k)^-1 x`` in every bin: a stereo
    filter that uses where a stem sits in the stereo image as well as how loud it is. The
    estimates add up to the mixture (up to a floor that keeps silent bins finite).

    sigsep then refines the PSD to ``S_j^H R_j^-1 S_j / channels``; we keep the first
    estimate, whose model power ``trace(v_j R_j)`` is the stem's power ``|S_j|^2`` in every
    bin, whereas the refinement halves the power of a stem panned to one spot (rank-1
    ``R_j``) and amplifies round-off there. Computed in float64, a block of frames at a
    time, so a long track never holds a whole complex128 spectrogram.
    """
    eps = np.finfo(np.float64).eps
    channels = x.shape[1]
    eye = np.eye(channels)
    model = {}
    for k, s in stems.items():
        acc = np.zeros((n_fft // 2 + 1, channels, channels), dtype=np.complex128)
        v = []
        for _, S in _stft_blocks(s, n_fft, hop):
            v.append(np.mean(np.abs(S) ** 2, axis=0))
            acc += np.einsum("ift,jft->fij", S / (eps + v[-1]), S.conj())
        v = np.concatenate(v, axis=1)
        R = acc / v.shape[1]
        trace = np.real(np.einsum("fii->f", R))[:, None, None]
        R = np.where(trace > 0, R * channels / np.where(trace > 0, trace, 1.0), eye) + eps * eye
        model[k] = (R, v.astype(np.float32))

    # Where every stem is silent sum_k v_k R_k is 0: a floor far below the music keeps
    # the inverse finite and sends those bins to 0.
    floor = 1e-10 * sum(float(np.mean(v)) for _, v in model.values()) or 1.0
    out = {}
    for k in stems:
        R_k, v_k = model[k]
        spec = np.empty((channels, *v_k.shape), dtype=np.complex64)
        for t0, X in _stft_blocks(x, n_fft, hop):
            t = slice(t0, t0 + X.shape[-1])
            C = floor * eye + sum(v[:, t, None, None] * R[:, None] for R, v in model.values())
            z = _solve(C, X.transpose(1, 2, 0))  # (bins, frames', channels)
            est = v_k[:, t, None] * np.einsum("fij,ftj->fti", R_k, z)
            spec[:, :, t] = est.transpose(2, 0, 1)
        out[k] = _istft(spec, x.shape[0], n_fft, hop)
    return out


def baseline_estimates(
    references: Mapping[str, np.ndarray],
    mixture: np.ndarray,
    kind: str,
    n_fft: int = ORACLE_N_FFT,
    hop: int = ORACLE_HOP,
) -> dict[str, np.ndarray]:
    """Estimates of every stem by a non-learned (mostly oracle) method.

    Args:
        references: stem name -> ``(samples, channels)``; the stems must add up to the
            mixture (MUSDB's four, or vocals + accompaniment). The oracles look at them.
        mixture: ``(samples, channels)``.
        kind: one of :data:`BASELINES` (see :data:`BASELINE_NOTES`).
        n_fft, hop: STFT size for the oracles ``ibm``, ``irm``, ``irm2``, ``mwf``.

    Returns:
        stem name -> ``(samples, channels)`` float64 estimate.
    """
    check_baselines([kind])
    stems, x = _stems_and_mixture(references, mixture)
    if kind == "mixture":
        return {k: x.copy() for k in stems}
    if kind == "constant_gain":
        energy = float(np.sum(x * x)) or 1.0  # silent mixture: any g is optimal, use 0
        return {k: float(np.sum(s * x)) / energy * x for k, s in stems.items()}
    if kind == "mwf":
        return _mwf(stems, x, n_fft, hop)
    X = _stft(x, n_fft, hop)  # (channels, bins, frames)
    return {k: _istft(m * X, x.shape[0], n_fft, hop) for k, m in _masks(stems, X, kind, n_fft, hop)}
