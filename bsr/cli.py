"""The ``bsr`` command: a thin face over the Python API.

Every subcommand is a function ``cmd_NAME(args)`` that calls the library. A
:class:`bsr.errors.BsrError` (a user mistake) is printed as one line, ``bsr: error: ...``,
with exit status 2; so is a file the operating system refuses to read or write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bsr._version import __version__
from bsr.errors import BsrError


def pick_device(name: str | None):
    """``--device`` as a torch device: the GPU when present unless told otherwise."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BsrError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BsrError(f"--device {name}: no CUDA GPU is visible here: use --device cpu")
    return device


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
    """Check the environment: versions, ffmpeg, the accelerator and the course folder."""
    import shutil

    import torch

    from bsr.ffmpeg import ensure_ffmpeg
    from bsr.home import describe

    print(f"bsr {__version__} ({Path(__file__).parent}), torch {torch.__version__}")
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu only"
    print(f"device: {device}")
    for line in describe():
        print(line)
    in_shell = {name: shutil.which(name) for name in ("ffmpeg", "ffprobe")}  # before bsr adds
    ensure_ffmpeg()
    print(f"ffmpeg: {shutil.which('ffmpeg')}, ffprobe: {shutil.which('ffprobe')}")
    if not all(in_shell.values()):
        activate = Path(sys.prefix) / "bin" / "activate"  # a venv's; conda has its own command
        how = f"source {activate}" if activate.is_file() else f"conda activate {sys.prefix}"
        print(
            "  not on your shell's PATH: bsr adds them for itself, but to run ffmpeg or musdb "
            f"yourself, activate the environment ({how})"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the main job on the embedded data."""
    from bsr.demo import run

    run(steps=args.steps, out=args.out)
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from bsr.data.synth import write_practice_set

    root = write_practice_set(args.out, args.songs, args.seconds, args.seed, force=args.force)
    print(f"practice set: {args.songs} songs of {args.seconds:g} s in {root}")
    return 0


def cmd_data_example(args: argparse.Namespace) -> int:
    from bsr.data.examples import write_examples

    for folder in write_examples(args.out, shared=args.shared):
        print(folder)
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from bsr.data.examples import download_previews

    root = download_previews(args.out)
    print(f"MUSDB18 7-second previews in {root} (train with `bsr train --data {root}`)")
    return 0


def cmd_data_cache(args: argparse.Namespace) -> int:
    from bsr.data.musdb import check_root, detect_layout
    from bsr.data.wavcache import wav_root

    root = check_root(args.root)
    if detect_layout(root) != "MUSDB18":
        raise BsrError(
            f"{root} holds no MUSDB18 .stem.mp4 files (train/<song>.stem.mp4): only a "
            "MUSDB18 root needs a wav cache; pass a MUSDB18HQ root to --data as it is"
        )
    for subset in args.subset:
        cache = wav_root(root, subset)
    print(f"wav cache of {root} ({', '.join(args.subset)}): {cache}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bsr.train import train

    run = train(
        args.config,
        args.data,
        args.out,
        resume=args.resume,
        device=pick_device(args.device) if args.device else None,  # None: one GPU per rank
        steps=args.steps,
        compile=args.compile,
        activation_checkpointing=args.checkpointing,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
    )
    print(f"trained {run.step} steps: {Path(args.out) / 'model.pt'}")
    return 0


def cmd_separate(args: argparse.Namespace) -> int:
    from bsr.formats import config_notes
    from bsr.hub import load_model
    from bsr.separate import separate_files

    if args.config is not None:
        for note in config_notes(args.config):  # speed-only keys bsr accepts and ignores
            print(f"bsr: note: {note}", file=sys.stderr)
    if str(args.checkpoint) == "course":
        print("model: course, the course model shipped with bsr (--checkpoint picks another)")
    model = load_model(args.checkpoint, config=args.config, device=pick_device(args.device))
    if model.separation_defaults and args.window is None:
        from bsr.separate import window_and_hop

        rate = model.config.sample_rate
        window, hop = window_and_hop(model, None, args.hop)
        print(f"windows from the config: {window / rate:g} s every {hop / rate:g} s")
    written = separate_files(
        args.files,
        model,
        args.out,
        force=args.force,
        window_seconds=args.window,
        hop_seconds=args.hop,
        shape=args.window_shape,
        batch_size=args.batch_size,
        progress=True,
        stems=args.stems,
    )
    for folder in dict.fromkeys(path.parent for path in written):  # each song's, in order
        names = ", ".join(path.name for path in written if path.parent == folder)
        print(f"wrote {names} to {folder}/")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bsr.evaluate import evaluate_baselines, evaluate_folder, format_notes, format_table

    if args.estimates is None:
        results = evaluate_baselines(
            args.data, args.subset, kinds=args.baselines or ("mixture", "irm"),
            workers=args.workers, out_dir=args.out, progress=True,
        )  # fmt: skip
    else:
        results = evaluate_folder(
            args.estimates, args.data, args.subset, workers=args.workers,
            out_dir=args.out, baselines=args.baselines or (), progress=True,
        )  # fmt: skip
    print(format_table(results))
    notes = format_notes(results)
    if notes:
        print(notes)
    return 0


def cmd_pretrained_list(args: argparse.Namespace) -> int:
    from bsr.pretrained import list_entries

    print(list_entries())
    return 0


def cmd_pretrained_download(args: argparse.Namespace) -> int:
    import warnings

    from bsr.pretrained import UnverifiedDownload, download

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnverifiedDownload)
        path = download(args.name, timeout=args.timeout, require_checksum=args.require_checksum)
    for warning in caught:
        print(f"bsr: warning: {warning.message}", file=sys.stderr)
    print(path)
    return 0


def cmd_course_card(args: argparse.Namespace) -> int:
    from bsr.card import evaluation_sets, make_card

    sets = {} if args.no_scores else evaluation_sets(args.sets)
    card = make_card(
        args.run_dir, args.name, args.out, sets=sets, commands=args.command, data=args.data,
        summary=args.summary, notes=args.note, evaluate=not args.no_scores,
        baselines=args.baselines, force=args.force,
    )  # fmt: skip
    print(f"wrote {args.out / (args.name + '.pt')} ({card['file_mb']:.1f} MB) and its card")
    return 0


def cmd_course_student(args: argparse.Namespace) -> int:
    from bsr.course import make_student_versions

    for name, count in make_student_versions(args.notebooks, args.out, args.force).items():
        print(f"{args.out / name}: {count} exercises stubbed")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from bsr.plots import plot_run

    print(plot_run(args.run_dir))
    return 0


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout, plus "(default: X)" after every option whose help does not say it.

    Flags (default off) and options without a default are left alone; options whose
    default is not a plain value (None, a list) say in their help what happens instead.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default is not argparse.SUPPRESS and action.option_strings
        plain = not isinstance(action.default, (list, tuple, type(None), bool))
        if shown and plain and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The ``bsr`` parser: one subcommand per job, each added by its own function below."""
    parser = argparse.ArgumentParser(
        prog="bsr", description="Learn music source separation by building BS-RoFormer."
    )
    parser.add_argument("--version", action="version", version=f"bsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_info, _add_doctor, _add_demo, _add_data, _add_train, _add_separate,
                _add_evaluate, _add_pretrained, _add_course):  # fmt: skip
        add(sub)
    from bsr.bench import add_bench_parser

    add_bench_parser(sub)
    _add_plot(sub)
    for each in parsers(parser):
        each.formatter_class = HelpFormatter
    return parser


def parsers(parser: argparse.ArgumentParser):
    """``parser`` and every subcommand's parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def _add_info(sub) -> None:
    from bsr.config import list_presets

    p = sub.add_parser("info", help="show a preset's config and parameter count")
    p.add_argument(
        "preset", help=f"a preset ({', '.join(list_presets())}) or the path of a YAML config"
    )
    p.set_defaults(func=cmd_info)


def _add_doctor(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="check that ffmpeg, torch and the device are usable; show the course folder",
        description="Print bsr's and torch's versions, the device, the course folder "
        "($BSR_HOME, default ~/bsr-course) with what it holds, and where ffmpeg and ffprobe are.",
    )
    p.set_defaults(func=cmd_doctor)


def _add_demo(sub) -> None:
    from bsr.demo import DEMO_STEPS

    p = sub.add_parser("demo", help="train, separate and evaluate on the embedded data")
    p.add_argument("--steps", type=int, default=DEMO_STEPS, help="training steps")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="the demo's run folder")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.set_defaults(func=cmd_demo)


def _add_data(sub) -> None:
    from bsr.home import course_folder

    data = sub.add_parser("data", help="make or fetch data").add_subparsers(
        dest="data_command", metavar="ACTION", required=True
    )
    p = data.add_parser("synth", help="write a generated practice set (MUSDB18HQ layout)")
    p.add_argument(
        "--out", type=Path, default=course_folder("data", "practice"),
        help="the practice set's folder (default: the course folder's data/practice; the "
        "notebooks use a set only if it has their settings, else make theirs beside it)",
    )  # fmt: skip
    p.add_argument("--songs", type=int, default=6, help="how many songs (a third go to test)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of every song")
    p.add_argument("--seed", type=int, default=7, help="the same seed writes the same songs")
    p.add_argument("--force", action="store_true", help="write into a folder that has other files")
    p.set_defaults(func=cmd_data_synth)
    p = data.add_parser("example", help="write the real MUSDB18 example excerpts as wav")
    p.add_argument(
        "--out", type=Path, default=course_folder("data", "examples"),
        help="folder for the excerpts (default: the course folder's data/examples)",
    )  # fmt: skip
    p.add_argument(
        "--shared", type=Path, default=None,
        help="folder holding data/musdb18-7s-sample (default: $BSR_SHARED, else shared/ "
        "beside the repository, if it is there)",
    )  # fmt: skip
    p.set_defaults(func=cmd_data_example)
    p = data.add_parser("download", help="download a data set (needs network access)")
    p.add_argument("name", choices=["musdb18-7s"], help="musdb18-7s: MUSDB18's 7 s previews")
    p.add_argument(
        "--out", type=Path, default=course_folder("data", "musdb18-7s"),
        help="where it goes (default: the course folder's data/musdb18-7s)",
    )  # fmt: skip
    p.set_defaults(func=cmd_data_download)
    p = data.add_parser(
        "cache", help="convert a MUSDB18 root to its wav cache now (train and evaluate do it "
        "on first use; do it once before a multi-GPU run)",
    )  # fmt: skip
    p.add_argument("root", type=Path, help="a MUSDB18 root: train/ and test/ of .stem.mp4 files")
    p.add_argument(
        "--subset", nargs="+", default=["train", "test"], choices=["train", "test"],
        help="the subsets to convert (default: train test)",
    )  # fmt: skip
    p.set_defaults(func=cmd_data_cache)


DATA_HELP = (
    "a MUSDB18HQ root (train/<song>/mixture.wav ...) or a MUSDB18 root (train/<song>.stem.mp4,"
    " converted once to a wav cache in the course folder's data/cache)"
)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model")
    p.add_argument("--config", required=True, help="preset name or YAML file")
    p.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the config's train.steps)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if present)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    p.add_argument(
        "--max-minutes", type=float, default=None,
        help="stop after this long (default: no time limit, train the steps)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.set_defaults(func=cmd_train)


def stem_list(text: str) -> list[str]:
    """``--stems vocals,accompaniment`` -> ``["vocals", "accompaniment"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _add_separate(sub) -> None:
    from bsr.separate import WINDOW_SHAPES

    p = sub.add_parser("separate", help="separate audio files into stems")
    p.add_argument("files", nargs="+", type=Path, help="audio files (any length, rate, channels)")
    p.add_argument(
        "--checkpoint", type=Path, default=Path("course"),
        help="a model file, a shipped model (course, course-norope) or a name from `bsr "
        "pretrained list` (default: course, the course model shipped with bsr)",
    )  # fmt: skip
    p.add_argument(
        "--config", default=None,
        help="YAML config of a community checkpoint (default: none; bsr files hold theirs)",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="folder for the stems")
    p.add_argument("--force", action="store_true", help="overwrite existing stem files")
    p.add_argument(
        "--stems", type=stem_list, default=None,
        help="comma-separated stems to write (default: all of the model's); accompaniment is "
        "everything but the vocals (karaoke): --stems vocals,accompaniment",
    )  # fmt: skip
    p.add_argument(
        "--window", type=float, default=None,
        help="window length in seconds (default: the community YAML's audio.chunk_size, else 8)",
    )  # fmt: skip
    p.add_argument(
        "--hop", type=float, default=None,
        help="seconds between windows (default: window / the YAML's inference.num_overlap, "
        "else half the window)",
    )  # fmt: skip
    p.add_argument(
        "--window-shape", default="hann", choices=WINDOW_SHAPES,
        help="how overlap-add weights each window",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if present)")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.set_defaults(func=cmd_separate)


def _add_evaluate(sub) -> None:
    import textwrap

    from bsr.evaluate import BASELINE_NOTES

    p = sub.add_parser(
        "evaluate", help="museval cSDR and uSDR of separated stems",
        epilog="baselines (--baselines NAME ...; the oracles look at the true stems):\n"
        + "\n".join(textwrap.fill(note, 100, initial_indent=f"  {name:<14} ",
                                   subsequent_indent=" " * 17, break_on_hyphens=False)
                     for name, note in BASELINE_NOTES.items()),
    )  # fmt: skip
    p.add_argument(
        "--estimates", type=Path, default=None,
        help="folder of separated stems, <subset>/<track>/<stem>.wav (default: none, score "
        "the baselines only)",
    )  # fmt: skip
    p.add_argument("--data", required=True, type=Path, help="the references: " + DATA_HELP)
    p.add_argument("--subset", default="test", help="the subset folder of --data to score")
    p.add_argument(
        "--baselines", nargs="*", default=None, metavar="NAME",
        help=f"score these beside the model: {' '.join(BASELINE_NOTES)} (see below; "
        "default: none, or mixture irm without --estimates)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="processes scoring tracks at once")
    p.add_argument(
        "--out", type=Path, default=None,
        help="write JSON, results.md and .csv here (default: print the tables only)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.set_defaults(func=cmd_evaluate)


def _add_pretrained(sub) -> None:
    pretrained = sub.add_parser("pretrained", help="list or download pretrained weights")
    actions = pretrained.add_subparsers(dest="pretrained_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="the registry of known checkpoints")
    p.set_defaults(func=cmd_pretrained_list)
    p = actions.add_parser("download", help="download and verify one checkpoint into the cache")
    p.add_argument("name", help="a name from `bsr pretrained list`")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up")
    p.add_argument("--require-checksum", action="store_true",
                   help="refuse files without a published sha256")  # fmt: skip
    p.set_defaults(func=cmd_pretrained_download)


def _add_course(sub) -> None:
    from bsr.home import course_folder

    course = sub.add_parser("course", help="course tooling for instructors")
    actions = course.add_subparsers(dest="course_command", metavar="ACTION", required=True)
    p = actions.add_parser("student", help="write student versions (solutions replaced by stubs)")
    p.add_argument("notebooks", type=Path, help="the folder with the course notebooks")
    p.add_argument("--out", required=True, type=Path, help="folder for the student versions")
    p.add_argument(
        "--force", action="store_true", help="replace notebooks already in --out (learners' work!)"
    )
    p.set_defaults(func=cmd_course_student)
    p = actions.add_parser(
        "card", help="ship a training run as half-precision weights with a model card"
    )
    p.add_argument("run_dir", type=Path, help="the folder `bsr train --out` wrote")
    p.add_argument("--name", required=True, help="the model's name, e.g. course")
    p.add_argument(
        "--out", type=Path, default=course_folder("models"),
        help="where the weights and card go (default: the course folder's models/)",
    )  # fmt: skip
    p.add_argument(
        "--sets", type=Path, default=course_folder("data", "card"),
        help="where the scoring songs are made (default: the course folder's data/card)",
    )  # fmt: skip
    p.add_argument("--data", required=True, help="one line: what the model was trained on")
    p.add_argument(
        "--command", action="append", default=[],
        help="a training command (repeat for several; default: none)",
    )  # fmt: skip
    p.add_argument(
        "--summary", default="", help="one paragraph: what this model is (default: none)"
    )
    p.add_argument(
        "--note", action="append", default=[],
        help="a line for the card's notes (repeat for several; default: none)",
    )  # fmt: skip
    p.add_argument("--no-scores", action="store_true", help="skip scoring (interim export)")
    p.add_argument("--force", action="store_true", help="replace a card of the same name")
    p.add_argument(
        "--baselines", nargs="*", default=["mixture", "constant_gain", "ibm", "irm", "irm2", "mwf"],
        metavar="NAME",
        help="baselines and oracles scored beside the model (default: all six: mixture "
        "constant_gain ibm irm irm2 mwf)",
    )  # fmt: skip
    p.set_defaults(func=cmd_course_card)


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="plot a run's loss and validation curves")
    p.add_argument("run_dir", type=Path, help="the folder `bsr train --out` wrote")
    p.set_defaults(func=cmd_plot)


THREADS_HELP = (
    "torch CPU threads (default: one per core, or 1 when the load average shows the cores "
    "already busy: beside another torch job 2 threads ran 1.6-4.7x slower than 1)"
)


def busy_machine_threads() -> int | None:
    """1 when other jobs already keep every core busy, else None (torch's default).

    Measured on 2 cores beside another torch job: a training step of the small preset took
    1.30 s with 1 thread and 2.05 s with 2; separating 30 s took 6.1 s against 28.3 s. Alone,
    2 threads win (0.58 s against 0.92 s; 2.8 s against 4.5 s).
    """
    import os

    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this system
        return None
    if cores > 1 and load >= cores - 0.5:
        print(
            f"bsr: note: the machine is busy (load {load:.1f} on {cores} cores): using 1 torch "
            "thread, which is faster beside other jobs; pass --threads N to choose"
        )  # stdout: a note, not an error (stderr keeps errors to one line)
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "threads") and args.func is not None:
            from bsr.bench.common import set_threads  # the same option as `bsr bench`

            set_threads(args.threads if args.threads is not None else busy_machine_threads())
        return args.func(args)
    except BsrError as error:
        print(f"bsr: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a read-only folder or a full disk
        where = f" {error.filename}" if error.filename else ""
        print(f"bsr: error:{where} {error.strerror or error}: check the path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
