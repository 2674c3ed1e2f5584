"""Training: the paper's recipe as one readable loop.

    for every step:
        stems   = a batch of random-mix chunks       (batch, 4, channels, samples)
        mixture = stems.sum(1)                        (batch, channels, samples)
        loss    = L1(wave) + multi-resolution STFT L1 of model(mixture) vs the target stems
        AdamW step, learning rate x0.9 every N steps, EMA of the weights

Around the loop: mixed precision (bf16 autocast where the GPU supports it, fp16 with a
gradient scaler otherwise, fp32 on the CPU), optional activation checkpointing and
torch.compile, DDP across processes launched by torchrun, atomic checkpoints that resume
exactly, a JSONL metrics log, validation uSDR on fixed chunks, and a stop with a clear
message when the loss stops being finite.

Use it as ``bsr train --config small --data DIR --out RUN_DIR`` or :func:`train`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, Sampler

from bsr._version import __version__
from bsr.checkpoint import atomic_save, save_model
from bsr.config import Config, TrainConfig, config_from_dict, load_config
from bsr.errors import BsrError
from bsr.formats.source import read_torch_file
from bsr.loss import separation_loss
from bsr.model import BSRoformer

DATA_STEMS = ("vocals", "drums", "bass", "other")  # the order the samplers deliver


def target_index(stems: list[str]) -> list[list[int]]:
    """For each model stem, which data stems sum to it (``accompaniment`` = the other three)."""
    groups = []
    for name in stems:
        if name in DATA_STEMS:
            groups.append([DATA_STEMS.index(name)])
        elif name == "accompaniment":
            groups.append([1, 2, 3])
        else:
            raise BsrError(
                f"model stem {name!r} is not in the data: use {', '.join(DATA_STEMS)} "
                "or accompaniment"
            )
    return groups


def select_targets(batch: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
    """``(batch, 4, C, L)`` data stems -> ``(batch, len(groups), C, L)`` model targets."""
    return torch.stack([batch[:, g].sum(1) for g in groups], dim=1)


def lr_factor(step: int, warmup_steps: int, decay: float, decay_every: int) -> float:
    """Linear warm-up, then the paper's step decay: ``decay ** (step // decay_every)``."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return warm * decay ** (step // decay_every)


def pick_precision(setting: str, device: torch.device) -> str:
    """Resolve ``auto``: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."""
    if setting != "auto":
        if setting != "fp32" and device.type != "cuda":
            raise BsrError(f"train.precision={setting} needs a CUDA GPU: use fp32 or auto on CPU")
        return setting
    if device.type == "cuda":
        # bf16 needs compute capability 8.0 (A100, RTX 30xx, H100). Not is_bf16_supported():
        # it also says yes on a T4 or V100, which only emulate bf16, slowly; they get fp16.
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    return "fp32"


class OffsetSampler(Sampler[int]):
    """This rank's item indices, from batch ``start`` on.

    Training item ``i`` is a pure function of ``(seed, i)``, so resuming at step ``s`` only
    means starting at batch ``s * grad_accum``, and rank ``r`` of ``world`` ranks takes
    items ``[(b * world + r) * batch, ... + batch)`` of global batch ``b``.
    """

    def __init__(self, batches: int, start: int, batch: int, rank: int = 0, world: int = 1):
        self.batches, self.start, self.batch, self.rank, self.world = (
            batches, start, batch, rank, world
        )  # fmt: skip

    def __iter__(self):
        for b in range(self.start, self.batches):
            first = (b * self.world + self.rank) * self.batch
            yield from range(first, first + self.batch)

    def __len__(self) -> int:
        return (self.batches - self.start) * self.batch


@dataclass
class Run:
    """Everything a training run holds, and what a checkpoint stores."""

    config: Config
    model: BSRoformer
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    step: int = 0

    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": "bsr",
            "version": __version__,
            "config": self.config.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict(),
            "ema_state": {"n_averaged": self.ema.n_averaged},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
        }

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.ema.n_averaged.copy_(state["ema_state"]["n_averaged"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])


def restore_rng(state: dict) -> None:
    """Put the random number generators back where the checkpoint left them."""
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def ema_decay_at(updates: int, decay: float, warmup: int) -> float:
    """The EMA decay after ``updates`` averaged steps: ramps up to ``decay`` over ``warmup``.

    A fixed decay of 0.999 from step 1 keeps a third of the *initial* weights after 1,000
    steps, so short runs would save nearly untrained weights. The ramp
    ``(1 + n) / (warmup + n)`` starts at 1/warmup (the average follows the model closely)
    and reaches ``decay`` once the run is long enough for it to mean something.
    """
    if warmup <= 0:
        return decay
    return min(decay, (1 + updates) / (warmup + updates))


def make_ema(model: torch.nn.Module, decay: float, warmup: int) -> AveragedModel:
    """An exponential moving average of ``model``'s weights with a warmed-up decay."""

    @torch.no_grad()
    def update(averages, currents, num_averaged):
        weight = 1.0 - ema_decay_at(int(num_averaged), decay, warmup)
        torch._foreach_lerp_(averages, currents, weight)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=False)


def make_optimizer(
    model: torch.nn.Module, t: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW over ``model``'s parameters, fused into one kernel on CPUs and GPUs.

    The model has hundreds of small tensors (a few per band and stem); the fused step
    updates all of them in one pass instead of a dozen elementwise calls per tensor
    (small preset on the 2-core CPU: 4.7 ms per step instead of 24 ms).
    """
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(
        model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=fused or None
    )


def build_run(config: Config, device: torch.device) -> Run:
    """Model, EMA copy, AdamW, step-decay schedule and grad scaler for ``config``."""
    torch.manual_seed(config.train.seed)
    model = BSRoformer(config.model).to(device)
    t = config.train
    ema = make_ema(model, t.ema_decay, t.ema_warmup)
    optimizer = make_optimizer(model, t, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, t.warmup_steps, t.lr_decay, t.lr_decay_every)
    )
    scaler = torch.amp.GradScaler(
        device.type, enabled=pick_precision(t.precision, device) == "fp16"
    )
    return Run(config, model, ema, optimizer, scheduler, scaler)


def accumulate_gradients(run: Run, batches, groups, forward, autocast, device) -> torch.Tensor:
    """Forward and backward over ``grad_accum`` micro-batches of random mixes.

    Returns the mean of ``(loss, waveform_l1, stft_l1)`` as one tensor on ``device``, left
    there: reading it would make the host wait for the GPU after every micro-batch.
    """
    t = run.config.train
    total = torch.zeros(3, device=device)
    for _ in range(t.grad_accum):
        stems = next(batches).to(device, non_blocking=True)  # (batch, 4, C, L)
        targets = select_targets(stems, groups)  # (batch, model stems, C, L)
        with autocast:
            estimate = forward(stems.sum(1))  # the model hears the sum of the stems
        loss, parts = separation_loss(
            estimate, targets, hop_length=t.stft_loss_hop, windows=t.stft_loss_windows
        )
        run.scaler.scale(loss / t.grad_accum).backward()
        total += torch.stack([loss.detach(), parts["waveform_l1"], parts["stft_l1"]]) / t.grad_accum
    return total


def apply_update(run: Run) -> bool:
    """Clip, AdamW step, then the schedule and the EMA; returns False if fp16 skipped it.

    Under fp16 the gradient scaler skips an update whose gradients overflowed (and lowers
    its scale). Such a step changed no weight, so neither the learning-rate schedule nor
    the EMA should advance for it.
    """
    t = run.config.train
    if t.grad_clip:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), t.grad_clip)
    scale = run.scaler.get_scale() if run.scaler.is_enabled() else None
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if scale is not None and run.scaler.get_scale() < scale:
        return False  # overflow: the scaler skipped optimizer.step()
    run.scheduler.step()
    run.ema.update_parameters(run.model)
    return True


def read_checkpoint(path: Path) -> dict:
    """Load a bsr training checkpoint with a one-line error when it is not one."""
    if not Path(path).is_file():
        raise BsrError(f"checkpoint {path} not found: check the path, or start without --resume")
    state = read_torch_file(path)
    if not isinstance(state, dict) or state.get("format") != "bsr" or "optimizer" not in state:
        raise BsrError(f"{path} is not a bsr training checkpoint: resume from RUN_DIR/last.pt")
    return state


class Logger:
    """Appends one JSON object per line to ``RUN_DIR/metrics.jsonl`` (rank 0 only)."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, **record) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group that torchrun describes in the env."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def validate(model: torch.nn.Module, data: Dataset, groups, stems, device) -> dict[str, float]:
    """Mean uSDR per stem (dB) over the fixed validation chunks."""
    from bsr.evaluate import usdr

    model.eval()
    scores: dict[str, list[float]] = {name: [] for name in stems}
    for mixture, references in data:
        estimate = model(mixture[None].to(device)).float().cpu()[0]  # (stems, C, L)
        targets = select_targets(references[None], groups)[0]
        for s, name in enumerate(stems):
            scores[name].append(usdr(targets[s].T.numpy(), estimate[s].T.numpy()))
    return {name: float(sum(v) / len(v)) for name, v in scores.items()}


def open_datasets(data: str | Path, config: Config, total_items: int):
    """Training and validation sets of a MUSDB18HQ-layout folder or a MUSDB18 root.

    A MUSDB18 root (``.stem.mp4`` files) is read through its wav cache (converted once,
    :func:`bsr.data.wavcache.wav_root`). Real MUSDB18(HQ): musdb's official split (14 of
    the train songs validate). A folder without those songs (the practice set) validates
    on its ``test`` subset instead.
    """
    from bsr.data.musdb import validation_tracks
    from bsr.data.sampler import TrainingSet, ValidationSet
    from bsr.data.wavcache import wav_root

    t = config.train
    source, data = data, wav_root(data, "train")  # the cache names songs as the root does
    train_dir = Path(data) / "train"
    # A practice set (practice_set.json) never holds musdb's songs: no musdb package needed.
    practice = (Path(data) / "practice_set.json").is_file()
    has_valid = (
        not practice
        and train_dir.is_dir()
        and any((train_dir / n).is_dir() for n in validation_tracks())
    )
    training = TrainingSet(
        data,
        seconds=t.segment_seconds,
        steps_per_epoch=total_items,
        batch_size=1,
        seed=t.seed,
        split="train" if has_valid else None,
        gain_db=t.gain_db,
        p_silence=t.p_silence,
        p_swap=t.p_swap,
        min_db=t.min_db,
        cache=t.cache,
    )
    if training.rate != config.model.sample_rate:
        raise BsrError(
            f"the songs in {source} are at {training.rate} Hz but the model expects "
            f"{config.model.sample_rate} Hz: resample the data, or set model.sample_rate: "
            f"{training.rate} in the config"
        )
    if has_valid:
        validation = ValidationSet(data, seconds=t.valid_seconds, subset="train", split="valid")
    elif (Path(source) / "test").is_dir():  # a MUSDB18 root's test/ is converted now
        validation = ValidationSet(source, seconds=t.valid_seconds, subset="test", split=None)
    else:
        validation = None
    return training, validation


def train(
    config: str | Path | Config,
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    device: str | torch.device | None = None,
    steps: int | None = None,
    compile: bool = False,
    activation_checkpointing: bool = False,
    progress: bool = True,
    max_seconds: float | None = None,
) -> Run:
    """Train a BS-RoFormer on a MUSDB18HQ-layout folder; returns the finished :class:`Run`.

    Writes ``out/last.pt`` (full training state, every ``checkpoint_every`` steps and at the
    end), ``out/model.pt`` (EMA weights and config, for separation) and
    ``out/metrics.jsonl``. ``resume=True`` continues from ``out/last.pt`` exactly.
    ``max_seconds`` stops early (with a final validation and checkpoint) once training has
    taken that long: a fixed time budget instead of a fixed number of steps.
    """
    config = load_config(config)
    t = config.train
    total = steps if steps is not None else t.steps
    if total < 1:
        raise BsrError(f"steps must be at least 1, got {total}")
    rank, world = distributed()
    device = _training_device(device, rank)
    out = Path(out)
    last = out / "last.pt"
    if rank == 0:
        _check_run_folder(out, resume)

    precision = pick_precision(t.precision, device)
    groups = target_index(config.model.stems)
    run, state = _start_run(config, device, last if resume else None)
    forward = _forward_function(run, world, device, compile, activation_checkpointing)
    items_per_step = t.batch_size * t.grad_accum
    training, validation = open_datasets(data, config, total * items_per_step * world)
    batches = _batches(training, run, total, rank, world, device)
    if state is not None:
        restore_rng(state)  # after the loader's iterator, which draws a seed from torch's RNG
    log = Logger(out / "metrics.jsonl" if rank == 0 else None)
    autocast = _autocast(device, precision)
    seconds_per_item = training.chunk / training.rate
    meter = _Meter(
        run, total, items_per_step * world * seconds_per_item, log, progress and rank == 0,
        max_seconds,
    )  # fmt: skip
    if rank == 0 and run.step == 0:
        log(event="start", config=config.to_dict(), precision=precision, world=world)

    run.model.train()
    meter.start()
    while run.step < total:
        values = train_step(run, batches, groups, forward, autocast, device, last)
        meter.step(run, values)
        out_of_time = _out_of_time(meter.elapsed(), max_seconds, world, device)
        done = run.step == total or out_of_time
        if rank == 0 and validation is not None and (run.step % t.validate_every == 0 or done):
            meter.validated(log_validation(run, validation, groups, device, log))
        if rank == 0 and (run.step % t.checkpoint_every == 0 or done):
            atomic_save(run.state(), last)
        if done:
            break
    meter.close()
    if rank == 0:
        save_model(run.ema.module, out / "model.pt", config)  # EMA weights, for separation
    if world > 1:
        dist.barrier()
    return run


# -- the steps of train(), in the order it takes them -------------------------------------


def _training_device(device: str | torch.device | None, rank: int) -> torch.device:
    """The device asked for, else this rank's GPU (one per rank under torchrun), else the CPU."""
    if device is None:
        device = f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _check_run_folder(out: Path, resume: bool) -> None:
    """``out`` must be writable, and hold no run unless we resume it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise BsrError(f"cannot write to {out} ({error.strerror}): choose another --out") from None
    if not resume and (out / "last.pt").exists():
        raise BsrError(f"{out} already holds a run: pass --resume to continue it, or another --out")


def _start_run(config: Config, device: torch.device, last: Path | None) -> tuple[Run, dict | None]:
    """A fresh :class:`Run`, or (``last`` given) the one saved there, and its saved state."""
    run = build_run(config, device)
    if last is None:
        return run, None
    state = read_checkpoint(last)
    # Compare as configs, so a key added to bsr since (with its default) still matches.
    if config_from_dict(state["config"]).model != config.model:
        raise BsrError(f"{last} was trained with another model config: resume with the same one")
    run.load(state)
    return run, state


def _forward_function(
    run: Run, world: int, device: torch.device, compile: bool, checkpointing: bool
):
    """What the loop calls on a mixture: the model, wrapped in DDP and compiled if asked."""
    run.model.activation_checkpointing = checkpointing
    step_model = run.model
    if world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    return torch.compile(step_model) if compile else step_model


def _batches(training: Dataset, run: Run, total: int, rank: int, world: int, device):
    """An iterator over this rank's batches ``(batch, 4, C, L)``, from the run's step on."""
    t = run.config.train
    sampler = OffsetSampler(
        total * t.grad_accum, run.step * t.grad_accum, t.batch_size, rank, world
    )
    loader = DataLoader(
        training,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=t.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=t.num_workers > 0,
    )
    return iter(loader)  # (creating the iterator draws a seed from torch's RNG)


def _autocast(device: torch.device, precision: str):
    """bf16 or fp16 autocast on the GPU, nothing in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def train_step(
    run: Run, batches, groups, forward, autocast, device, last: Path
) -> dict[str, float]:
    """One optimizer step: gradients over the micro-batches, a check, the update.

    Returns the step's ``loss``, ``waveform_l1`` and ``stft_l1`` as floats (reading them is
    the step's one wait for the GPU). A loss that is not finite stops training with a
    message that says where the last good checkpoint is.
    """
    parts = accumulate_gradients(run, batches, groups, forward, autocast, device)
    values = dict(zip(("loss", "waveform_l1", "stft_l1"), parts.tolist()))  # one sync
    if not math.isfinite(values["loss"]):
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        raise BsrError(
            f"the loss became {values['loss']} at step {run.step + 1}; training stopped and "
            f"{kept}: lower train.lr, set train.grad_clip, or use precision fp32"
        )
    apply_update(run)
    run.step += 1
    return values


class _Meter:
    """The loop's clock: steps and seconds of audio per second, the step log, the bar.

    The bar counts steps, or seconds when there is a time budget (``max_seconds``), so that
    its ETA is the budget's. It shows the step, the loss, the audio rate and the last
    validation uSDR.
    """

    def __init__(self, run: Run, total: int, audio_per_step: float, log: Logger, progress: bool,
                 max_seconds: float | None = None):  # fmt: skip
        self.audio_per_step, self.log = audio_per_step, log  # seconds of audio, all ranks
        self.bar, self.by_time, self.postfix = None, max_seconds is not None, {}
        if progress:
            from tqdm.auto import tqdm

            if self.by_time:
                self.bar = tqdm(total=round(max_seconds), unit="s", dynamic_ncols=True)
            else:
                self.bar = tqdm(total=total, initial=run.step, unit="step", dynamic_ncols=True)

    def start(self) -> None:
        self.tick = self.started = time.perf_counter()

    def step(self, run: Run, values: dict[str, float]) -> None:
        """Log the step just taken (and move the bar)."""
        now = time.perf_counter()
        steps_per_s = 1.0 / max(now - self.tick, 1e-9)
        self.tick = now
        audio_per_s = steps_per_s * self.audio_per_step
        lr = run.scheduler.get_last_lr()[0]
        self.log(event="step", step=run.step, lr=lr, steps_per_s=steps_per_s,
                 audio_s_per_s=audio_per_s, **values)  # fmt: skip
        if self.bar is not None:
            self.postfix.update(step=run.step, loss=f"{values['loss']:.4f}",
                                audio=f"{audio_per_s:.1f}s/s")  # fmt: skip
            self.bar.set_postfix(self.postfix, refresh=False)
            shown = min(round(self.elapsed()), self.bar.total) if self.by_time else run.step
            self.bar.update(shown - self.bar.n)

    def validated(self, usdr_mean: float) -> None:
        """Show the latest validation uSDR (mean over stems, dB) on the bar."""
        self.postfix["valid uSDR"] = f"{usdr_mean:.2f} dB"
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def elapsed(self) -> float:
        """Seconds from the start of the loop to the end of the last step."""
        return self.tick - self.started

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _out_of_time(elapsed: float, max_seconds: float | None, world: int, device) -> bool:
    """Whether the time budget is spent; under DDP every rank stops at the same step."""
    out_of_time = max_seconds is not None and elapsed >= max_seconds
    if world > 1 and max_seconds is not None:
        flag = torch.tensor(float(out_of_time), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        out_of_time = bool(flag.item())
    return out_of_time


def log_validation(run: Run, validation: Dataset, groups, device, log: Logger) -> float:
    """Score the EMA weights on the validation chunks and log their uSDR (rank 0); returns
    the mean over stems."""
    scores = validate(run.ema.module, validation, groups, run.config.model.stems, device)
    run.model.train()
    mean = sum(scores.values()) / len(scores)
    log(event="valid", step=run.step, usdr=scores, usdr_mean=mean)
    return mean
