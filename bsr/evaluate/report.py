"""Reporting: scores of many tracks per method, as markdown tables, CSV and museval JSON.

cSDR and uSDR are **not** comparable, so they never share a column: :func:`format_table`
prints one table of each, rows = the model and its baselines, columns = stems + average.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bsr.evaluate.baselines import BASELINE_NOTES, BASELINES
from bsr.evaluate.metrics import museval_json, nanmedian, stem_order

METHOD_LABELS = {
    "model": "model",
    "mixture": "mixture",
    "constant_gain": "constant gain",
    "ibm": "IBM",
    "irm": "IRM",
    "irm2": "IRM (power)",
    "mwf": "MWF",
}
"""How each method is named in the tables."""
CSDR_LABEL = "cSDR (median of medians, museval v4)"
USDR_LABEL = "uSDR (mean over tracks)"


@dataclass
class MethodResult:
    """Scores of one method (the model or a baseline) on a set of tracks.

    ``tracks`` maps track name -> :func:`bsr.evaluate.track.evaluate_track` result.
    """

    method: str
    tracks: dict[str, dict] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return METHOD_LABELS.get(self.method, self.method)

    @property
    def targets(self) -> list[str]:
        return stem_order({n for t in self.tracks.values() for n in t["targets"]})

    def csdr(self) -> dict[str, float]:
        """Stem -> median over tracks of the per-track median over frames (museval v4)."""
        return {
            n: nanmedian(t["targets"][n]["cSDR"] for t in self.tracks.values() if n in t["targets"])
            for n in self.targets
        }

    def usdr(self) -> dict[str, float]:
        """Stem -> mean over tracks of the whole-track SDR."""
        return {
            n: float(
                np.mean(
                    [t["targets"][n]["uSDR"] for t in self.tracks.values() if n in t["targets"]]
                )
            )
            for n in self.targets
        }


def _average(values: Mapping[str, float]) -> float:
    """Mean over stems (the papers' "average" column); NaN if any stem is NaN."""
    return float(np.mean(list(values.values()))) if values else math.nan


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.2f}"


def format_table(results: MethodResult | Sequence[MethodResult]) -> str:
    """Markdown: a cSDR table and a separate uSDR table, rows = methods, cols = stems + average.

    Rows follow the order model, mixture, constant gain, then the oracles IBM, IRM, IRM
    (power), MWF (others after). :func:`format_notes` says what each baseline bounds.
    """
    if isinstance(results, MethodResult):
        results = [results]
    rank = {m: i for i, m in enumerate(["model", *BASELINES])}
    results = sorted(results, key=lambda r: rank.get(r.method, len(rank)))
    stems = stem_order({n for r in results for n in r.targets})
    n_tracks = max((len(r.tracks) for r in results), default=0)
    lines = []
    for label, values in ((CSDR_LABEL, "csdr"), (USDR_LABEL, "usdr")):
        lines += [f"### {label}, dB ({n_tracks} tracks)", ""]
        lines.append("| method | " + " | ".join([*stems, "average"]) + " |")
        lines.append("|---" * (len(stems) + 2) + "|")
        for r in results:
            per_stem = getattr(r, values)()
            row = [_fmt(per_stem.get(s, math.nan)) for s in stems]
            row.append(_fmt(_average({s: per_stem[s] for s in stems if s in per_stem})))
            lines.append(f"| {r.label} | " + " | ".join(row) + " |")
        lines.append("")
    lines += silent_notes(results)
    return "\n".join(lines)


def silent_notes(results: Sequence[MethodResult]) -> list[str]:
    """One line per method and track with a silent reference or estimate stem.

    museval cannot score a track in which any stem is all zeros (every frame is NaN), so
    such a track drops out of the cSDR medians; its uSDR still counts. Saying so keeps a
    table from hiding a track.
    """
    lines = []
    for r in results:
        for name, track in r.tracks.items():
            silent = track.get("silent", {})
            parts = [f"{kind} {', '.join(stems)}" for kind, stems in silent.items() if stems]
            if parts:
                lines.append(
                    f"- {r.label}, {name}: silent {'; '.join(parts)}: no cSDR for this track "
                    "(museval needs sound in every stem); its uSDR is counted"
                )
    return [*lines, ""] if lines else []


def format_notes(results: MethodResult | Sequence[MethodResult]) -> str:
    """Markdown list: one line per baseline in ``results`` on what its score bounds."""
    if isinstance(results, MethodResult):
        results = [results]
    present = {r.method for r in results}
    lines = [f"- **{METHOD_LABELS[b]}**: {BASELINE_NOTES[b]}" for b in BASELINES if b in present]
    if not lines:
        return ""
    head = "Baselines (the oracles look at the true stems: upper references, not results):"
    return "\n".join([head, "", *lines, ""])


def format_csv(results: MethodResult | Sequence[MethodResult]) -> str:
    """CSV, one row per method and stem (plus "average"); one column per metric."""
    if isinstance(results, MethodResult):
        results = [results]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "stem", CSDR_LABEL, USDR_LABEL, "tracks"])
    for r in results:
        c, u = r.csdr(), r.usdr()
        for s in r.targets:
            writer.writerow([r.label, s, _fmt(c[s]), _fmt(u[s]), len(r.tracks)])
        writer.writerow([r.label, "average", _fmt(_average(c)), _fmt(_average(u)), len(r.tracks)])
    return buf.getvalue()


def write_reports(
    results: Sequence[MethodResult], out_dir: str | Path, subset: str = "test"
) -> Path:
    """Write per-track museval JSON, ``results.md`` and ``results.csv`` under ``out_dir``.

    ``results.md`` holds :func:`format_table` and, under it, :func:`format_notes`.

    The model's JSON go to ``out_dir/<subset>/<track>.json`` (museval's layout), a
    baseline's to ``out_dir/baselines/<kind>/<subset>/<track>.json``.
    """
    out = Path(out_dir)
    for r in results:
        folder = out / subset if r.method == "model" else out / "baselines" / r.method / subset
        folder.mkdir(parents=True, exist_ok=True)
        for name, scores in r.tracks.items():
            with open(folder / f"{name}.json", "w") as f:
                json.dump(museval_json(scores), f, indent=2)
    notes = format_notes(results)
    (out / "results.md").write_text(format_table(results) + (f"\n{notes}" if notes else ""))
    (out / "results.csv").write_text(format_csv(results))
    return out
