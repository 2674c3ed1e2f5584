"""Benchmarks: how fast bsr trains, separates, makes data and scores, one table each.

    bsr bench model --preset small --batch 4 --seconds 3 [--compare lucidrains]
    bsr bench separate --preset small --minutes 3
    bsr bench data
    bsr bench eval
    bsr bench memory --presets paper-l6 paper-l12   (in bsr.bench_memory)

Every table comes with header lines naming the machine, the torch version and the
configuration, so that a figure never travels without its context. These functions print
figures; the unit tests only check that they run, never how fast.

How ``bench model`` measures
----------------------------
* A **training step** is what ``bsr train`` does per batch: forward, the separation loss
  (the preset's STFT-loss hop and windows), backward, an AdamW step. An **inference
  step** is one forward pass under ``torch.inference_mode``.
* Every step is timed on its own, with ``torch.cuda.synchronize`` before and after on a
  GPU. After ``warmup`` untimed steps the table reports the **median** of ``steps`` timed
  ones: one slow step (a page fault, another process) does not move it.
* **MFU**, model FLOPs utilisation, is ``FLOPs the network needs / time / peak FLOP/s of
  the device``. The FLOPs are counted by hand in :func:`flop_breakdown`: every matrix
  product (band split, attention projections, ``Q K^T`` and ``A V``, feed-forward, mask
  estimators) at 2 FLOPs per multiply-add. The backward pass costs twice the forward, so
  a training step counts 3x. STFTs, norms, softmax and the loss are left out, as is usual
  for MFU: it tells how well the matrix units are used by the work that matters.
  The peak comes from :data:`PEAK_FLOPS` (dense data-sheet figures); a CPU has no
  entry, so its MFU reads ``n/a`` unless you give ``--peak-tflops``.
* **Peak memory**: on a GPU, the model's own weights and optimizer state plus the most
  that one step allocates on top (``torch.cuda.max_memory_allocated``), so that two
  models in one process do not count each other. On the CPU there is no allocator
  counter: the figure is the **process's** peak resident set size (Linux ``VmHWM``,
  reset before each step), Python, torch and the other model included.
* ``--compare lucidrains`` builds lucidrains' ``bs-roformer`` 0.4.1 with the same
  network, loads the bsr model's weights into it, checks once that both give the same
  output (relative error at most 1e-4 in fp32), then times the two in turn, step by step
  (bsr, peer, bsr, peer, ...), so that a drift in machine speed hits both alike.
  The peer knows only the community layout, so the preset is adapted first
  (:func:`comparable_config`) and the table says what changed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bsr.config import ModelConfig, TrainConfig, load_config
from bsr.errors import BsrError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODES = ("train", "infer", "both")
PEERS = ("lucidrains",)
PEER_PACKAGE = "bs-roformer"
PEER_VERSION = "0.4.1"
SAME_OUTPUT_TOLERANCE = 1e-4  # relative error allowed between bsr and the peer, fp32
MIB = 2**20

# Dense (no sparsity) peak FLOP/s from NVIDIA's data sheets, by precision. The first entry
# whose name occurs in torch.cuda.get_device_name() wins, so specific names come first.
# "tf32" is used for fp32 when torch lets matrix products run in TF32.
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989e12, "fp16": 989e12, "tf32": 495e12, "fp32": 67e12}),
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51e12}),
    ("H100 NVL", {"bf16": 835e12, "fp16": 835e12, "tf32": 418e12, "fp32": 60e12}),
    ("H100", {"bf16": 989e12, "fp16": 989e12, "tf32": 495e12, "fp32": 67e12}),  # SXM
    ("A100", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "tf32": 183e12, "fp32": 91.6e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30.3e12}),
    ("V100", {"fp16": 125e12, "fp32": 15.7e12}),
    ("T4", {"fp16": 65e12, "fp32": 8.1e12}),
)


# ---------------------------------------------------------------------------- the table


def _cell(value: Any) -> str:
    """A table cell: about three significant digits, ``n/a`` for missing values."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


@dataclass
class Table:
    """One benchmark's result: header lines, rows of raw values, and notes.

    ``rows`` hold numbers (``None`` where a figure is not available); :meth:`format`
    turns them into text. ``formats`` maps a column to a format string such as
    ``"{:.1%}"``; ``details`` keeps machine-readable extras (FLOP counts, ratios, ...).
    """

    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        """The raw values of one column, row by row."""
        return [row.get(name) for row in self.rows]

    def _format_cell(self, column: str, value: Any) -> str:
        spec = self.formats.get(column)
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            return spec.format(value)
        return _cell(value)

    def format(self) -> str:
        """Header lines, then a Markdown table, then notes as a list."""
        lines = [f"## {self.title}", "", *self.header, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        aligns = ["---" if i == 0 else "---:" for i in range(len(self.columns))]
        lines.append("| " + " | ".join(aligns) + " |")
        for row in self.rows:
            cells = [self._format_cell(c, row.get(c)) for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the machine


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_summary(device: torch.device | None = None) -> str:
    """``machine: <CPU>, <cores> cores (<threads> torch threads)[, GPU <name>]``."""
    text = (
        f"machine: {cpu_name()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"
    )
    if device is not None and device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        text += f", GPU {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    elif torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)} (not used)"
    else:
        text += ", no GPU"
    return text


def software_summary(extra: str = "") -> str:
    """``torch 2.x (CUDA y), bsr 0.z`` and anything else that matters to the figures."""
    from bsr import __version__

    cuda = f" (CUDA {torch.version.cuda})" if torch.version.cuda else ""
    return f"software: torch {torch.__version__}{cuda}, bsr {__version__}{extra}"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> the GPU if there is one, else the CPU; refuse what cannot run here."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise BsrError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise BsrError(f"bench runs on cpu or cuda, not {device.type}: pass --device cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BsrError("--device cuda but torch sees no CUDA GPU: use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BsrError(
                f"--device {device} but there are {torch.cuda.device_count()} GPUs: "
                "pick one that exists"
            )
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 (or fp16) on a GPU, fp32 on the CPU; refuse fp16 on the CPU."""
    if precision not in PRECISIONS:
        raise BsrError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if device.type == "cpu" and precision == "fp16":
        raise BsrError("--precision fp16 needs a CUDA GPU: use fp32 or bf16 on the CPU")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise BsrError("this GPU has no bf16 support: use --precision fp16 or fp32")
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed precision for ``bf16``/``fp16``, nothing for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU to finish its queue, so that a timer sees the work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of ``fn()``, GPU work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def peak_flops(
    device: torch.device, precision: str, peak_tflops: float | None = None
) -> tuple[float | None, str]:
    """The device's peak FLOP/s for ``precision`` and where the figure comes from.

    ``peak_tflops`` (given by the user) wins; otherwise a GPU is looked up in
    :data:`PEAK_FLOPS`. Returns ``(None, reason)`` when the peak is unknown (any CPU).
    """
    if peak_tflops is not None:
        return peak_tflops * 1e12, f"{peak_tflops:g} TFLOP/s (given by --peak-tflops)"
    if device.type != "cuda":
        return None, "unknown for a CPU (give --peak-tflops for MFU)"
    name = torch.cuda.get_device_name(device)
    kind = precision
    if precision == "fp32" and getattr(torch.backends.cuda.matmul, "allow_tf32", False):
        kind = "tf32"  # torch runs fp32 matrix products as TF32 when allowed
    for key, peaks in PEAK_FLOPS:
        if key in name:
            if kind not in peaks:
                return None, f"no {kind} tensor-core peak for {key}"
            return peaks[kind], f"{key} {kind} dense peak {peaks[kind] / 1e12:g} TFLOP/s"
    return None, f"unknown for {name} (give --peak-tflops for MFU)"


# ---------------------------------------------------------------------------- memory


def _read_status(key: str) -> int | None:
    """A ``/proc/self/status`` entry in bytes (``VmHWM``, ``VmRSS``), None if unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_rss_peak() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def _lifetime_rss_peak() -> int:
    """The process's peak RSS since it started, from ``getrusage`` (KiB on Linux)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024


class PeakMemory:
    """Peak memory of the work between :meth:`start` and :meth:`stop`, in bytes.

    GPU: what was allocated at the start (minus ``own`` bytes, which stay counted) is
    subtracted, so another model sitting in the same process is not counted. CPU: the
    process's peak RSS, reset at the start where Linux allows it, else its lifetime peak.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.resettable = device.type == "cuda" or _reset_rss_peak()
        self.method = (
            "torch.cuda.max_memory_allocated"
            if device.type == "cuda"
            else "process peak RSS (VmHWM, reset before each step)"
            if self.resettable
            else "process lifetime peak RSS (getrusage)"
        )

    def start(self) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.resettable:
            _reset_rss_peak()

    def stop(self, own: int = 0) -> int:
        if self.device.type == "cuda":
            synchronize(self.device)
            return own + torch.cuda.max_memory_allocated(self.device) - self.before
        peak = _read_status("VmHWM") if self.resettable else None
        return peak if peak is not None else _lifetime_rss_peak()


def state_bytes(module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Bytes held by a model between steps: parameters, buffers, optimizer state."""
    tensors = [*module.parameters(), *module.buffers()]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors.extend(v for v in state.values() if torch.is_tensor(v))
    return sum(t.numel() * t.element_size() for t in tensors)


# ---------------------------------------------------------------------------- FLOPs


def flop_breakdown(config: ModelConfig, batch: int, samples: int) -> dict[str, float]:
    """Forward-pass FLOPs of every matrix product in the network, by part.

    A product of an ``(m, k)`` and a ``(k, n)`` matrix is ``m * k * n`` multiply-adds,
    counted as 2 FLOPs each. With ``T`` frames, ``N`` bands and width ``D``, the
    Transformers see ``B * T * N`` tokens, whether the sequences run over time (length
    ``T``) or over bands (length ``N``).
    """
    from bsr.bands import make_layout

    layout = make_layout(config.bands, config.sample_rate, config.n_fft, config.num_mel_bands)
    frames = samples // config.hop_length + 1  # centred STFT
    bands = layout.num_bands
    features = [2 * config.channels * size for size in layout.sizes]  # per band, 2*C*F_b
    rows = batch * frames  # one row per (example, frame)
    tokens = rows * bands
    dim, inner = config.dim, config.heads * config.head_dim

    def linear(count: float, n_in: int, n_out: int) -> float:
        return 2.0 * count * n_in * n_out

    # One Transformer layer: projections and feed-forward per token, attention per pair.
    projections = linear(tokens, dim, 3 * inner) + linear(tokens, inner, dim)
    if config.gates:
        projections += linear(tokens, dim, config.heads)
    feed_forward = linear(tokens, dim, config.ff_mult * dim) + linear(
        tokens, config.ff_mult * dim, dim
    )

    def scores(seq: int) -> float:  # Q K^T and A V: each 2 * seq * inner per token
        return 2 * (2.0 * tokens * seq * inner)

    time_layers = config.depth * config.time_transformer_depth
    band_layers = config.depth * config.band_transformer_depth
    hidden = dim * config.mlp_expansion_factor
    mask = 0.0
    for size in features:
        widths = [dim] + [hidden] * (config.mask_estimator_depth - 1) + [2 * size]  # GLU: 2x
        mask += sum(linear(rows, a, b) for a, b in zip(widths[:-1], widths[1:]))
    return {
        "band split": sum(linear(rows, size, dim) for size in features),
        "attention projections": (time_layers + band_layers) * projections,
        "attention scores": time_layers * scores(frames) + band_layers * scores(bands),
        "feed-forward": (time_layers + band_layers) * feed_forward,
        "mask estimators": len(config.stems) * mask,
    }


def model_flops(config: ModelConfig, batch: int, samples: int) -> float:
    """Forward-pass FLOPs of the network on ``batch`` clips of ``samples`` samples.

    A training step (forward + backward) costs about three times this.
    """
    return sum(flop_breakdown(config, batch, samples).values())


# ---------------------------------------------------------------------------- the peer


COMMUNITY_SETTINGS = {
    "mask_norm": "final",
    "gates": True,
    "mlp_expansion_factor": 4,
    "ff_mult": 4,
    "rope_theta": 10000.0,
}


def comparable_config(config: ModelConfig) -> tuple[ModelConfig, list[str]]:
    """``config`` in the community layout that bs-roformer 0.4.1 can build.

    Same dims, bands, STFT and hop; final norm, attention gates and expansion 4 where the
    preset differs. Returns the new config and the changes as ``"key: old -> new"``.
    """
    if config.bands == "mel":
        raise BsrError(
            "--compare lucidrains needs band-split bands, not mel bands: use a preset "
            "such as tiny, small or paper-l6"
        )
    changes = [
        f"{key}: {getattr(config, key)!r} -> {value!r}"
        for key, value in COMMUNITY_SETTINGS.items()
        if getattr(config, key) != value
    ]
    bands = list(config.bands) if isinstance(config.bands, list) else config.bands
    new = dataclasses.replace(config, stems=list(config.stems), bands=bands, **COMMUNITY_SETTINGS)
    return new.validate(), changes


def peer_module():
    """The ``bs_roformer`` package, or a BsrError saying how to install it."""
    from importlib import metadata

    try:
        import bs_roformer
    except ImportError:
        raise BsrError(
            f"--compare lucidrains needs {PEER_PACKAGE}: pip install {PEER_PACKAGE}=={PEER_VERSION}"
        ) from None
    version = metadata.version(PEER_PACKAGE)
    if version != PEER_VERSION:
        raise BsrError(
            f"--compare lucidrains is written for {PEER_PACKAGE} {PEER_VERSION}, found "
            f"{version}: pip install {PEER_PACKAGE}=={PEER_VERSION}"
        )
    return bs_roformer


@contextlib.contextmanager
def quiet_peer():
    """Hide the peer's chatter: deprecation warnings and a print on first use of a GPU."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def build_peer(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """bs-roformer 0.4.1's BSRoformer with the bsr ``model``'s settings and weights."""
    from bsr.community import community_kwargs, to_community_state_dict

    package = peer_module()
    with quiet_peer():
        peer = package.BSRoformer(**community_kwargs(model.config))
        peer.load_state_dict(to_community_state_dict(model))  # strict: every key
    return peer.to(device)


def with_stem_axis(out: torch.Tensor) -> torch.Tensor:
    """The peer drops the stem axis for one stem: give it back, ``(batch, stems, C, L)``."""
    return out if out.dim() == 4 else out.unsqueeze(1)


def output_error(model: torch.nn.Module, peer: torch.nn.Module, audio: torch.Tensor) -> float:
    """Relative error ``|bsr - peer| / |peer|`` of the two outputs, fp32, eval mode."""
    modes = model.training, peer.training
    model.eval(), peer.eval()
    try:
        with torch.no_grad(), quiet_peer():
            ours = model(audio).float()
            theirs = with_stem_axis(peer(audio)).float()
    finally:
        model.train(modes[0]), peer.train(modes[1])
    if ours.shape != theirs.shape:
        raise BsrError(
            f"bsr gives {tuple(ours.shape)} but {PEER_PACKAGE} gives {tuple(theirs.shape)}: "
            f"check that {PEER_PACKAGE}=={PEER_VERSION} is installed"
        )
    return ((ours - theirs).norm() / theirs.norm().clamp_min(1e-12)).item()


# ---------------------------------------------------------------------------- bench model


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


def check_positive(**values: float | None) -> None:
    """Raise a BsrError naming the first argument that is not positive."""
    for name, value in values.items():
        if value is not None and not value > 0:
            option = "--" + name.replace("_", "-")
            raise BsrError(f"{option} must be positive, got {value}: pass a value above 0")


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

    if mode not in MODES:
        raise BsrError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    if compare is not None and compare not in PEERS:
        raise BsrError(f"cannot compare with {compare!r}: the one peer is {', '.join(PEERS)}")
    check_positive(batch=batch, seconds=seconds, steps=steps, peak_tflops=peak_tflops)
    if warmup < 0:
        raise BsrError(f"--warmup must be 0 or more, got {warmup}")
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
    seconds = samples / rate

    torch.manual_seed(seed)
    model = BSRoformer(model_config).to(device)
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(batch, model_config.channels, samples, generator=generator)
    shape = (batch, len(model_config.stems), model_config.channels, samples)
    targets = 0.05 * torch.randn(*shape, generator=generator)
    audio, targets = audio.to(device), targets.to(device)
    networks: list[tuple[str, torch.nn.Module, bool]] = [("bsr", model, False)]

    peak, peak_source = peak_flops(device, precision, peak_tflops)
    forward_flops = model_flops(model_config, batch, samples)
    extra = ""
    notes = []
    details: dict[str, Any] = {
        "forward_flops": forward_flops,
        "samples": samples,
        "peak_flops": peak,
        "changes": changes,
    }
    if compare is not None:
        peer = build_peer(model, device)
        error = output_error(model, peer, audio[:1])
        if not error <= SAME_OUTPUT_TOLERANCE:
            raise BsrError(
                f"bsr and {PEER_PACKAGE} disagree (relative error {error:.2g} > "
                f"{SAME_OUTPUT_TOLERANCE:g}), so timing them would compare different work: "
                f"check that {PEER_PACKAGE}=={PEER_VERSION} is installed"
            )
        details["relative_error"] = error
        networks.append(("lucidrains", peer, True))
        extra = f", {PEER_PACKAGE} {PEER_VERSION}"
        what = ", ".join(changes) if changes else "none needed"
        notes.append(
            "ratios are bsr / lucidrains: above 1 in steps/s means bsr is faster, below 1 "
            "in peak MiB means bsr needs less memory"
        )
        notes.append(
            f"compared: {PEER_PACKAGE} {PEER_VERSION} with bsr's weights; outputs checked "
            f"equal first (fp32, relative error {error:.1e} <= {SAME_OUTPUT_TOLERANCE:g}); "
            f"preset adapted to the community layout ({what}); steps alternate bsr, peer"
        )
        if device.type == "cuda" and "A100" not in torch.cuda.get_device_name(device):
            notes.append(
                f"{PEER_PACKAGE} {PEER_VERSION} turns off the flash-attention kernel on GPUs "
                "other than the A100 (its own choice, measured as shipped)"
            )

    table = Table(
        title=f"bsr bench model: {config.name}" + (f" vs {compare}" if compare else ""),
        columns=list(MODEL_COLUMNS),
        header=[
            machine_summary(device),
            software_summary(extra),
            describe_config(config.name, model_config, count_parameters(model)),
            f"run: batch {batch} x {seconds:.2f} s ({samples} samples, "
            f"{samples // hop + 1} frames), {precision} on {device}, median of {steps} steps "
            f"after {warmup} warm-up",
        ],
        formats={"MFU": "{:.1%}"},
        details=details,
    )
    memory_method = ""
    modes = ("train", "infer") if mode == "both" else (mode,)
    for kind in modes:
        contenders = []
        for name, net, quiet in networks:
            optimizer = None
            if kind == "train":
                step, optimizer = train_step(
                    net, audio, targets, precision, config.train, stft_loss
                )
            else:
                step = infer_step(net, audio, precision)
            contenders.append(Contender(name, step, net, optimizer, quiet))
        memory_method = run_in_turn(contenders, steps, warmup, device)
        flops = forward_flops * (3 if kind == "train" else 1)
        rows = []
        for c in contenders:
            median = statistics.median(c.times)
            achieved = flops / median
            row = {
                "network": c.name,
                "step": kind,
                "precision": precision,
                "median ms": 1e3 * median,
                "steps/s": 1.0 / median,
                "audio s/s": batch * seconds / median,
                "peak MiB": c.peak / MIB,
                "TFLOP/s": achieved / 1e12,
                "MFU": achieved / peak if peak else None,
            }
            rows.append(row)
            details[f"{c.name}_{kind}_times"] = list(c.times)
        table.rows.extend(rows)
        if len(rows) == 2:
            ours, theirs = rows
            ratios = {
                key: ours[key] / theirs[key] if theirs[key] else None
                for key in ("median ms", "steps/s", "audio s/s", "peak MiB", "TFLOP/s")
            }
            details[f"ratio_{kind}"] = ratios
            table.rows.append(
                {"network": "bsr / lucidrains", "step": kind, "precision": precision}
                | {key: f"{value:.2f}x" if value else None for key, value in ratios.items()}
            )
        for c in contenders:  # free gradients and optimizer state before the next mode
            c.optimizer = None
            c.module.zero_grad(set_to_none=True)
        del contenders

    t = config.train
    loss = (
        f"waveform L1 + STFT L1 (hop {t.stft_loss_hop}, windows {list(t.stft_loss_windows)})"
        if stft_loss and t.stft_loss_windows
        else "waveform L1 (no STFT loss)"
    )
    table.notes = [
        f"train = forward + {loss} + backward + AdamW; infer = forward under torch.inference_mode",
        f"FLOPs: analytic matrix products, forward {forward_flops / 1e9:.3g} GFLOP per step, "
        f"train counts 3x; MFU peak: {peak_source}",
        f"peak memory: {memory_method}"
        + (" (includes the other network)" if compare and device.type == "cpu" else ""),
        *notes,
    ]
    return table


# ---------------------------------------------------------------------------- separate


def bench_separate(
    preset: str = "small",
    minutes: float = 3.0,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    window_seconds: float = 8.0,
    hop_seconds: float = 4.0,
    precision: str = "fp32",
    repeats: int = 1,
    peak_tflops: float | None = None,
    seed: int = 0,
) -> Table:
    """Real-time factor of :func:`bsr.separate.separate` on a stereo track of ``minutes``.

    The model has random weights (speed does not depend on them) and the track is noise
    at the model's sample rate, cut into windows exactly as ``bsr separate`` does. One
    window batch is separated first, untimed, to warm up. RTF = seconds of computing per
    second of audio (below 1: faster than real time).
    """
    from bsr.model import BSRoformer, count_parameters
    from bsr.separate import separate

    check_positive(
        minutes=minutes,
        batch_size=batch_size,
        window=window_seconds,
        hop=hop_seconds,
        repeats=repeats,
        peak_tflops=peak_tflops,
    )
    if hop_seconds > window_seconds:
        raise BsrError(f"--hop {hop_seconds} is longer than --window {window_seconds}: shorten it")
    config = load_config(preset)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    torch.manual_seed(seed)
    model = BSRoformer(config.model).to(device).eval()
    rate = config.model.sample_rate
    length = max(1, round(minutes * 60 * rate))
    audio = 0.1 * np.random.default_rng(seed).standard_normal((2, length), dtype=np.float32)
    window, hop = round(window_seconds * rate), round(hop_seconds * rate)
    options = dict(window_seconds=window_seconds, hop_seconds=hop_seconds, batch_size=batch_size)

    def run(clip: np.ndarray) -> None:
        with autocast(device, precision):
            separate(clip, rate, model, **options)

    run(audio[:, : window + (batch_size - 1) * hop])  # warm-up: one batch of windows
    memory = PeakMemory(device)
    times, peak = [], 0
    for _ in range(repeats):
        memory.start()
        times.append(timed(lambda: run(audio), device))
        peak = max(peak, memory.stop(own=state_bytes(model)))
    elapsed = statistics.median(times)
    duration = length / rate
    # Windows as bsr.separate cuts them (a track shorter than a window is one pass).
    passes = 1 if length <= window else math.ceil((length + window - hop) / hop)
    channel_passes = 1 if config.model.channels == 2 else 2  # a mono model runs per channel
    clip = min(length, window)
    flops = channel_passes * passes * model_flops(config.model, 1, clip)
    peak_value, peak_source = peak_flops(device, precision, peak_tflops)
    table = Table(
        title=f"bsr bench separate: {config.name}",
        columns=[
            "track",
            "windows",
            "batch",
            "precision",
            "seconds",
            "RTF",
            "x real time",
            "peak MiB",
            "TFLOP/s",
            "MFU",
        ],
        header=[
            machine_summary(device),
            software_summary(),
            describe_config(config.name, config.model, count_parameters(model)),
            f"run: {duration:.1f} s stereo noise at {rate} Hz, windows {window_seconds:g} s "
            f"every {hop_seconds:g} s (hann overlap-add, as bsr separate), {precision} on "
            f"{device}, median of {repeats}",
        ],
        formats={"MFU": "{:.1%}", "RTF": "{:.4f}"},
        details={"flops": flops, "times": times},
    )
    table.rows.append(
        {
            "track": f"{duration / 60:.2f} min stereo",
            "windows": passes * channel_passes,
            "batch": batch_size,
            "precision": precision,
            "seconds": elapsed,
            "RTF": elapsed / duration,
            "x real time": duration / elapsed,
            "peak MiB": peak / MIB,
            "TFLOP/s": flops / elapsed / 1e12,
            "MFU": flops / elapsed / peak_value if peak_value else None,
        }
    )
    table.notes = [
        "RTF = compute seconds / audio seconds; random weights (speed does not depend on them)",
        f"FLOPs: analytic matrix products of every window; MFU peak: {peak_source}",
        f"peak memory: {memory.method}",
    ]
    return table


# ---------------------------------------------------------------------------- data


def bench_data(
    songs: int = 3,
    song_seconds: float = 10.0,
    segment_seconds: float = 3.0,
    items: int = 16,
    sample_rate: int = 44100,
    seed: int = 0,
) -> Table:
    """Practice-set generation and :class:`~bsr.data.sampler.TrainingSet` throughput.

    Writes a practice set of ``songs`` songs into a temporary folder (timed: composing
    and writing the wav files), then draws ``items`` random-mix training chunks of
    ``segment_seconds`` from it, reading from disk and from a RAM cache.
    """
    from bsr.data.sampler import TrainingSet
    from bsr.data.synth import write_practice_set

    if isinstance(songs, bool) or not isinstance(songs, int) or songs < 1:
        raise BsrError(f"--songs must be a whole number >= 1, got {songs!r}")
    check_positive(song_seconds=song_seconds, segment_seconds=segment_seconds, items=items)
    if segment_seconds > song_seconds:
        raise BsrError(
            f"--segment-seconds {segment_seconds} is longer than the songs "
            f"({song_seconds} s): make it shorter"
        )
    table = Table(
        title="bsr bench data",
        columns=["what", "items", "audio s", "seconds", "items/s", "audio s/s"],
        header=[
            machine_summary(),
            software_summary(),
            f"config: {songs} practice songs of {song_seconds:g} s at {sample_rate} Hz (seed "
            f"{seed}); {items} training chunks of {segment_seconds:g} s, main process",
        ],
    )

    def add(what: str, count: int, audio_seconds: float, elapsed: float) -> None:
        table.rows.append(
            {
                "what": what,
                "items": count,
                "audio s": audio_seconds,
                "seconds": elapsed,
                "items/s": count / elapsed,
                "audio s/s": audio_seconds / elapsed,
            }
        )

    with tempfile.TemporaryDirectory(prefix="bsr-bench-") as folder:
        root = Path(folder) / "practice"
        start = time.perf_counter()
        write_practice_set(root, songs, song_seconds, seed, sample_rate=sample_rate)
        elapsed = time.perf_counter() - start
        add("practice set (compose + write 5 wavs)", songs, songs * song_seconds, elapsed)
        for cache in (False, True):
            data = TrainingSet(
                root, seconds=segment_seconds, steps_per_epoch=items, seed=seed, cache=cache
            )
            data[0]  # warm-up: file handles, page cache
            start = time.perf_counter()
            for index in range(items):
                data[index]
            elapsed = time.perf_counter() - start
            where = "RAM cache" if cache else "disk"
            add(f"TrainingSet random mix ({where})", items, items * segment_seconds, elapsed)
    table.notes = [
        "audio s/s = seconds of audio made per second (x real time); a training chunk is "
        "4 stems, a practice song 5 files (mixture + 4 stems)",
    ]
    return table


# ---------------------------------------------------------------------------- eval


EVAL_CASES = ("all", "vocals")


def bench_eval(
    seconds: float = 30.0,
    repeats: int = 1,
    sample_rate: int = 44100,
    seed: int = 0,
    targets: Sequence[str] = EVAL_CASES,
) -> Table:
    """museval (BSSEval v4, 1 s frames) throughput through :func:`bsr.evaluate.evaluate_track`.

    Scores a noise track of ``seconds`` once per entry of ``targets``: ``"all"`` four
    stems, ``"vocals"`` vocals alone (which adds the accompaniment as a second target,
    as museval needs).
    """
    from bsr.evaluate import STEMS, evaluate_track

    check_positive(seconds=seconds, repeats=repeats, sample_rate=sample_rate)
    unknown = [t for t in targets if t not in EVAL_CASES] or ([] if targets else ["nothing"])
    if unknown:
        raise BsrError(f"unknown targets {unknown[0]!r}: use {' and/or '.join(EVAL_CASES)}")
    length = round(seconds * sample_rate)
    if length < sample_rate:
        raise BsrError(f"--seconds {seconds} is less than one 1 s museval frame: use 1 or more")
    rng = np.random.default_rng(seed)
    refs = {name: 0.1 * rng.standard_normal((length, 2)) for name in STEMS}
    noisy = {name: ref + 0.03 * rng.standard_normal(ref.shape) for name, ref in refs.items()}
    every = {
        "all": ("4 stems", dict(noisy)),
        "vocals": ("vocals (+ accompaniment)", {"vocals": noisy["vocals"]}),
    }
    cases = dict(every[t] for t in dict.fromkeys(targets))
    frames = length // sample_rate
    table = Table(
        title="bsr bench eval",
        columns=["targets", "track s", "frames", "seconds", "audio s/s", "frames/s"],
        header=[
            machine_summary(),
            software_summary(),
            f"config: {length / sample_rate:g} s stereo noise at {sample_rate} Hz, museval "
            f"v4 frames 1 s, median of {repeats}",
        ],
    )
    for name, estimates in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            evaluate_track(refs, estimates, rate=sample_rate)
            times.append(time.perf_counter() - start)
        elapsed = statistics.median(times)
        table.rows.append(
            {
                "targets": name,
                "track s": length / sample_rate,
                "frames": frames,
                "seconds": elapsed,
                "audio s/s": length / sample_rate / elapsed,
                "frames/s": frames / elapsed,
            }
        )
    table.notes = ["audio s/s = seconds of track scored per second, all targets together"]
    return table


# ---------------------------------------------------------------------------- the CLI


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's CPU threads (tiny models on a busy machine like 1)."""
    if threads is not None:
        if threads < 1:
            raise BsrError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def cmd_bench_model(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    table = bench_model(
        args.preset,
        batch=args.batch,
        seconds=args.seconds,
        precision=args.precision,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        compare=args.compare,
        mode=args.mode,
        peak_tflops=args.peak_tflops,
        stft_loss=args.stft_loss,
    )
    print(table.format())
    return 0


def cmd_bench_separate(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    table = bench_separate(
        args.preset,
        minutes=args.minutes,
        device=args.device,
        batch_size=args.batch_size,
        window_seconds=args.window,
        hop_seconds=args.hop,
        precision=args.precision,
        repeats=args.repeats,
        peak_tflops=args.peak_tflops,
    )
    print(table.format())
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    table = bench_data(
        songs=args.songs,
        song_seconds=args.song_seconds,
        segment_seconds=args.segment_seconds,
        items=args.items,
        seed=args.seed,
    )
    print(table.format())
    return 0


def cmd_bench_eval(args: argparse.Namespace) -> int:
    table = bench_eval(seconds=args.seconds, repeats=args.repeats, targets=args.targets)
    print(table.format())
    return 0


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``bench`` with its five actions to ``subparsers`` (from ``add_subparsers``)."""
    bench = subparsers.add_parser(
        "bench", help="measure speed and memory: model, separate, data, eval, memory"
    )
    actions = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)

    p = actions.add_parser("model", help="training and inference steps/s, memory, MFU")
    p.add_argument("--preset", default="small", help="preset name or YAML config")
    p.add_argument("--batch", type=int, default=None, help="clips per step (preset's)")
    p.add_argument("--seconds", type=float, default=None, help="clip length (preset's)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if present)")
    p.add_argument("--compare", default=None, choices=PEERS, help="time bs-roformer 0.4.1 too")
    p.add_argument("--mode", default="both", choices=MODES, help="train, infer or both")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak, for MFU")
    p.add_argument(
        "--no-stft-loss",
        dest="stft_loss",
        action="store_false",
        help="train on the waveform L1 alone (time the network, not the loss)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=cmd_bench_model)

    p = actions.add_parser("separate", help="real-time factor of separating a track")
    p.add_argument("--preset", default="small", help="preset name or YAML config")
    p.add_argument("--minutes", type=float, default=3.0, help="track length")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument("--window", type=float, default=8.0, help="window length in seconds")
    p.add_argument("--hop", type=float, default=4.0, help="seconds between windows")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--repeats", type=int, default=1, help="runs (median reported)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak, for MFU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=cmd_bench_separate)

    p = actions.add_parser("data", help="practice-set generation and sampler throughput")
    p.add_argument("--songs", type=int, default=3)
    p.add_argument("--song-seconds", type=float, default=10.0)
    p.add_argument("--segment-seconds", type=float, default=3.0, help="training chunk length")
    p.add_argument("--items", type=int, default=16, help="training chunks to draw")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench_data)

    p = actions.add_parser("eval", help="museval scoring throughput")
    p.add_argument("--seconds", type=float, default=30.0, help="track length")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument(
        "--targets",
        nargs="+",
        default=list(EVAL_CASES),
        choices=EVAL_CASES,
        help="all: four stems; vocals: vocals + accompaniment",
    )
    p.set_defaults(func=cmd_bench_eval)

    from bsr.bench_memory import add_memory_parser  # it builds on this module

    add_memory_parser(actions)
    return bench
