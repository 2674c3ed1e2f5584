"""Step 2: which frequency bins go into which band.

BS-RoFormer splits the spectrum into bands that are narrow where pitch matters (low
frequencies) and wide where it does not. The paper's rule, for 44.1 kHz and n_fft 2048:

| up to   | bins per band |
|---------|---------------|
| 1 kHz   | 2             |
| 2 kHz   | 4             |
| 4 kHz   | 12            |
| 8 kHz   | 24            |
| 16 kHz  | 48            |
| Nyquist | the rest, in two bands |

which gives 62 bands: 24 x 2, 12 x 4, 8 x 12, 8 x 24, 8 x 48, 128, 129 (1025 bins).
:func:`paper_band_sizes` derives that tuple from the rule, and the same rule gives a
sensible layout for other sample rates and FFT sizes (band widths scale with n_fft).

Mel-Band RoFormer instead uses overlapping bands read off a mel filterbank
(:func:`mel_band_bins`); a bin covered by two bands gets the average of their masks.

A layout is a :class:`BandLayout`: the bin indices of every band. Validation insists that
every bin is covered exactly once (paper, custom) or at least once (mel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bsr.errors import BsrError

# (upper edge in Hz, bins per band at n_fft = 2048) from the paper.
PAPER_RULE = ((1000, 2), (2000, 4), (4000, 12), (8000, 24), (16000, 48))
PAPER_N_FFT = 2048


def paper_band_sizes(sample_rate: int = 44100, n_fft: int = 2048) -> tuple[int, ...]:
    """Bins per band from the paper's Hz rule; ``(2,)*24 + ... + (128, 129)`` at 44.1k/2048.

    A band of width ``w`` starts at bin ``b`` as long as ``b`` lies below the region's
    upper edge; the bins above 16 kHz are split into two halves.
    """
    n_bins = n_fft // 2 + 1
    hz_per_bin = sample_rate / n_fft
    sizes: list[int] = []
    start = 0
    for edge_hz, width_at_2048 in PAPER_RULE:
        width = max(1, round(width_at_2048 * n_fft / PAPER_N_FFT))
        while start < n_bins and start * hz_per_bin < edge_hz:
            sizes.append(min(width, n_bins - start))
            start += sizes[-1]
    rest = n_bins - start
    if rest >= 2:
        sizes += [rest // 2, rest - rest // 2]
    elif rest == 1:
        sizes.append(1)
    return tuple(sizes)


def mel_band_bins(sample_rate: int = 44100, n_fft: int = 2048, n_mels: int = 60):
    """Overlapping bands from a binarised mel filterbank (Mel-Band RoFormer).

    Band ``k`` holds every bin where librosa's ``k``-th triangular filter is non-zero.
    The DC bin is forced into the first band and the Nyquist bin into the last: the
    filterbank alone leaves DC uncovered, and covers Nyquist only by a rounding accident
    (a weight of about 1e-18 with librosa 0.11). Returns a tuple of tuples of bin indices.
    """
    import librosa  # imported here: slow to import, and only the mel layout needs it

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels) > 0  # (n_mels, bins)
    fb[0, 0] = True
    fb[-1, -1] = True
    return tuple(tuple(int(i) for i in row.nonzero()[0]) for row in fb)


@dataclass(frozen=True)
class BandLayout:
    """Which bins each band owns: ``bins[b]`` is a tuple of bin indices (ascending)."""

    bins: tuple[tuple[int, ...], ...]
    n_bins: int

    @classmethod
    def from_sizes(cls, sizes: Sequence[int], n_bins: int) -> BandLayout:
        """Consecutive, non-overlapping bands of the given widths."""
        if any(int(s) < 1 for s in sizes):
            raise BsrError(f"bands must all hold at least one bin, got {list(sizes)}")
        edges = [0]
        for size in sizes:
            edges.append(edges[-1] + int(size))
        if edges[-1] != n_bins:
            raise BsrError(
                f"the bands cover {edges[-1]} bins but the STFT has {n_bins} "
                f"(n_fft // 2 + 1): make the band sizes sum to {n_bins} or change n_fft"
            )
        return cls(tuple(tuple(range(a, b)) for a, b in zip(edges[:-1], edges[1:])), n_bins)

    @property
    def num_bands(self) -> int:
        return len(self.bins)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Bins per band, ``F_b``."""
        return tuple(len(b) for b in self.bins)

    @property
    def overlapping(self) -> bool:
        """True when some bin belongs to more than one band (mel layout)."""
        return sum(self.sizes) != self.n_bins

    def coverage(self) -> list[int]:
        """How many bands cover each bin, a list of length ``n_bins``."""
        counts = [0] * self.n_bins
        for band in self.bins:
            for i in band:
                counts[i] += 1
        return counts

    def validate(self, allow_overlap: bool = False) -> BandLayout:
        """Raise :class:`BsrError` unless every bin is covered (exactly once if no overlap)."""
        for b, band in enumerate(self.bins):
            if not band:
                raise BsrError(f"band {b} holds no bins: remove it or widen it")
            if min(band) < 0 or max(band) >= self.n_bins:
                raise BsrError(f"band {b} reaches outside the {self.n_bins} STFT bins")
        counts = self.coverage()
        missed = [i for i, c in enumerate(counts) if c == 0]
        if missed:
            raise BsrError(
                f"{len(missed)} STFT bins belong to no band (first: {missed[0]}): "
                "every bin must be in a band"
            )
        if not allow_overlap and any(c > 1 for c in counts):
            twice = next(i for i, c in enumerate(counts) if c > 1)
            raise BsrError(
                f"bin {twice} belongs to more than one band: bands must not overlap "
                "(only the mel layout may)"
            )
        return self


def make_layout(bands, sample_rate: int, n_fft: int, n_mels: int = 60) -> BandLayout:
    """Build a validated layout from a config value: "paper", "mel" or a list of sizes."""
    n_bins = n_fft // 2 + 1
    if bands == "paper":
        return BandLayout.from_sizes(paper_band_sizes(sample_rate, n_fft), n_bins).validate()
    if bands == "mel":
        bins = mel_band_bins(sample_rate, n_fft, n_mels)
        return BandLayout(bins, n_bins).validate(allow_overlap=True)
    if isinstance(bands, str):
        raise BsrError(f"unknown band layout {bands!r}: use 'paper', 'mel' or a list of sizes")
    return BandLayout.from_sizes(list(bands), n_bins).validate()
