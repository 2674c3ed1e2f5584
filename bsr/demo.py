"""``bsr demo``: the main job on the embedded data.

For now this runs the untrained ``tiny`` model over the real MUSDB18 excerpt that the
stempeg package ships, to show the whole signal path end to end: 7 s of stereo music in,
four stems of the same length out. (Training and evaluation join with the pipeline.)
"""

from __future__ import annotations

import time

import torch

from bsr.config import load_config
from bsr.model import BSRoformer, count_parameters


def run(preset: str = "tiny") -> dict[str, float]:
    from bsr.ffmpeg import ensure_ffmpeg

    ensure_ffmpeg()
    import stempeg

    stems, rate = stempeg.read_stems(stempeg.example_stem_path())  # (5, samples, 2)
    mixture = torch.from_numpy(stems[0].T.copy()).float().unsqueeze(0)  # (1, 2, samples)
    torch.manual_seed(0)
    model = BSRoformer(load_config(preset).model).eval()
    start = time.perf_counter()
    with torch.inference_mode():
        estimates = model(mixture)  # (1, stems, 2, samples)
    seconds = time.perf_counter() - start
    duration = mixture.shape[-1] / rate
    print(f"model: {preset}, {count_parameters(model) / 1e6:.2f}M parameters (untrained)")
    print(f"input: The Easton Ellises - Falcon 69, {duration:.1f} s stereo at {rate} Hz")
    print(f"output: {tuple(estimates.shape)} (batch, stems, channels, samples)")
    print(f"separated in {seconds:.2f} s on {'GPU' if mixture.is_cuda else 'CPU'}")
    return {"seconds": seconds, "duration": duration}
