"""The GPU estimates of notebook 06: a fit of the course model's curve, and items per second."""

from __future__ import annotations

import math

import pytest

from bsr.bench.estimate import (
    GPU_CLASSES,
    STEP_FLOOR_S,
    GpuClass,
    estimate_rows,
    fit_gap,
    format_rows,
    items_per_second,
    usdr_after,
)
from bsr.hub import model_card


@pytest.fixture(scope="module")
def card():
    return model_card("course")


def test_the_fit_follows_the_measured_curve(card):
    curve = card["curve"]
    items = [4 * step for step in curve["valid_step"]]
    fit = fit_gap(items, curve["valid_usdr"], ceiling=9.56)
    misses = [abs(usdr_after(n, fit, 9.56) - u) for n, u in zip(items, curve["valid_usdr"])]
    assert max(misses) < 0.4, misses  # a power-law gap describes the curve
    assert 0.1 < fit[1] < 1.0


def test_a_power_law_is_recovered_exactly():
    items = [1e3, 1e4, 1e5]
    usdr = [10 - 5 * n**-0.3 for n in items]
    c, alpha = fit_gap(items, usdr, ceiling=10)
    assert c == pytest.approx(5) and alpha == pytest.approx(0.3)


def test_items_per_second_is_the_tightest_limit():
    gpu = GpuClass("X", "bf16", peak_tflops=100.0, assumed_mfu=0.1)  # 1e13 FLOP/s achieved
    assert items_per_second(gpu, 1e10, batch=32, loader_items_per_s=1e9) == pytest.approx(1000)
    assert items_per_second(gpu, 1e10, batch=8, loader_items_per_s=1e9) == pytest.approx(
        8 / STEP_FLOOR_S
    )
    assert items_per_second(gpu, 1e10, batch=32, loader_items_per_s=50) == 50


def test_rows_grow_with_time_and_stay_below_the_oracle(card):
    rows = estimate_rows(card, flops_per_item=11e9, batch=32, loader_items_per_s=1800)
    assert [row["gpu"] for row in rows] == [gpu.name for gpu in GPU_CLASSES]
    irm = card["scores"]["unseen practice songs"]["irm"]["uSDR"]
    ceiling = sum(irm.values()) / len(irm)
    for row in rows:
        values = [row["5 min"], row["15 min"], row["60 min"]]
        assert values == sorted(values) and values[-1] < ceiling
        assert all(math.isfinite(v) for v in values)
    t4 = rows[0]
    assert t4["15 min"] > card["curve"]["valid_usdr"][-1]  # more items than two CPU hours
    text = format_rows(rows, card["curve"]["valid_usdr"][-1])
    assert text.count("(est.)") == 4 and "measured" in text.splitlines()[-1]
