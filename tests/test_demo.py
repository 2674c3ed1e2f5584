"""The demo's whole path on a very small scale: data, training, separation, report."""

import json
import re
from pathlib import Path

import pytest
import yaml

import bsr.hub
from bsr import evaluate
from bsr.cli import build_parser
from bsr.demo import BASELINES, DEMO_STEPS, fresh_run_dir, run, verdict
from bsr.errors import BsrError

# Cheap baselines for the tiny runs (the default set adds the costlier oracles).
TINY_BASELINES = ("mixture", "constant_gain", "irm")


def tiny_demo(tmp_path, name="demo", steps=3, **options):
    """The demo on the tiny preset: 2 songs of 2 s (one trains, one tests), no real excerpts."""
    options = {"course": None, "baselines": TINY_BASELINES, **options}
    return run(
        preset="tiny",
        data_root=tmp_path / f"data-{name}",
        out=tmp_path / "runs" / name,
        steps=steps,
        songs=2,
        seconds=2.0,
        with_examples=False,
        **options,
    )


@pytest.fixture
def fake_course(tmp_path, monkeypatch):
    """Shipped weights for ``course`` in a temporary folder: a tiny model and its card."""
    from bsr.checkpoint import save_model
    from bsr.config import load_config
    from bsr.model import BSRoformer

    weights = tmp_path / "weights"
    weights.mkdir()
    config = load_config("tiny")
    save_model(BSRoformer(config.model), weights / "course.pt", config)
    card = {"name": "course", "preset": "tiny", "steps": 12345, "hours": 2.5, "machine": "a CPU"}
    (weights / "course.json").write_text(json.dumps(card))
    monkeypatch.setattr(bsr.hub, "WEIGHTS", weights)
    return card


def table_numbers(report: str) -> list[float]:
    """Every number in the report's Markdown tables, in order."""
    cells = [c for line in report.splitlines() if line.startswith("| ") for c in line.split("|")]
    return [float(c) for c in cells if re.fullmatch(r"\s*-?\d+\.\d+\s*|\s*nan\s*", c)]


def test_demo_stages_fixed_steps_report_and_course_model(tmp_path, capsys, fake_course):
    report = tiny_demo(tmp_path, steps=3, course="course")
    out = tmp_path / "runs" / "demo"
    captured = capsys.readouterr()
    printed = captured.out
    for header in (
        "[1/4] data:",
        "[2/4] training: 3 steps of the tiny preset",
        "[3/4] separation: 1 practice test song and 0 real excerpts",
        "[4/4] evaluation:",
    ):
        assert header in printed, header
    assert printed.index("[1/4]") < printed.index("[2/4]") < printed.index("[3/4]")
    assert printed.index("[3/4]") < printed.index("[4/4]")
    # one line per song in separation (both models) and in evaluation
    assert printed.count("separated 1/1") == 2
    assert re.search(r"scored 1/\d+: test/Practice", printed[printed.index("[4/4]") :])
    # the training bar counts to the fixed budget, not to the preset's 20 steps
    assert "3/3" in captured.err and "/20" not in captured.err
    records = [json.loads(line) for line in (out / "train" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3]

    assert report == out / "report.md" and (out / "model.pt").is_file()
    assert (out / "loss.png").stat().st_size > 0 and (out / "spectrograms.png").stat().st_size > 0
    text = report.read_text()
    for needle in (
        "trained 3 steps",
        "cSDR (median of medians, museval v4)",
        "uSDR (mean over tracks)",
        "constant gain",
        "IRM",
        "of the way from the mixture to the oracle",
        "What this model is not",
        "trained for 3 steps",
        "9.80 dB",
        "converged within a week on 16 V100 GPUs at batch 64",
        "arXiv:2309.02612",
        # the course model, with its step count and hours read from its card
        "What hours of training buy: the course model",
        "trained 12,345 steps (2.5 hours on a CPU)",
        "course model (12,345 steps)",
        "demo model (3 steps)",
    ):
        assert needle in text, needle
    assert "minutes" not in text.split("What this model is not")[1]
    assert (out / "course-estimates" / "practice" / "test").is_dir()


def test_demo_keeps_to_its_own_folder(tmp_path, monkeypatch, capsys):
    """The demo once filled the folders the notebooks and the README's pipeline use."""
    from bsr.data.synth import write_practice_set
    from bsr.home import course_folder

    monkeypatch.chdir(tmp_path)
    for folder in (Path("data/practice"), course_folder("data", "practice")):
        write_practice_set(folder, songs=2, seconds=1.0, seed=3)
    before = {p: p.read_bytes() for p in [*Path("data").rglob("*"),
              *course_folder().rglob("*")] if p.is_file()}  # fmt: skip
    out = tmp_path / "runs" / "demo"
    run(preset="tiny", out=out, steps=1, songs=2, seconds=2.0, with_examples=False,
        course=None, baselines=("mixture",))  # fmt: skip
    assert (out / "practice" / "test").is_dir() and (out / "estimates" / "practice").is_dir()
    after = {p: p.read_bytes() for p in [*Path("data").rglob("*"),
             *course_folder().rglob("*")] if p.is_file()}  # fmt: skip
    assert after == before  # the other folders hold exactly what they held
    assert f"in {out / 'practice'}" in capsys.readouterr().out


def test_the_log_says_how_many_real_excerpts_and_which(tmp_path):
    from bsr.data.examples import FALCON, ROCK
    from bsr.demo import describe_examples

    (tmp_path / "test" / FALCON).mkdir(parents=True)
    alone = describe_examples(tmp_path)
    assert alone.startswith(f"real MUSDB18 excerpts: 1 (test: {FALCON})")
    assert f"{ROCK} is left out" in alone and "musdb18-7s-sample" in alone
    assert "BSR_SHARED" in alone
    (tmp_path / "train" / ROCK).mkdir(parents=True)
    both = describe_examples(tmp_path)
    assert both == f"real MUSDB18 excerpts: 2 (test: {FALCON}; train: {ROCK})"


def test_the_spectrograms_show_every_stem_as_notebook_07_does(tmp_path, monkeypatch):
    import bsr.plots

    drawn = []

    def keep(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    real = bsr.plots.error_spectrograms
    monkeypatch.setattr(bsr.plots, "error_spectrograms", keep)
    report = tiny_demo(tmp_path, steps=1, baselines=("mixture",))
    (fig,) = drawn
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()]
    from bsr.config import load_config

    stems = load_config("tiny").model.stems
    expected = [s for s in ("vocals", "drums", "bass", "other") if s in stems]
    assert [ax.get_title() for ax in panels[::3]] == [f"{s}: reference" for s in expected]
    assert len(expected) > 1 and len(panels) == 3 * len(expected)
    assert all(ax.get_yscale() == "log" for ax in panels)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert "spectrograms.png" in report.read_text()


def test_demo_twice_gives_the_same_tables(tmp_path):
    def tables(name, steps):
        report = tiny_demo(tmp_path, name, steps=steps, baselines=("mixture",))
        return table_numbers(report.read_text())

    a, b = tables("first", 4), tables("second", 4)  # data made afresh for each run, too
    assert len(a) == len(b) == 2 * 2 * 5  # cSDR and uSDR: 2 methods x (4 stems + average)
    assert all(abs(x - y) <= 0.05 for x, y in zip(a, b)), list(zip(a, b))
    # and another number of steps does change them: the comparison can fail
    third = tables("third", 1)
    assert any(abs(x - y) > 0.05 for x, y in zip(a, third))


def test_demo_without_course_weights_says_so_and_finishes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bsr.hub, "WEIGHTS", tmp_path / "no-weights")
    report = tiny_demo(tmp_path, steps=1, course="course", baselines=("mixture",))
    notes = [line for line in capsys.readouterr().out.splitlines() if "course model" in line]
    assert len(notes) == 1 and "not available" in notes[0] and "missing" in notes[0]
    text = report.read_text()
    assert "course model's weights (`bsr/weights/course.pt`) are missing" in text
    assert "## Figures" in text


def test_verdict_with_the_oracle_baselines():
    def result(method, values):
        tracks = {"song": {"targets": {s: {"uSDR": v, "cSDR": v} for s, v in values.items()}}}
        return evaluate.MethodResult(method, tracks)

    stems = ("vocals", "drums", "bass", "other")
    rows = [result("model", dict.fromkeys(stems, 2.0))]
    for method, value in [("mixture", -4.0), ("constant_gain", 0.0), ("ibm", 7.0), ("irm", 8.0),
                          ("irm2", 9.0), ("mwf", 10.0)]:  # fmt: skip
        rows.append(result(method, dict.fromkeys(stems, value)))
    lines = verdict(rows)
    assert lines[0] == "- vocals: model uSDR 2.00 dB beats mixture, constant gain"
    assert "IRM oracle 8.00 dB" in lines[-1] and "covers 50% of the way" in lines[-1]
    assert len(verdict(rows[:2])) == 4  # without the oracle: the per-stem lines only


def test_demo_baselines_are_known_to_evaluate():
    assert set(BASELINES) <= set(evaluate.BASELINES)
    assert {"mixture", "constant_gain", "irm"} <= set(BASELINES)


def test_demo_cli_steps():
    parser = build_parser()
    assert parser.parse_args(["demo"]).steps == DEMO_STEPS
    args = parser.parse_args(["demo", "--steps", "7", "--out", "elsewhere"])
    assert args.steps == 7 and str(args.out) == "elsewhere"


def test_demo_never_removes_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(BsrError, match="not made by the demo"):
        fresh_run_dir(mine)
    assert (mine / "notes.txt").read_text() == "keep me"


# docs/reproducing.md: its FLOPs table and its config must be what the code says.

REPRODUCING = Path(__file__).parent.parent / "docs" / "reproducing.md"


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_reproducing_flops_table_is_what_its_script_prints(capsys):
    text = REPRODUCING.read_text()
    (script,) = fenced_blocks(text, "python")
    exec(compile(script, "reproducing-flops", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    table = text.split("It prints:", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    assert len(printed) > 10 and printed == table
    assert "| training, one step of 64 segments | 0.496 PFLOP |" in table  # the prose's figure


def test_reproducing_config_is_paper_l6_at_the_papers_batch_of_64():
    from bsr.config import config_from_dict, load_config

    (block,) = fenced_blocks(REPRODUCING.read_text(), "yaml")
    config = config_from_dict(yaml.safe_load(block))
    assert config.model == load_config("paper-l6").model
    assert config.train.batch_size * config.train.grad_accum * 8 == 64  # paper, Sec. 4.6
    assert config.train.segment_seconds == 8.0
