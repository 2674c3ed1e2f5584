"""Scoring separated stems: museval's cSDR, the community's uSDR, and oracle baselines.

Two SDR numbers circulate in the source-separation literature and they are **not**
comparable, so this package never puts them in the same column:

* **cSDR** ("chunk" SDR, the BS-RoFormer paper's Table 2): museval's BSSEval v4 on 1 s
  frames. Per track and stem we take the median over frames (NaN frames, i.e. frames
  where a reference or an estimate is silent, are skipped), then the median over tracks.
  Labelled ``"cSDR (median of medians, museval v4)"``.
* **uSDR** ("utterance" or global SDR, SDX23 and most community tables):
  ``10 * log10(sum(s**2) / sum((s - s_hat)**2))`` over the whole track, then the mean
  over tracks. Labelled ``"uSDR (mean over tracks)"``.

One module per job, read in this order:

==============================  =======================================================
:mod:`bsr.evaluate.metrics`     the measures: uSDR, museval's BSSEval v4, museval JSON
:mod:`bsr.evaluate.track`       one track: checked stems, museval's two-target rules
:mod:`bsr.evaluate.baselines`   the mixture, the best constant gain and the four oracles
:mod:`bsr.evaluate.report`      many tracks per method: markdown tables, CSV, JSON files
:mod:`bsr.evaluate.folders`     a folder of estimates against a MUSDB18HQ-layout folder
==============================  =======================================================

Everything a user needs is importable from here: ``from bsr.evaluate import usdr``.
All arrays are ``(samples, channels)``, the layout of ``soundfile`` and musdb.
"""

from bsr.evaluate.baselines import (
    BASELINE_NOTES,
    BASELINES,
    IBM_THETA,
    ORACLE_HOP,
    ORACLE_N_FFT,
    REMOVED_BASELINES,
    baseline_estimates,
    check_baselines,
    oracle_masks,
)
from bsr.evaluate.folders import evaluate_baselines, evaluate_folder
from bsr.evaluate.metrics import METRICS, STEMS, USDR_EPS, museval_json, usdr
from bsr.evaluate.report import (
    CSDR_LABEL,
    METHOD_LABELS,
    USDR_LABEL,
    MethodResult,
    format_csv,
    format_notes,
    format_table,
    silent_notes,
    write_reports,
)
from bsr.evaluate.track import complement_name, evaluate_track

__all__ = [
    "BASELINES",
    "BASELINE_NOTES",
    "CSDR_LABEL",
    "IBM_THETA",
    "METHOD_LABELS",
    "METRICS",
    "ORACLE_HOP",
    "ORACLE_N_FFT",
    "REMOVED_BASELINES",
    "STEMS",
    "USDR_EPS",
    "USDR_LABEL",
    "MethodResult",
    "baseline_estimates",
    "check_baselines",
    "complement_name",
    "evaluate_baselines",
    "evaluate_folder",
    "evaluate_track",
    "format_csv",
    "format_notes",
    "format_table",
    "museval_json",
    "oracle_masks",
    "silent_notes",
    "usdr",
    "write_reports",
]
