"""The ``bsr`` command: a thin face over the Python API.

Every subcommand is a function ``cmd_NAME(args)``. A :class:`bsr.errors.BsrError` (a
user mistake) is printed as one line, ``bsr: error: ...``, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from bsr import __version__
from bsr.errors import BsrError


def cmd_info(args: argparse.Namespace) -> int:
    """Print a preset's resolved config and its parameter count."""
    import yaml

    from bsr.config import load_config
    from bsr.model import BSRoformer, count_parameters

    config = load_config(args.preset)
    model = BSRoformer(config.model)
    print(f"# {config.name}")
    print(yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip())
    kind = "overlapping" if model.layout.overlapping else "non-overlapping"
    print(f"bands: {model.layout.num_bands} ({kind})")
    print(f"{count_parameters(model) / 1e6:.1f}M parameters")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the environment: versions, ffmpeg, and the accelerator."""
    import torch

    from bsr.ffmpeg import ensure_ffmpeg

    print(f"bsr {__version__}, torch {torch.__version__}")
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu only"
    print(f"device: {device}")
    ensure_ffmpeg()
    print("ffmpeg and ffprobe: found")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the main job on the embedded data."""
    from bsr.demo import run

    run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bsr", description="Learn music source separation by building BS-RoFormer."
    )
    parser.add_argument("--version", action="version", version=f"bsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser("info", help="show a preset's config and parameter count")
    info.add_argument("preset", help="preset name (e.g. paper-l6) or path to a YAML config")
    info.set_defaults(func=cmd_info)

    doctor = sub.add_parser("doctor", help="check that ffmpeg, torch and the device are usable")
    doctor.set_defaults(func=cmd_doctor)

    demo = sub.add_parser("demo", help="run the main job on the embedded data")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BsrError as error:
        print(f"bsr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
