"""``bsr bench memory``: the largest training batch that fits in 16, 24, 40 and 80 GB.

    bsr bench memory --presets paper-l6 paper-l12 --seconds 8

What a training step needs grows linearly with the batch: a **fixed** part (weights,
gradients, AdamW's two moments, workspaces) and a part **per item** (the activations kept
for the backward pass of one clip). Two measured steps, at batch 1 and batch 2, give both:

    per item = peak(2) - peak(1)        fixed = peak(1) - per item

and the largest batch for a card of ``N`` GB is ``floor((N GiB * usable - fixed) / per item)``,
where ``usable`` (0.9) leaves room for the CUDA context, cuBLAS/cuDNN workspaces and the
allocator's fragmentation. Those figures are *computed* and the table says so. On a GPU the
batch computed for the card in use is then *run*, stepping down until one fits, and that
row is marked *measured*. Activation checkpointing (``model.activation_checkpointing``)
trades per-item memory for a second forward pass in the backward; both settings are shown.

On a CPU there is no allocator to ask, so the peaks are counted: weights, gradients, AdamW
state and every tensor autograd saves for the backward pass. That misses temporary buffers,
so it is a lower bound and the table says so; the GPU figures are the real ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bsr.bench.common import (
    MIB,
    PeakMemory,
    Table,
    machine_summary,
    resolve_device,
    resolve_precision,
    software_summary,
    state_bytes,
)
from bsr.bench.model import train_step
from bsr.config import load_config
from bsr.errors import BsrError

CAPACITIES_GB = (16, 24, 40, 80)
USABLE = 0.9  # of a card's memory, for the batch computed to fit
GIB = 2**30
PROBE_BATCHES = (1, 2)


@dataclass(frozen=True)
class Probe:
    """What one memory measurement trains: a preset on clips of ``seconds``, and how."""

    preset: str
    seconds: float
    device: torch.device
    precision: str
    checkpointing: bool


def step_peak(probe: Probe, batch: int, seed: int = 0) -> int:
    """Peak bytes of one training step (after one to create AdamW's state), state included.

    GPU: measured by the caching allocator. CPU: the allocator keeps no account, so the
    figure is counted instead: weights, gradients and AdamW state, plus every tensor the
    autograd graph saves for the backward pass (:func:`saved_for_backward`).
    """
    from bsr.model import BSRoformer

    config = load_config(probe.preset)
    cfg, device = config.model, probe.device
    hop = cfg.hop_length
    samples = max(1, round(probe.seconds * cfg.sample_rate / hop)) * hop
    torch.manual_seed(seed)
    model = BSRoformer(cfg).to(device)
    model.activation_checkpointing = probe.checkpointing
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(batch, cfg.channels, samples, generator=generator).to(device)
    shape = (batch, len(cfg.stems), cfg.channels, samples)
    targets = 0.05 * torch.randn(*shape, generator=generator).to(device)
    step, optimizer = train_step(model, audio, targets, probe.precision, config.train)
    try:
        step()  # AdamW allocates its moments on the first step
        if device.type != "cuda":
            saved = saved_for_backward()
            with saved:
                step()
            gradients = sum(p.numel() * p.element_size() for p in model.parameters())
            return state_bytes(model, optimizer) + gradients + saved.bytes
        memory = PeakMemory(device)
        memory.start()
        step()
        return memory.stop(own=state_bytes(model, optimizer))
    finally:
        del model, optimizer, step, audio, targets
        if device.type == "cuda":
            torch.cuda.empty_cache()


class saved_for_backward(torch.autograd.graph.saved_tensors_hooks):
    """Count the bytes of every distinct tensor storage autograd keeps for the backward.

    Inside an activation-checkpointed block the checkpoint's own hooks take over, so only
    what it keeps (the block's input) is counted: exactly the memory it saves.
    """

    def __init__(self):
        self.storages: dict[int, int] = {}
        super().__init__(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


def largest_batch(fixed: float, per_item: float, capacity_gb: float) -> int | None:
    """``floor((capacity * USABLE - fixed) / per_item)``; 0 when nothing fits, None if unknown."""
    if not per_item > 0:
        return None
    return max(0, math.floor((capacity_gb * GIB * USABLE - fixed) / per_item))


def fits(probe: Probe, batch: int) -> bool:
    """Whether a training step at ``batch`` runs on the GPU without running out of memory."""
    try:
        step_peak(probe, batch)
        return True
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return False


def measured_batch(probe: Probe, start: int | None) -> int | None:
    """The largest batch from ``start`` down that runs on this GPU (None if none does)."""
    batch = start or 0
    while batch > 0 and not fits(probe, batch):
        batch -= 1
    return batch or None


def bench_memory(
    presets: Sequence[str] = ("paper-l6", "paper-l12"),
    seconds: float = 8.0,
    device: str | torch.device | None = None,
    precision: str = "auto",
    capacities: Sequence[float] = CAPACITIES_GB,
    checkpointing: Sequence[bool] = (False, True),
    verify: bool = True,
) -> Table:
    """Fixed and per-item training memory per preset, and the largest batch per capacity.

    Args:
        presets: preset names or YAML configs.
        seconds: length of each training clip (the paper trains on 8 s).
        device: ``cpu``, ``cuda``, ``cuda:N``; default the GPU if there is one.
        precision: ``auto`` (bf16 on a GPU, fp32 on a CPU), ``fp32``, ``bf16``, ``fp16``.
        capacities: card sizes in GB for the computed columns.
        checkpointing: which activation-checkpointing settings to measure.
        verify: on a GPU, run the batch computed for this card to confirm it fits.
    """
    if not seconds > 0:
        raise BsrError(f"--seconds must be positive, got {seconds}: pass a value above 0")
    if not capacities or not all(c > 0 for c in capacities):
        raise BsrError(f"--capacities must be positive GB figures, got {list(capacities)}")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    on_gpu = device.type == "cuda"
    card_gb = torch.cuda.get_device_properties(device).total_memory / GIB if on_gpu else None
    columns = ["preset", "checkpointing", "fixed GiB", "per item GiB"]
    columns += [f"{c:g} GB" for c in capacities]
    columns += ["this GPU, measured"] if on_gpu and verify else []
    table = Table(
        title="bsr bench memory: largest training batch",
        columns=columns,
        header=[
            machine_summary(device),
            software_summary(),
            f"run: training steps (forward, loss, backward, AdamW) on {seconds:g} s stereo "
            f"clips, {precision} on {device}, batches {PROBE_BATCHES[0]} and {PROBE_BATCHES[1]}",
        ],
    )
    measure_this_card = card_gb if on_gpu and verify else None
    for preset in presets:
        for ckpt in checkpointing:
            probe = Probe(preset, seconds, device, precision, ckpt)
            row, peaks = _memory_row(probe, capacities, measure_this_card)
            table.rows.append(row)
            table.details[f"{preset}_{ckpt}_peaks_mib"] = [p / MIB for p in peaks]
    table.notes = _memory_notes(on_gpu, measure_this_card)
    return table


def _memory_row(probe: Probe, capacities, card_gb: float | None) -> tuple[dict, list[int]]:
    """One table row: fixed and per-item memory from two probes, the largest batch per
    capacity, and with ``card_gb`` (a GPU to verify on) the batch that really runs there.
    Returns the row and the probes' peaks in bytes."""
    try:
        peaks = [step_peak(probe, batch) for batch in PROBE_BATCHES]
    except torch.OutOfMemoryError:
        raise BsrError(
            f"{probe.preset}: a training step at batch {PROBE_BATCHES[-1]} of "
            f"{probe.seconds:g} s does not fit on this GPU: pass a shorter --seconds"
        ) from None
    per_item = (peaks[1] - peaks[0]) / (PROBE_BATCHES[1] - PROBE_BATCHES[0])
    fixed = peaks[0] - PROBE_BATCHES[0] * per_item
    row = {
        "preset": load_config(probe.preset).name,
        "checkpointing": "on" if probe.checkpointing else "off",
        "fixed GiB": fixed / GIB,
        "per item GiB": per_item / GIB if per_item > 0 else None,
    }
    for capacity in capacities:
        row[f"{capacity:g} GB"] = largest_batch(fixed, per_item, capacity)
    if card_gb is not None:
        # Start from what all of the card would hold, and step down until one fits.
        optimistic = largest_batch(fixed, per_item, card_gb / USABLE)
        row["this GPU, measured"] = measured_batch(probe, optimistic)
    return row, peaks


def _memory_notes(on_gpu: bool, card_gb: float | None) -> list[str]:
    """How the columns were computed, how the peaks were taken, what was run for real."""
    notes = [
        f"GB columns are computed: floor(({USABLE:g} x N GiB - fixed) / per item), the rest "
        "left for the CUDA context, library workspaces and fragmentation",
        "peaks measured with torch.cuda.max_memory_allocated (weights, gradients and AdamW "
        "state included)"
        if on_gpu
        else "peaks counted, not measured (a CPU keeps no allocator account): weights, "
        "gradients, AdamW state and the tensors saved for the backward pass. That is a lower "
        "bound without temporary buffers: run this on the GPU for the real figures",
    ]
    if card_gb is not None:
        notes.append(
            f"measured: the computed batch for this {card_gb:.0f} GiB card run for real, "
            "stepping down until a step fits"
        )
    return notes
