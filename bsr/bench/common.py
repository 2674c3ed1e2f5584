"""What every benchmark shares: the result table, the machine (device, precision, timers,
peak FLOP/s), memory measurement and the checks of numeric arguments.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bsr.errors import BsrError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
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
    from bsr._version import __version__

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


def resident_bytes() -> int:
    """The process's resident memory now (Linux ``VmRSS``), 0 where unknown."""
    return _read_status("VmRSS") or 0


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


# ---------------------------------------------------------------------------- arguments


def check_positive(**values: float | None) -> None:
    """Raise a BsrError naming the first argument that is not positive."""
    for name, value in values.items():
        if value is not None and not value > 0:
            option = "--" + name.replace("_", "-")
            raise BsrError(f"{option} must be positive, got {value}: pass a value above 0")


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's CPU threads (tiny models on a busy machine like 1)."""
    if threads is not None:
        if threads < 1:
            raise BsrError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
