"""``bsr bench model``: training and inference steps of a preset's network, timed in turn
with the peer's when asked.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bsr.bench.common import (
    MIB,
    PeakMemory,
    Table,
    autocast,
    check_positive,
    machine_summary,
    peak_flops,
    resolve_device,
    resolve_precision,
    software_summary,
    state_bytes,
    timed,
)
from bsr.bench.flops import model_flops
from bsr.bench.peer import (
    PEER_PACKAGE,
    PEER_VERSION,
    PEERS,
    SAME_OUTPUT_TOLERANCE,
    build_peer,
    comparable_config,
    output_error,
    peer_module,
    quiet_peer,
    with_stem_axis,
)
from bsr.config import Config, ModelConfig, TrainConfig, load_config
from bsr.errors import BsrError

MODES = ("train", "infer", "both")


def train_step(
    net: torch.nn.Module,
    audio: torch.Tensor,
    targets: torch.Tensor,
    precision: str,
    train: TrainConfig,
    stft_loss: bool = True,
) -> tuple[Callable[[], None], torch.optim.Optimizer]:
    """A function doing one training step of ``net`` as ``bsr train`` does, and its optimizer.

    ``stft_loss=False`` keeps only the waveform L1, which leaves the network's own cost.
    """
    from bsr.loss import separation_loss
    from bsr.train import make_optimizer

    device = audio.device
    optimizer = make_optimizer(net, train, device)  # bsr train's optimizer, for both networks
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    net.train()

    def step() -> None:
        with autocast(device, precision):
            estimate = with_stem_axis(net(audio))
        windows = train.stft_loss_windows if stft_loss else ()
        loss, _ = separation_loss(
            estimate, targets, hop_length=train.stft_loss_hop, windows=tuple(windows)
        )
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step, optimizer


def infer_step(net: torch.nn.Module, audio: torch.Tensor, precision: str) -> Callable[[], None]:
    """A function doing one forward pass of ``net`` under ``torch.inference_mode``."""
    net.eval()

    def step() -> None:
        with torch.inference_mode(), autocast(audio.device, precision):
            net(audio)

    return step


@dataclass
class Contender:
    """One network under test: its name, its step function and what it holds in memory."""

    name: str
    step: Callable[[], None]
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer | None = None
    quiet: bool = False  # run under quiet_peer()
    times: list[float] = field(default_factory=list)
    peak: int = 0


def run_step(contender: Contender, fn: Callable[[], Any]) -> Any:
    """``fn()`` for one contender: the peer quietly, and its failures as a BsrError."""
    if not contender.quiet:
        return fn()
    with quiet_peer():
        try:
            return fn()
        except RuntimeError as error:
            reason = str(error).splitlines()[0][:120]
            raise BsrError(
                f"{PEER_PACKAGE} {PEER_VERSION} failed here ({reason}): try --precision fp32, "
                "or run without --compare"
            ) from None


def run_in_turn(
    contenders: Sequence[Contender], steps: int, warmup: int, device: torch.device
) -> str:
    """Warm up, then time ``steps`` steps of each contender, taking turns step by step.

    Fills each contender's ``times`` and ``peak``; returns how memory was measured.
    """
    memory = PeakMemory(device)
    for _ in range(warmup):
        for c in contenders:
            run_step(c, c.step)
    for _ in range(steps):
        for c in contenders:
            memory.start()
            c.times.append(run_step(c, lambda c=c: timed(c.step, device)))
            c.peak = max(c.peak, memory.stop(own=state_bytes(c.module, c.optimizer)))
    return memory.method


def describe_config(name: str, config: ModelConfig, parameters: int) -> str:
    """One line: the network's sizes, its bands and STFT, its parameter count."""
    from bsr.bands import make_layout

    layout = make_layout(config.bands, config.sample_rate, config.n_fft, config.num_mel_bands)
    bands = config.bands if isinstance(config.bands, str) else "custom"
    return (
        f"config: {name}: dim {config.dim}, depth {config.depth}, heads {config.heads}x"
        f"{config.head_dim}, {layout.num_bands} {bands} bands, n_fft {config.n_fft}, hop "
        f"{config.hop_length}, {config.channels} ch, {len(config.stems)} stems, mask_norm "
        f"{config.mask_norm}, gates {config.gates}, expansion {config.mlp_expansion_factor}, "
        f"{parameters / 1e6:.2f}M parameters"
    )


MODEL_COLUMNS = [
    "network",
    "step",
    "precision",
    "median ms",
    "steps/s",
    "audio s/s",
    "peak MiB",
    "TFLOP/s",
    "MFU",
]


def bench_model(
    preset: str = "small",
    batch: int | None = None,
    seconds: float | None = None,
    precision: str = "auto",
    steps: int = 10,
    warmup: int = 3,
    device: str | torch.device | None = None,
    compare: str | None = None,
    mode: str = "both",
    peak_tflops: float | None = None,
    stft_loss: bool = True,
    seed: int = 0,
) -> Table:
    """Training and/or inference speed of a preset's model, optionally against the peer.

    Args:
        preset: preset name or YAML config.
        batch, seconds: clips per step and their length; default: the preset's
            ``train.batch_size`` and ``train.segment_seconds``. The length is rounded to
            a whole number of STFT hops (the peer's iSTFT returns exactly that).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (autocast; fp16 needs a GPU).
        steps, warmup: timed steps (the median is reported) and untimed ones before.
        device: ``cpu``, ``cuda``, ``cuda:N``; default the GPU if there is one.
        compare: ``"lucidrains"`` times bs-roformer 0.4.1 beside bsr.
        mode: ``train`` (forward, loss, backward, AdamW), ``infer`` (forward), ``both``.
        peak_tflops: the device's peak, for MFU where :data:`PEAK_FLOPS` does not know it.
        stft_loss: False trains on the waveform L1 alone, leaving out the multi-resolution
            STFT loss (whose cost does not depend on the network).
    """
    from bsr.model import BSRoformer, count_parameters

    _check_arguments(mode, compare, batch, seconds, steps, warmup, peak_tflops)
    run = _plan(preset, batch, seconds, precision, device, compare)
    torch.manual_seed(seed)
    model = BSRoformer(run.model_config).to(run.device)
    audio, targets = _random_batch(run.model_config, run.batch, run.samples, seed, run.device)
    peak, peak_source = peak_flops(run.device, run.precision, peak_tflops)
    forward_flops = model_flops(run.model_config, run.batch, run.samples)
    details: dict[str, Any] = {
        "forward_flops": forward_flops,
        "samples": run.samples,
        "peak_flops": peak,
        "changes": run.changes,
    }
    networks: list[tuple[str, torch.nn.Module, bool]] = [("bsr", model, False)]
    extra, notes = "", []
    if compare is not None:
        networks.append(("lucidrains", _checked_peer(model, audio, run.device, details), True))
        extra = f", {PEER_PACKAGE} {PEER_VERSION}"
        notes = _comparison_notes(details["relative_error"], run.changes, run.device)

    header = _run_line(run, steps, warmup)
    table = Table(
        title=f"bsr bench model: {run.config.name}" + (f" vs {compare}" if compare else ""),
        columns=list(MODEL_COLUMNS),
        header=[
            machine_summary(run.device),
            software_summary(extra),
            describe_config(run.config.name, run.model_config, count_parameters(model)),
            header,
        ],
        formats={"MFU": "{:.1%}"},
        details=details,
    )
    kinds = ("train", "infer") if mode == "both" else (mode,)
    timing = (steps, warmup, stft_loss, forward_flops, peak)
    memory_method = _time_each_kind(table, run, networks, kinds, audio, targets, *timing)
    if compare and run.device.type == "cpu":
        memory_method += " (includes the other network)"
    table.notes = [
        *_model_notes(run.config.train, stft_loss, forward_flops, peak_source, memory_method),
        *notes,
    ]
    return table


@dataclass
class _Run:
    """What one :func:`bench_model` call times: which network, on what batch, where."""

    config: Config
    model_config: ModelConfig
    changes: list[str]  # how the preset was adapted to the peer's layout (with --compare)
    device: torch.device
    precision: str
    batch: int
    samples: int  # per clip, a whole number of STFT hops
    seconds: float  # the same length in seconds


def _plan(preset, batch, seconds, precision, device, compare) -> _Run:
    """The preset's network and the batch to time it on, the defaults filled in."""
    config = load_config(preset)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    batch = batch or config.train.batch_size
    seconds = seconds or config.train.segment_seconds
    model_config, changes = config.model, []
    if compare is not None:
        model_config, changes = comparable_config(model_config)
        peer_module()  # fail early, before building anything
    hop, rate = model_config.hop_length, model_config.sample_rate
    samples = max(1, round(seconds * rate / hop)) * hop
    return _Run(config, model_config, changes, device, precision, batch, samples, samples / rate)


def _run_line(run: _Run, steps: int, warmup: int) -> str:
    """The header line saying what one step is: batch, length, precision, device."""
    frames = run.samples // run.model_config.hop_length + 1
    return (
        f"run: batch {run.batch} x {run.seconds:.2f} s ({run.samples} samples, "
        f"{frames} frames), {run.precision} on {run.device}, median of {steps} steps "
        f"after {warmup} warm-up"
    )


def _time_each_kind(
    table, run: _Run, networks, kinds, audio, targets, steps, warmup, stft_loss, flops, peak
) -> str:
    """Time every network in each kind of step, in turn; add the rows. Returns how memory
    was measured."""
    memory_method = ""
    for kind in kinds:
        contenders = [
            _contender(
                kind, name, net, quiet, audio, targets, run.precision, run.config.train, stft_loss
            )
            for name, net, quiet in networks
        ]
        memory_method = run_in_turn(contenders, steps, warmup, run.device)
        kind_flops = flops * (3 if kind == "train" else 1)
        audio_seconds = run.batch * run.seconds
        _add_rows(table, contenders, kind, run.precision, audio_seconds, kind_flops, peak)
        for c in contenders:  # free gradients and optimizer state before the next mode
            c.optimizer = None
            c.module.zero_grad(set_to_none=True)
        del contenders
    return memory_method


def _check_arguments(mode, compare, batch, seconds, steps, warmup, peak_tflops) -> None:
    """One-line errors for arguments :func:`bench_model` cannot run with."""
    if mode not in MODES:
        raise BsrError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    if compare is not None and compare not in PEERS:
        raise BsrError(f"cannot compare with {compare!r}: the one peer is {', '.join(PEERS)}")
    check_positive(batch=batch, seconds=seconds, steps=steps, peak_tflops=peak_tflops)
    if warmup < 0:
        raise BsrError(f"--warmup must be 0 or more, got {warmup}")


def _random_batch(config: ModelConfig, batch: int, samples: int, seed: int, device):
    """Seeded noise as the mixtures ``(batch, C, samples)`` and the targets ``(batch, stems,
    C, samples)`` (speed does not depend on what the audio is)."""
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(batch, config.channels, samples, generator=generator)
    shape = (batch, len(config.stems), config.channels, samples)
    targets = 0.05 * torch.randn(*shape, generator=generator)
    return audio.to(device), targets.to(device)


def _checked_peer(model: torch.nn.Module, audio: torch.Tensor, device, details: dict):
    """The peer network with ``model``'s weights, once its output is checked to be the same."""
    peer = build_peer(model, device)
    error = output_error(model, peer, audio[:1])
    if not error <= SAME_OUTPUT_TOLERANCE:
        raise BsrError(
            f"bsr and {PEER_PACKAGE} disagree (relative error {error:.2g} > "
            f"{SAME_OUTPUT_TOLERANCE:g}), so timing them would compare different work: "
            f"check that {PEER_PACKAGE}=={PEER_VERSION} is installed"
        )
    details["relative_error"] = error
    return peer


def _comparison_notes(error: float, changes: list[str], device: torch.device) -> list[str]:
    """What the table's ratios mean and how the two networks were made comparable."""
    what = ", ".join(changes) if changes else "none needed"
    notes = [
        "ratios are bsr / lucidrains: above 1 in steps/s means bsr is faster, below 1 "
        "in peak MiB means bsr needs less memory",
        f"compared: {PEER_PACKAGE} {PEER_VERSION} with bsr's weights; outputs checked "
        f"equal first (fp32, relative error {error:.1e} <= {SAME_OUTPUT_TOLERANCE:g}); "
        f"preset adapted to the community layout ({what}); steps alternate bsr, peer",
    ]
    if device.type == "cuda" and "A100" not in torch.cuda.get_device_name(device):
        notes.append(
            f"{PEER_PACKAGE} {PEER_VERSION} turns off the flash-attention kernel on GPUs "
            "other than the A100 (its own choice, measured as shipped)"
        )
    return notes


def _contender(kind, name, net, quiet, audio, targets, precision, train, stft_loss) -> Contender:
    """One network ready to time in mode ``kind`` (``train`` or ``infer``)."""
    if kind == "train":
        step, optimizer = train_step(net, audio, targets, precision, train, stft_loss)
        return Contender(name, step, net, optimizer, quiet)
    return Contender(name, infer_step(net, audio, precision), net, None, quiet)


def _add_rows(table: Table, contenders, kind, precision, audio_seconds, flops, peak) -> None:
    """A row per timed network, and with two of them a row of their ratios."""
    rows = []
    for c in contenders:
        median = statistics.median(c.times)
        achieved = flops / median
        rows.append(
            {
                "network": c.name,
                "step": kind,
                "precision": precision,
                "median ms": 1e3 * median,
                "steps/s": 1.0 / median,
                "audio s/s": audio_seconds / median,
                "peak MiB": c.peak / MIB,
                "TFLOP/s": achieved / 1e12,
                "MFU": achieved / peak if peak else None,
            }
        )
        table.details[f"{c.name}_{kind}_times"] = list(c.times)
    table.rows.extend(rows)
    if len(rows) == 2:
        ours, theirs = rows
        ratios = {
            key: ours[key] / theirs[key] if theirs[key] else None
            for key in ("median ms", "steps/s", "audio s/s", "peak MiB", "TFLOP/s")
        }
        table.details[f"ratio_{kind}"] = ratios
        table.rows.append(
            {"network": "bsr / lucidrains", "step": kind, "precision": precision}
            | {key: f"{value:.2f}x" if value else None for key, value in ratios.items()}
        )


def _model_notes(train, stft_loss: bool, forward_flops: float, peak_source: str, memory: str):
    """What a step is, how the FLOPs are counted and how memory was measured."""
    loss = (
        f"waveform L1 + STFT L1 (hop {train.stft_loss_hop}, windows "
        f"{list(train.stft_loss_windows)})"
        if stft_loss and train.stft_loss_windows
        else "waveform L1 (no STFT loss)"
    )
    return [
        f"train = forward + {loss} + backward + AdamW; infer = forward under torch.inference_mode",
        f"FLOPs: analytic matrix products, forward {forward_flops / 1e9:.3g} GFLOP per step, "
        f"train counts 3x; MFU peak: {peak_source}",
        f"peak memory: {memory}",
    ]
