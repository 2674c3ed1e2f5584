"""RMSNorm against a float64 formula, on silent input, and under mixed precision."""

import warnings

import torch

from bsr.norm import RMSNorm
from bsr.stacked import stacked_rms_norm


def reference(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x / x.square().mean(-1, keepdim=True).sqrt() * gamma.double()


def test_matches_float64_formula_and_keeps_silence_silent():
    norm = RMSNorm(16)
    torch.nn.init.normal_(norm.gamma)
    x = torch.randn(5, 7, 16) * torch.logspace(-6, 3, 7)[:, None]  # quiet to loud rows
    assert torch.allclose(norm(x).double(), reference(x, norm.gamma), rtol=1e-5, atol=1e-6)
    silent = norm(torch.zeros(3, 16))
    assert torch.equal(silent, torch.zeros(3, 16))  # a silent band: zeros, not NaN


def test_stacked_form_matches_one_norm_per_band():
    norms = [RMSNorm(8) for _ in range(3)]
    for norm in norms:
        torch.nn.init.normal_(norm.gamma)
    x = torch.randn(4, 3, 8)  # (..., bands, dim)
    expected = torch.stack([norm(x[:, k]) for k, norm in enumerate(norms)], dim=1)
    assert torch.allclose(stacked_rms_norm(x, norms), expected, atol=1e-6)


def test_half_precision_under_autocast_without_warnings():
    norm, linear = RMSNorm(8), torch.nn.Linear(8, 8)
    with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16):
        warnings.simplefilter("error")
        half = linear(torch.randn(2, 8))
        out = norm(half)
    assert half.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert torch.allclose(out.double(), reference(half.float(), norm.gamma), rtol=1e-2)
