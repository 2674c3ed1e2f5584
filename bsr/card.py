"""Model cards: ship a trained run as half-precision weights beside what it is and how it scores.

``bsr course card RUN_DIR --name course`` turns a finished (or paused) training run into

* ``bsr/weights/NAME.pt``: the EMA weights in float16 with the config (a bsr checkpoint that
  :func:`bsr.load_model` reads; float16 halves the file and costs < 0.01 dB);
* ``bsr/weights/NAME.json``: the card for code: command, seed, steps, hours, machine, the
  training curve, and the scores on unseen practice songs and the real excerpts;
* ``bsr/weights/NAME.md`` and ``NAME-curve.png``: the same card for people.

The scores come from :func:`bsr.evaluate.evaluate_folder` with the baselines and oracles,
so the card's numbers are the ones ``bsr evaluate`` prints for the same folders.
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from bsr.errors import BsrError
from bsr.plots import read_metrics

CURVE_POINTS = 200  # loss points kept on the card (means over equal runs of steps)


def training_curve(records: list[dict]) -> dict:
    """Loss (averaged over runs of steps) and validation uSDR against the step.

    When a run was resumed, steps after the last checkpoint were trained twice: the later
    record of a step wins, so the curve is the one the final weights went through.
    """
    steps = {r["step"]: r for r in records if r.get("event") == "step"}
    valid = {r["step"]: r for r in records if r.get("event") == "valid"}
    order = sorted(steps)
    if not order:
        raise BsrError("the run has no training steps yet: train first, then make the card")
    size = max(1, len(order) // CURVE_POINTS)
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    hours = sum(1.0 / max(steps[s]["steps_per_s"], 1e-9) for s in order) / 3600
    return {
        "step": [g[-1] for g in groups],
        "loss": [float(np.mean([steps[s]["loss"] for s in g])) for g in groups],
        "valid_step": sorted(valid),
        "valid_usdr": [valid[s]["usdr_mean"] for s in sorted(valid)],
        "valid_usdr_per_stem": [valid[s]["usdr"] for s in sorted(valid)],
        "steps": order[-1],
        "hours": hours,
    }


def half_precision_checkpoint(run_dir: str | Path) -> dict:
    """The EMA weights of ``RUN_DIR/last.pt`` as a float16 bsr checkpoint."""
    from bsr._version import __version__
    from bsr.train import read_checkpoint

    state = read_checkpoint(Path(run_dir) / "last.pt")
    weights = {k: v.half() if v.is_floating_point() else v for k, v in state["ema"].items()}
    return {
        "format": "bsr",
        "version": __version__,
        "config": state["config"],
        "model": weights,
        "step": state["step"],
    }


def score(model, sets: dict[str, tuple[Path, str]], baselines, workers: int = 2) -> dict:
    """``{set name: {method: {"cSDR": {stem: dB}, "uSDR": {stem: dB}, "tracks": n}}}``.

    ``sets`` maps a name to ``(MUSDB18HQ-layout folder, subset)``; every song of the subset
    is separated by ``model`` and scored with the ``baselines`` beside it.
    """
    from bsr.evaluate import evaluate_folder
    from bsr.separate import separate_folder

    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (data, subset) in sets.items():
            estimates = Path(tmp) / name
            separate_folder(model, data, subset, estimates)
            results = evaluate_folder(estimates, data, subset, baselines=baselines, workers=workers)
            table[name] = {
                r.method: {"cSDR": r.csdr(), "uSDR": r.usdr(), "tracks": len(r.tracks)}
                for r in results
            }
    return table


def machine() -> str:
    """A one-line description of this computer (the CPU named as ``bsr bench`` names it)."""
    import os

    from bsr.bench.common import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}"


def _table(scores: dict, metric: str) -> list[str]:
    """Markdown rows: one per method, stems then the average, for one evaluation set."""
    from bsr.evaluate import METHOD_LABELS

    stems = list(next(iter(scores.values()))[metric])
    lines = [
        "| method | " + " | ".join([*stems, "average"]) + " |",
        "|---" * (len(stems) + 2) + "|",
    ]
    for method, result in scores.items():
        values = [result[metric][s] for s in stems]
        cells = [f"{v:.2f}" for v in values] + [f"{np.mean(values):.2f}"]
        label = "**this model**" if method == "model" else METHOD_LABELS.get(method, method)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def gain_over_constant(scores: dict) -> dict[str, float]:
    """uSDR of the model minus the best constant gain, per stem and ``average`` (dB)."""
    model, constant = scores["model"]["uSDR"], scores["constant_gain"]["uSDR"]
    gains = {s: model[s] - constant[s] for s in model}
    return {**gains, "average": float(np.mean(list(gains.values())))}


def plot_curve(card: dict, path: Path) -> Path:
    """Training loss and validation uSDR against the step, from a card's ``curve``."""
    from bsr.plots import _pyplot

    plt = _pyplot()
    curve = card["curve"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(curve["step"], curve["loss"])
    left.set(xlabel="step", ylabel="training loss (L1)", yscale="log", title="loss")
    right.plot(curve["valid_step"], curve["valid_usdr"], marker=".")
    right.set(xlabel="step", ylabel="uSDR (dB)", title="validation uSDR, mean over stems")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{card['name']}: {card['steps']} steps, {card['hours']:.1f} h")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_card(card: dict, out_dir: Path) -> Path:
    """``NAME.json``, ``NAME.md`` and ``NAME-curve.png`` in ``out_dir``; returns the .md."""
    name = card["name"]
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    plot_curve(card, out_dir / f"{name}-curve.png")
    lines = [
        f"# Model card: `{name}`",
        "",
        card["summary"],
        "",
        'Load it with `bsr.load_model("' + name + '")`; no network is needed.',
        "",
        "| | |",
        "|---|---|",
        f"| preset | `{card['preset']}` ({card['parameters'] / 1e6:.2f}M parameters) |",
        f"| weights | `bsr/weights/{name}.pt`, float16, {card['file_mb']:.1f} MB |",
        f"| trained | {card['steps']} steps of {card['batch']} in {card['hours']:.2f} h |",
        f"| seed | {card['seed']} |",
        f"| machine | {card['machine']} |",
        f"| data | {card['data']} |",
        "",
        "Commands (a run that is stopped continues exactly with `bsr train ... --resume`):",
        "",
        "```bash",
        *card["commands"],
        "```",
        "",
        f"![training curve]({name}-curve.png)",
        "",
        "## Scores",
        "",
        "uSDR: whole-song SDR, mean over songs (the SDX23 metric). cSDR: museval v4, median "
        "over 1 s frames, then over songs (the paper's metric). Baselines and oracles are "
        "computed on the same songs; `bsr evaluate --baselines` prints the same rows.",
        "",
    ]
    for set_name, scores in card["scores"].items():
        gains = gain_over_constant(scores)
        lines += [
            f"### {set_name}",
            "",
            card["sets"][set_name],
            "",
            "uSDR (dB):",
            "",
            *_table(scores, "uSDR"),
            "",
            "cSDR (dB):",
            "",
            *_table(scores, "cSDR"),
            "",
            "Above the best constant gain (uSDR): "
            + ", ".join(f"{s} {g:+.2f} dB" for s, g in gains.items()),
            "",
        ]
    if card.get("notes"):
        lines += ["## Notes", "", *card["notes"], ""]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def make_card(
    run_dir: str | Path,
    name: str,
    out_dir: str | Path,
    *,
    sets: dict[str, tuple[Path, str, str]],
    commands: list[str],
    data: str,
    summary: str,
    baselines=("mixture", "constant_gain", "ibm", "irm", "irm2", "mwf"),
    notes: list[str] | None = None,
    evaluate: bool = True,
    force: bool = False,
) -> dict:
    """Export ``run_dir`` as shipped weights plus its card; returns the card.

    ``sets`` maps a title to ``(folder, subset, one-line description)``. With
    ``evaluate=False`` the scores are left out (a quick interim export).
    """
    from bsr.checkpoint import atomic_save
    from bsr.config import config_from_dict
    from bsr.hub import load_model
    from bsr.model import BSRoformer, count_parameters

    out_dir = Path(out_dir)
    weights = out_dir / f"{name}.pt"
    if weights.exists() and not force:
        raise BsrError(f"{weights} already exists: pass --force to replace it, or another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = half_precision_checkpoint(run_dir)
    atomic_save(checkpoint, weights)
    config = config_from_dict(checkpoint["config"])
    curve = training_curve(read_metrics(run_dir))  # a line cut off by a kill is skipped
    card = {
        "name": name,
        "preset": config.name,
        "config": checkpoint["config"],
        "parameters": count_parameters(BSRoformer(config.model)),
        "file_mb": weights.stat().st_size / 1e6,
        "steps": checkpoint["step"],
        "batch": f"{config.train.batch_size} x {config.train.segment_seconds:g} s",
        "hours": curve["hours"],
        "seed": config.train.seed,
        "machine": machine(),
        "data": data,
        "commands": commands,
        "summary": summary,
        "curve": curve,
        "sets": {title: description for title, (_, _, description) in sets.items()},
        "scores": {},
        "notes": notes or [],
    }
    if evaluate:
        model = load_model(weights)
        card["scores"] = score(
            model, {t: (folder, subset) for t, (folder, subset, _) in sets.items()}, baselines
        )
    write_card(card, out_dir)
    return card


# The songs a course card is scored on; none of them is in the course model's training set
# (practice set seed 1000). Seed 7 is the demo's practice set, so the card and the demo
# report score the same test songs.
UNSEEN_SEEDS = {"demo": (7, 9, 20.0), "card": (2027, 8, 12.0)}


def _count(folder: Path) -> int:
    """How many song folders ``folder`` holds."""
    return sum(1 for p in folder.iterdir() if p.is_dir())


def evaluation_sets(root: str | Path) -> dict[str, tuple[Path, str, str]]:
    """Write (if absent) and describe the sets a course card is scored on."""
    from bsr.data.examples import write_examples
    from bsr.data.synth import write_practice_set

    root = Path(root)
    seed, songs, seconds = UNSEEN_SEEDS["card"]
    card_set = root / f"practice-seed{seed}"
    if not (card_set / "train").is_dir():
        write_practice_set(card_set, songs, seconds, seed, test_fraction=0.0)
    seed7, songs7, seconds7 = UNSEEN_SEEDS["demo"]
    demo_set = root / f"practice-seed{seed7}"
    if not (demo_set / "test").is_dir():
        write_practice_set(demo_set, songs7, seconds7, seed7)
    examples = root / "examples"
    if not (examples / "test").is_dir():
        write_examples(examples)
    sets = {
        "unseen practice songs": (
            card_set,
            "train",
            f"the {_count(card_set / 'train')} train songs of a practice set of {songs} songs "
            f"of {seconds:g} s made with seed {seed} (`bsr data synth --songs {songs} "
            f"--seconds {seconds:g} --seed {seed}`): never seen in training.",
        ),
        "demo practice test songs": (
            demo_set,
            "test",
            f"the test songs of `make demo`'s practice set (seed {seed7}, {seconds7:g} s): "
            "never seen in training.",
        ),
        "real MUSDB18 excerpt (test split)": (
            examples,
            "test",
            "The Easton Ellises - Falcon 69, 6.1 s, from the stempeg package: real music, "
            "which this model has never heard.",
        ),
    }
    if (examples / "train").is_dir():
        sets["real MUSDB18 excerpt (train split)"] = (
            examples,
            "train",
            "Music Delta - 80s Rock, 7 s (from ../shared): real music, never heard.",
        )
    return sets


LEARNER_DATA = (
    "the course model's practice set: 150 generated songs of 30 s, seed 1000 (100 to train on, "
    "50 to validate), `bsr data synth --songs 150 --seconds 30 --seed 1000`"
)


def export_learner_model(run_dir: str | Path, folder: str | Path, minutes: float) -> Path:
    """Keep notebook 06's GPU run as the learner's model, ``folder/mine.pt`` with its card.

    An earlier ``mine`` is moved aside as ``mine-<its date>.*`` rather than replaced. The
    card has the curve and the run but no scores (scoring takes minutes; notebook 07 does
    it). Returns the weights' path, which ``bsr.load_model`` takes.
    """
    import time

    folder = Path(folder)
    weights = folder / "mine.pt"
    if weights.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(weights.stat().st_mtime))
        for old in sorted(folder.glob("mine.*")) + sorted(folder.glob("mine-curve.*")):
            old.rename(folder / old.name.replace("mine", f"mine-{stamp}", 1))
    make_card(
        run_dir, "mine", folder, sets={}, data=LEARNER_DATA, evaluate=False,
        commands=[f"notebook 06, section 5: the gpu-t4 preset for {minutes:g} minutes"],
        summary="Your model: the course model's network trained by notebook 06 on a GPU.",
    )  # fmt: skip
    return weights
