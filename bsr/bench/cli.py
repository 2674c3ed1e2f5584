"""``bsr bench``: the command line, one ``cmd_bench_*`` per action and the parser for all six."""

from __future__ import annotations

import argparse

from bsr.bench.common import PRECISIONS, set_threads
from bsr.bench.data import bench_data
from bsr.bench.evaluation import EVAL_CASES, bench_eval
from bsr.bench.memory import CAPACITIES_GB, bench_memory
from bsr.bench.model import MODES, bench_model
from bsr.bench.peer import PEERS
from bsr.bench.separate import bench_separate
from bsr.errors import BsrError


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
        model=args.model,
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


def cmd_bench_memory(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    table = bench_memory(
        args.presets,
        seconds=args.seconds,
        device=args.device,
        precision=args.precision,
        capacities=args.capacities,
        verify=not args.no_verify,
    )
    print(table.format())
    return 0


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    from bsr.bench.gpu import bench_gpu

    set_threads(args.threads)
    command = "bsr bench gpu" + "".join(
        f" {flag} {value}" if value is not True else f" {flag}"
        for flag, value in (("--smoke", args.smoke or None), ("--preset", args.preset),
                            ("--device", args.device), ("--budget", args.budget),
                            ("--threads", args.threads))
        if value is not None
    )  # fmt: skip
    table = bench_gpu(args.smoke, args.preset, args.device, args.budget, command=command)
    print(table.format())
    failed = table.details["failed"]
    if failed:
        raise BsrError(f"{' and '.join(failed)} failed (see the table): fix that and run again")
    return 0


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``bench`` with its six actions to ``subparsers`` (from ``add_subparsers``)."""
    bench = subparsers.add_parser(
        "bench", help="measure speed and memory: model, separate, data, eval, memory, gpu"
    )
    actions = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    for add in (_add_model, _add_separate, _add_data, _add_eval, _add_memory, _add_gpu):
        add(actions)
    return bench


def _add_model(actions) -> None:
    p = actions.add_parser("model", help="training and inference steps/s, memory, MFU")
    p.add_argument("--preset", default="small", help="preset name or YAML config")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's)")
    p.add_argument(
        "--seconds", type=float, default=None, help="clip length (default: the preset's)"
    )
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="autocast precision")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if present)")
    p.add_argument(
        "--compare", default=None, choices=PEERS,
        help="time bs-roformer 0.4.1 too (default: bsr alone)",
    )  # fmt: skip
    p.add_argument("--mode", default="both", choices=MODES, help="train, infer or both")
    p.add_argument(
        "--peak-tflops", type=float, default=None,
        help="device peak, for MFU (default: from a table of known devices)",
    )  # fmt: skip
    p.add_argument(
        "--no-stft-loss",
        dest="stft_loss",
        action="store_false",
        help="train on the waveform L1 alone (time the network, not the loss)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_model)


def _add_separate(actions) -> None:
    p = actions.add_parser(
        "separate", help="real-time factor and memory of separating tracks of given lengths"
    )
    p.add_argument("--preset", default="small", help="preset name or YAML config (random weights)")
    p.add_argument(
        "--model", default=None,
        help="a trained model instead: course, a checkpoint file or a `bsr pretrained` name "
        "(default: none, the preset with random weights)",
    )  # fmt: skip
    p.add_argument(
        "--minutes", type=float, nargs="+", default=[3.0],
        help="track lengths; several (e.g. 1 2 5 10) are each measured in a fresh process "
        "(default: 3)",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if present)")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument(
        "--window", type=float, default=None,
        help="window length in seconds (default: the model's, as bsr separate; 8 for a preset)",
    )  # fmt: skip
    p.add_argument(
        "--hop", type=float, default=None, help="seconds between windows (default: the model's)"
    )
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="autocast precision")
    p.add_argument("--repeats", type=int, default=1, help="runs (median reported)")
    p.add_argument(
        "--peak-tflops", type=float, default=None,
        help="device peak, for MFU (default: from a table of known devices)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_separate)


def _add_data(actions) -> None:
    p = actions.add_parser("data", help="practice-set generation and sampler throughput")
    p.add_argument("--songs", type=int, default=3, help="practice songs to generate")
    p.add_argument("--song-seconds", type=float, default=10.0, help="length of each song")
    p.add_argument("--segment-seconds", type=float, default=3.0, help="training chunk length")
    p.add_argument("--items", type=int, default=16, help="training chunks to draw")
    p.add_argument("--seed", type=int, default=0, help="seed of the songs and the chunks")
    p.set_defaults(func=cmd_bench_data)


def _add_eval(actions) -> None:
    p = actions.add_parser("eval", help="museval scoring throughput")
    p.add_argument("--seconds", type=float, default=30.0, help="track length")
    p.add_argument("--repeats", type=int, default=1, help="runs (median reported)")
    p.add_argument(
        "--targets",
        nargs="+",
        default=list(EVAL_CASES),
        choices=EVAL_CASES,
        help="all: four stems; vocals: vocals + accompaniment (default: both)",
    )
    p.set_defaults(func=cmd_bench_eval)


def _add_memory(actions) -> None:
    p = actions.add_parser("memory", help="largest training batch for 16/24/40/80 GB")
    p.add_argument(
        "--presets", nargs="+", default=["paper-l6", "paper-l12"],
        help="presets or YAML configs (default: paper-l6 paper-l12)",
    )  # fmt: skip
    p.add_argument("--seconds", type=float, default=8.0, help="clip length")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if present)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="autocast precision")
    p.add_argument(
        "--capacities", type=float, nargs="+", default=list(CAPACITIES_GB),
        help=f"card sizes in GB (default: {' '.join(f'{c:g}' for c in CAPACITIES_GB)})",
    )  # fmt: skip
    p.add_argument("--no-verify", action="store_true", help="skip the real run on the GPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_memory)


def _add_gpu(actions) -> None:
    p = actions.add_parser(
        "gpu", help="one GPU check in 8 minutes: train, model steps, separation, memory"
    )
    p.add_argument(
        "--smoke", action="store_true",
        help="the same code paths at tiny size, on any device (CPU: under a minute)",
    )  # fmt: skip
    p.add_argument(
        "--preset", default=None,
        help="preset that part (a) trains (default: gpu-t4; tiny with --smoke)",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: GPU if present)")
    p.add_argument(
        "--budget", type=float, default=None,
        help="seconds for all four parts (default: 465; 120 with --smoke)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_gpu)
