"""``bsr demo`` / ``make demo``: the whole path on the embedded data, in minutes on a CPU.

1. data: a generated practice set of its own (``runs/demo/practice``) and the real MUSDB18
   excerpts (``runs/demo/examples``: Falcon 69 always, 80s Rock when the shared MUSDB18
   sample is there), so that the demo never changes what the notebooks and the README's
   pipeline find in their folders;
2. train the ``small`` preset for a fixed, seeded number of steps (:data:`DEMO_STEPS`)
   on the practice set (GPU if present), so two runs give the same tables;
3. separate the practice test songs and the real excerpts, with the demo model and with
   the shipped course model (``bsr.load_model("course")``), when its weights are there;
4. evaluate with museval (cSDR) and uSDR, next to baselines (the mixture as estimate,
   the best constant gain) and oracle masks on the same songs (:data:`BASELINES`);
5. write ``runs/demo/model.pt`` and ``runs/demo/report.md`` with PNG figures: the loss
   curve and every stem's spectrograms (reference, estimate, error) on one dB scale.

Every stage starts with a one-line header; training shows a progress bar over the steps,
separation and evaluation one line per song.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bsr.errors import BsrError

MARKER = ".bsr-demo"  # marks a folder the demo made, and so may replace
BASELINES = ("mixture", "constant_gain", "irm", "mwf")
DEMO_STEPS = 500
"""Training steps of the demo model. A fixed count, not a time budget, so that the tables do
not depend on the machine's speed. On a quiet two-core CPU the ``small`` preset trains about
two steps a second: ~4 minutes, which leaves the whole demo (with the evaluation of both
models next to the baselines and oracles) within about ten minutes."""
STEM_ORDER = ("vocals", "drums", "bass", "other")  # MUSDB18's, as notebook 07 shows them
COURSE = "course"  # the shipped model the report compares with (bsr/weights/course.pt)
STAGES = 4


def stage(number: int, text: str) -> None:
    """The one-line header printed before each stage."""
    print(f"[{number}/{STAGES}] {text}", flush=True)


def prepare_data(
    root: Path, songs: int, seconds: float, seed: int, with_examples: bool = True
) -> tuple[Path, Path]:
    """The practice set of exactly these settings and the real examples under ``root``.

    A practice set made with other settings is never reused (nor touched):
    :func:`bsr.coursedata.ensure_practice_set` makes this one beside it.
    """
    from bsr.coursedata import ensure_practice_set
    from bsr.data.examples import write_examples

    practice = ensure_practice_set(root, songs, seconds, seed, indent="  ")
    examples = root / "examples"
    if with_examples and not (examples / "test").is_dir():
        print(f"  writing the real MUSDB18 excerpts to {examples}")
        write_examples(examples)
    if with_examples:
        print(f"  {describe_examples(examples)}")
    return practice, examples


def excerpt_names(examples: Path) -> list[tuple[str, str]]:
    """``[(subset, song), ...]``: the real excerpts in ``examples``, test split first."""
    return [(subset, song.name) for subset in ("test", "train") if (examples / subset).is_dir()
            for song in sorted(p for p in (examples / subset).iterdir() if p.is_dir())]  # fmt: skip


def describe_examples(examples: Path) -> str:
    """How many real excerpts there are and which; where one is missing, why."""
    from bsr.data.examples import ROCK, ROCK_IN_SHARED, default_shared

    names = excerpt_names(examples)
    line = f"real MUSDB18 excerpts: {len(names)} (" + "; ".join(
        f"{subset}: {song}" for subset, song in names
    ) + ")"  # fmt: skip
    if all(song != ROCK for _, song in names):
        line += (
            f"; {ROCK} is left out: it comes from the shared MUSDB18 sample "
            f"({default_shared() / ROCK_IN_SHARED.parent.parent}), which is not here "
            "(set BSR_SHARED to a folder holding data/musdb18-7s-sample to add it)"
        )
    return line


def fresh_run_dir(out: Path) -> None:
    """Start ``out`` afresh, but only remove it if an earlier demo made it."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise BsrError(f"{out} exists and was not made by the demo: move it or pick --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `bsr demo`; the next demo replaces this folder\n")


def load_course(name: str = COURSE, device=None):
    """The shipped course model and its card, or ``None`` after one line saying why not."""
    from bsr.hub import load_model, model_card

    try:
        model, card = load_model(name, device=device or "cpu"), model_card(name)
    except BsrError as error:
        print(f"  the course model is not available, so the report leaves it out: {error}")
        return None
    return model, card


def plural(count: int, noun: str) -> str:
    """``plural(1, "song") == "1 song"``, ``plural(3, "song") == "3 songs"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def song_count(data: Path, subset: str) -> int:
    return sum(1 for p in (data / subset).iterdir() if p.is_dir())


def run(
    preset: str = "small",
    data_root: str | Path | None = None,
    out: str | Path = "runs/demo",
    steps: int = DEMO_STEPS,
    songs: int = 9,
    seconds: float = 20.0,
    seed: int = 7,
    with_examples: bool = True,
    course: str | None = COURSE,
    baselines: tuple[str, ...] = BASELINES,
) -> Path:
    """Run the demo; returns the path of the report.

    Trains exactly ``steps`` steps (seeded by the preset's ``train.seed``; the data are
    generated from ``seed``), so running it twice gives the same tables. The data go to
    ``data_root`` (default: ``out`` itself, made afresh with the run). ``course`` names
    the shipped model to compare with (``None``: leave it out).
    """
    from bsr.plots import plot_run
    from bsr.train import train

    if steps < 1:
        raise BsrError(f"--steps must be at least 1, got {steps}")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out)
    fresh_run_dir(out)
    data_root = out if data_root is None else Path(data_root)
    stage(1, f"data: the practice set and the real excerpts under {data_root}")
    practice, examples = prepare_data(data_root, songs, seconds, seed, with_examples)
    sets = [(practice, "test", "practice")]
    if with_examples:
        sets += [(examples, s, "examples") for s in ("test", "train") if (examples / s).is_dir()]
    timings["data"] = time.perf_counter() - started

    tick = time.perf_counter()
    stage(2, f"training: {steps} steps of the {preset} preset on the practice set")
    run_state = train(preset, practice, out / "train", steps=steps)
    timings["training"] = time.perf_counter() - tick
    model = run_state.ema.module.eval()
    shutil.copy(out / "train" / "model.pt", out / "model.pt")

    tick = time.perf_counter()
    n_practice = song_count(practice, "test")
    n_real = len(excerpt_names(examples)) if with_examples else 0
    stage(3, f"separation: {plural(n_practice, 'practice test song')} and "
             f"{plural(n_real, 'real excerpt')}")  # fmt: skip
    course_model = load_course(course, next(model.parameters()).device) if course else None
    models = {"demo model": (model, out / "estimates")}
    if course_model is not None:
        models["course model"] = (course_model[0], out / "course-estimates")
    separate_sets(models, sets)
    timings["separation"] = time.perf_counter() - tick

    tick = time.perf_counter()
    stage(4, f"evaluation: museval cSDR and uSDR, beside {', '.join(baselines)}")
    results, course_results = evaluate_sets(out, sets, baselines, course_model is not None)
    timings["evaluation"] = time.perf_counter() - tick

    figures = figure_captions(
        plot_run(out / "train", out / "loss.png"),
        spectrogram_figure(practice, out / "estimates" / "practice", out / "spectrograms.png"),
        out / "train",
    )
    timings["total"] = time.perf_counter() - started
    course_card = None if course_model is None else course_model[1]
    report = write_report(
        out, preset, run_state, results, timings, figures, course_card, course_results
    )
    print(f"report: {report}")
    return report


def separate_sets(models: dict, sets: list[tuple[Path, str, str]]) -> None:
    """Stage 3: every model separates every set, ``{label: (model, estimates root)}``."""
    from bsr.separate import separate_folder

    for label, (separator, root) in models.items():
        print(f"  {label}:")
        for data, subset, name in sets:
            separate_folder(separator, data, subset, root / name)


def set_title(data: Path, name: str, subset: str) -> str:
    """How the report names a set of songs."""
    if name == "practice":
        return "practice set, test songs"
    songs = sum(1 for p in (data / subset).iterdir() if p.is_dir())
    return f"real MUSDB18 excerpt{'' if songs == 1 else 's'} ({subset} split)"


def evaluate_sets(out: Path, sets, baselines, with_course: bool) -> tuple[dict, dict]:
    """Stage 4: the demo model with baselines and oracles on every set, and the course
    model alone when it separated too; ``({title: results}, {title: course result})``."""
    from bsr.evaluate import evaluate_folder

    results, course_results = {}, {}
    for data, subset, name in sets:
        title = set_title(data, name, subset)
        scores = out / "scores" / (name if name == "practice" else f"{name}-{subset}")
        print(f"  {title}: the demo model, baselines and oracles")
        results[title] = evaluate_folder(
            out / "estimates" / name, data, subset, out_dir=scores, baselines=baselines,
            progress=True,
        )  # fmt: skip
        if with_course:
            print(f"  {title}: the course model")
            course_results[title] = evaluate_folder(
                out / "course-estimates" / name, data, subset, out_dir=scores / "course",
                progress=True,
            )[0]  # fmt: skip
    return results, course_results


def spectrogram_figure(data: Path, estimates: Path, path: Path) -> Path:
    """Every stem of the first practice test song: reference, estimate and error, one dB scale.

    Notebook 07's figure (:func:`bsr.plots.error_spectrograms`): log frequency, one colour
    scale with its colour bar for all panels, silence at the floor of the scale.
    """
    from bsr.plots import error_spectrograms
    from bsr.separate import read_audio

    song = sorted(p for p in (data / "test").iterdir() if p.is_dir())[0]
    separated = {p.stem for p in (estimates / "test" / song.name).glob("*.wav")}
    order = [s for s in STEM_ORDER if s in separated and (song / f"{s}.wav").is_file()]
    references = {s: read_audio(song / f"{s}.wav")[0] for s in order}
    found = {s: read_audio(estimates / "test" / song.name / f"{s}.wav") for s in order}
    estimates_audio = {s: audio for s, (audio, _) in found.items()}
    rate = next(iter(found.values()))[1]
    fig = error_spectrograms(references, estimates_audio, rate)
    fig.suptitle(f"{song.name}: every stem, true (reference), separated by the demo model "
                 "(estimate) and their difference (error)")  # fmt: skip
    fig.savefig(path, dpi=90)
    return Path(path)


def figure_captions(loss: Path, spectrograms: Path, run_dir: Path) -> list[tuple[Path, str]]:
    """The report's figures, each with the caption that says what it shows."""
    from bsr.plots import loss_terms, read_metrics

    _, terms = loss_terms(read_metrics(run_dir))
    return [
        (loss, f"Left, the training loss: {terms}. Faint: every step; bold: a running mean. "
               "Right, the validation uSDR of the EMA weights."),  # fmt: skip
        (spectrograms, "Every stem of the first practice test song: the true stem, the demo "
                       "model's estimate and their difference, on one dB scale (colour bar) "
                       "with a log frequency axis; silence sits at the floor of the scale."),
    ]  # fmt: skip


def mean_usdr(result, stems) -> float:
    values = result.usdr()
    return sum(values[s] for s in stems) / len(stems)


def verdict(result_list, oracle: str = "irm") -> list[str]:
    """Does the model beat the baselines on every stem, and how far is it to the oracle?

    Uses the baselines present among the results; the last line (the share of the way from
    the mixture to the ``oracle`` mask) needs both of those.
    """
    from bsr.evaluate import METHOD_LABELS

    by_method = {r.method: r for r in result_list}
    model, lines = by_method["model"], []
    model_u = model.usdr()
    stems = [s for s in model_u if not s.startswith("not_")]
    simple = [b for b in ("mixture", "constant_gain") if b in by_method]
    for stem in stems:
        beaten = [b for b in simple if model_u[stem] > by_method[b].usdr()[stem]]
        names = ", ".join(METHOD_LABELS.get(b, b) for b in beaten) or "no baseline"
        lines.append(f"- {stem}: model uSDR {model_u[stem]:.2f} dB beats {names}")
    if "mixture" not in by_method or oracle not in by_method:
        return lines
    low, high = mean_usdr(by_method["mixture"], stems), mean_usdr(by_method[oracle], stems)
    got = mean_usdr(model, stems)
    share = (got - low) / (high - low) if high > low else float("nan")
    label = METHOD_LABELS.get(oracle, oracle)
    lines.append(
        f"- average uSDR: mixture {low:.2f} dB, model {got:.2f} dB, {label} oracle {high:.2f} dB: "
        f"the model covers {100 * share:.0f}% of the way from the mixture to the oracle"
    )
    return lines


def course_section(card: dict | None, demo_steps: int, results, course_results) -> list[str]:
    """The report's comparison with the shipped course model (or one line if it is missing)."""
    from bsr.evaluate import MethodResult, format_table

    heading = ["## What hours of training buy: the course model", ""]
    if card is None:
        return heading + [
            "The course model's weights (`bsr/weights/course.pt`) are missing, so this "
            "comparison is left out.",
            "",
        ]
    hours, preset = card.get("hours"), card.get("preset", "course")
    took = f" ({hours:.1f} hours on {card.get('machine', 'one machine')})" if hours else ""
    lines = heading + [
        f'The course model (`bsr.load_model("course")`, preset `{preset}`) '
        f"trained {card['steps']:,} steps{took}, against this demo model's {demo_steps} steps, "
        "on other generated practice songs than these; here it separates the same songs, "
        "scored the same way (the baselines and oracles are in the tables above).",
        "",
    ]
    for title, course_result in course_results.items():
        demo_result = next(r for r in results[title] if r.method == "model")
        rows = [
            MethodResult(f"demo model ({demo_steps} steps)", demo_result.tracks),
            MethodResult(f"course model ({card['steps']:,} steps)", course_result.tracks),
        ]
        stems = [s for s in demo_result.usdr() if not s.startswith("not_")]
        gain = mean_usdr(course_result, stems) - mean_usdr(demo_result, stems)
        lines += [
            f"**{title}**",
            "",
            format_table(rows),
            f"Average uSDR of the course model minus the demo model: {gain:+.2f} dB.",
            "",
        ]
    return lines


def write_report(
    out: Path, preset, run_state, results, timings, figures, course_card=None, course_results=None
) -> Path:
    from bsr.evaluate import format_table
    from bsr.model import count_parameters

    config = run_state.config
    t = config.train
    parameters = count_parameters(run_state.model) / 1e6
    lines = [
        "# bsr demo report",
        "",
        f"Model: preset `{preset}`, {parameters:.2f}M parameters, trained {run_state.step} "
        f"steps (seed {t.seed}) of {t.batch_size} x {t.segment_seconds:g} s random-mix "
        "chunks of the practice set (EMA weights).",
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
        "",
        "Metrics: **cSDR** is museval BSSEval v4 SDR on 1 s frames, median over frames, then "
        "median over tracks (the paper's Table 2 metric). **uSDR** is 10 log10(|s|^2 / "
        "|s - s_hat|^2) over the whole track, mean over tracks (the SDX23 metric). They are "
        "different numbers: never compare one with the other.",
        "",
    ]
    for title, result_list in results.items():
        lines += [f"## {title}", "", format_table(result_list), ""]
        if title.startswith("practice"):
            lines += ["Against the targets of the demo:", "", *verdict(result_list), ""]
    lines += course_section(course_card, run_state.step, results, course_results or {})
    lines += [
        "## Figures",
        "",
        *[
            line
            for path, caption in figures
            for line in (f"![{path.stem}]({path.name})", "", f"*{caption}*", "")
        ],
        "",
        "## What this model is not",
        "",
        f"This is a {parameters:.1f}M-parameter model trained for {run_state.step} steps on "
        "generated practice songs. It is not the paper's model: BS-RoFormer L=6 (72.2M "
        "parameters), trained on MUSDB18HQ alone, reaches 9.80 dB average cSDR on the "
        "MUSDB18HQ test set (vocals 10.66, bass 11.31, drums 9.49, other 7.73); the L=12 "
        "SDX23 system, trained with 450 in-house songs more, reaches 11.99 dB. For compute the "
        "paper reports that its L=6 models converged within a week on 16 V100 GPUs at batch "
        "64, and 16 A100-80GB GPUs for "
        "4 weeks at batch 128 for L=12 (Lu et al., ICASSP 2024, arXiv:2309.02612). Expect "
        "this demo model to do poorly on real music: it has never heard any. "
        "`docs/reproducing.md` describes what reproducing the paper takes.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
