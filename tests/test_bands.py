import pytest

from bsr.bands import BandLayout, make_layout, mel_band_bins, paper_band_sizes
from bsr.errors import BsrError

# The tuple published with the paper (and used by the community code), typed in here
# as the independent reference for the rule in bsr.bands.
PUBLISHED = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)


def test_paper_rule_gives_the_published_62_bands():
    sizes = paper_band_sizes(44100, 2048)
    assert sizes == PUBLISHED
    assert len(sizes) == 62 and sum(sizes) == 1025


@pytest.mark.parametrize(
    "sample_rate,n_fft", [(44100, 512), (44100, 1024), (48000, 2048), (16000, 1024)]
)
def test_paper_rule_covers_every_bin_for_other_settings(sample_rate, n_fft):
    layout = make_layout("paper", sample_rate, n_fft)
    assert layout.coverage() == [1] * (n_fft // 2 + 1)


def test_custom_layout_must_cover_every_bin_exactly():
    assert make_layout([500, 525], 44100, 2048).sizes == (500, 525)
    with pytest.raises(BsrError, match="cover 1000 bins but the STFT has 1025"):
        make_layout([500, 500], 44100, 2048)
    with pytest.raises(BsrError, match="at least one bin"):
        make_layout([1025, 0], 44100, 2048)


def test_validate_rejects_gaps_and_overlaps():
    with pytest.raises(BsrError, match="belong to no band"):
        BandLayout(((0, 1), (3,)), 4).validate()
    with pytest.raises(BsrError, match="more than one band"):
        BandLayout(((0, 1, 2), (2, 3)), 4).validate()
    assert BandLayout(((0, 1, 2), (2, 3)), 4).validate(allow_overlap=True).overlapping


def test_mel_layout_overlaps_and_covers_every_bin():
    import librosa

    bins = mel_band_bins(44100, 2048, 60)
    assert len(bins) == 60
    layout = make_layout("mel", 44100, 2048, 60)
    coverage = layout.coverage()
    assert min(coverage) >= 1 and max(coverage) >= 2
    assert 0 in bins[0] and 1024 in bins[-1]
    # Apart from the forced DC / Nyquist bins, each band is its mel filter's support.
    fb = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=60) > 0
    assert set(bins[10]) == set(fb[10].nonzero()[0])


def test_layout_errors_are_one_line():
    with pytest.raises(BsrError) as info:
        make_layout([1, 2, 3], 44100, 2048)
    assert "\n" not in str(info.value)
    with pytest.raises(BsrError, match="unknown band layout"):
        make_layout("bark", 44100, 2048)
