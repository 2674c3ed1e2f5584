"""``python -m book [--executed DIR] [--out DIR]``: build the course website (``make book``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from book.execute import execute_course
from book.site import build, size_mb, stage, warnings

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m book", description=__doc__.split(":")[1])
    add = parser.add_argument
    add(
        "--out",
        type=Path,
        default=REPO / "build" / "book",
        help="where the sources and the site go (default build/book)",
    )
    add(
        "--executed",
        type=Path,
        metavar="DIR",
        help="take the executed notebooks from DIR instead of executing them",
    )
    add("--jupyterhub", metavar="URL",
        help="also give every notebook page a button for your JupyterHub")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        executed = args.executed or args.out / "executed"
        if args.executed is None:
            execute_course(REPO / "notebooks", executed)
        built = time.perf_counter()
        stage(REPO, executed, args.out / "src", args.jupyterhub)
        html = build(args.out / "src", args.out, REPO)
    except (FileNotFoundError, RuntimeError, ValueError) as error:
        print(f"book: {error}", file=sys.stderr)
        return 2
    done = time.perf_counter()
    found = warnings((args.out / "build.log").read_text())
    print(f"site: {html / 'index.html'}")
    print(f"{size_mb(html):.1f} MB; executed in {built - started:.0f} s, "
          f"built in {done - built:.0f} s; {len(found)} Sphinx warnings (build.log)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
