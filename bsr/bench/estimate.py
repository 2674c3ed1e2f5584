"""What a learner's GPU run should reach: an estimate, until a GPU measures it.

Notebook 06 trains the ``gpu-t4`` preset (the course model's network, batch 32) for a few
minutes on a GPU. Before any GPU has run it, what it reaches can be estimated from two
things bsr has measured:

* **the cost of an item**: the analytic FLOPs of one training item (forward + backward,
  about three forward passes), which with an assumed achieved rate per GPU class gives items
  per second; capped by the data loader's measured items per second and by a floor on the
  step time (a small model on a big GPU waits for kernel launches, not for arithmetic);
* **the course model's CPU curve**: validation uSDR against training items seen, on the very
  validation chunks the GPU run uses (same practice set, seed 1000). Its gap to the ideal
  ratio mask closes like a power of the items seen, ``gap(n) = c * n ** -alpha``, fitted in
  log-log space; extrapolating it past the curve's last point (14,000 items) is the
  estimate's weakest step, and the table says so.

Every number here is an estimate and is labelled as one; :data:`GPU_CLASSES` holds the
assumptions. Replace a row with the measured figure once a GPU has run ``bsr bench gpu``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GpuClass:
    """A GPU class: its dense peak for the precision bsr picks, and an assumed utilisation."""

    name: str
    precision: str
    peak_tflops: float  # dense tensor-core peak (vendor figure)
    assumed_mfu: float  # what a 3.3M-parameter model with 21 bands may reach: an assumption


GPU_CLASSES = (
    GpuClass("T4", "fp16", 65.0, 0.10),  # no bf16: fp16 with the gradient scaler
    GpuClass("A100", "bf16", 312.0, 0.10),
    GpuClass("H100", "bf16", 989.0, 0.05),  # a small model leaves most of an H100 idle
)
STEP_FLOOR_S = 0.025
"""Assumed shortest step of the course network in eager PyTorch (some hundreds of kernels at
tens of microseconds each), whatever the GPU's arithmetic rate."""


def items_per_second(
    gpu: GpuClass, flops_per_item: float, batch: int, loader_items_per_s: float
) -> float:
    """Training items per second on ``gpu``: the smallest of compute, launches and loader."""
    compute = gpu.peak_tflops * 1e12 * gpu.assumed_mfu / flops_per_item
    launches = batch / STEP_FLOOR_S
    return min(compute, launches, loader_items_per_s)


def fit_gap(items: list[float], usdr: list[float], ceiling: float) -> tuple[float, float]:
    """Fit ``ceiling - usdr = c * items ** -alpha``; returns ``(c, alpha)``."""
    gaps = np.maximum(ceiling - np.asarray(usdr, dtype=np.float64), 1e-3)
    slope, intercept = np.polyfit(np.log(np.asarray(items, dtype=np.float64)), np.log(gaps), 1)
    return math.exp(intercept), -slope


def usdr_after(items: float, fit: tuple[float, float], ceiling: float) -> float:
    """The fitted curve's validation uSDR after ``items`` training items."""
    c, alpha = fit
    return ceiling - c * items**-alpha


def estimate_rows(
    card: dict,
    flops_per_item: float,
    batch: int,
    loader_items_per_s: float,
    minutes=(5, 15, 60),
) -> list[dict]:
    """One row per GPU class: items per second and the estimated uSDR after each budget.

    ``card``: the course model's card (``bsr.hub.model_card("course")``): its curve and the
    ideal ratio mask's uSDR on unseen practice songs, the ceiling of the fit.
    """
    curve = card["curve"]
    items = [step * int(card["batch"].split(" x ")[0]) for step in curve["valid_step"]]
    irm = card["scores"]["unseen practice songs"]["irm"]["uSDR"]
    ceiling = sum(irm.values()) / len(irm)
    fit = fit_gap(items, curve["valid_usdr"], ceiling)
    rows = []
    for gpu in GPU_CLASSES:
        rate = items_per_second(gpu, flops_per_item, batch, loader_items_per_s)
        row = {"gpu": gpu.name, "precision": gpu.precision, "items/s": rate}
        for budget in minutes:
            row[f"{budget} min"] = usdr_after(rate * 60 * budget, fit, ceiling)
        rows.append(row)
    return rows


def format_rows(rows: list[dict], course_usdr: float) -> str:
    """The estimates as a Markdown table, each figure marked as an estimate."""
    budgets = [key for key in rows[0] if key.endswith(" min")]
    heads = " | ".join(f"uSDR after {budget} (est.)" for budget in budgets)
    lines = [f"| GPU (precision) | items/s (est.) | {heads} |", "|---" * (2 + len(budgets)) + "|"]
    for row in rows:
        cells = [f"~{row[b]:.1f} dB" for b in budgets]
        lines.append(
            f"| {row['gpu']} ({row['precision']}) | ~{row['items/s']:.0f} | "
            + " | ".join(cells) + " |"
        )  # fmt: skip
    lines.append("")
    lines.append(
        f"For comparison, measured: the shipped course model reached {course_usdr:.2f} dB on the "
        "same validation chunks after 14,000 items (two CPU hours)."
    )
    return "\n".join(lines)
