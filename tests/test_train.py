"""Training: runs, resumes exactly, stops on NaN, and agrees across DDP ranks."""

import dataclasses
import json
import os
import socket

import numpy as np
import pytest
import soundfile as sf
import torch

from bsr.config import load_config
from bsr.errors import BsrError
from bsr.train import (
    OffsetSampler,
    apply_update,
    build_run,
    ema_decay_at,
    lr_factor,
    make_ema,
    read_checkpoint,
    train,
)

STEMS = ("vocals", "drums", "bass", "other")


def write_song(folder, seconds, rate, seed):
    """A MUSDB18HQ-layout song of decaying sines and noise bursts, different per stem."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * rate)) / rate
    stems = {}
    for i, name in enumerate(STEMS):
        tone = np.sin(2 * np.pi * rng.uniform(80, 2000) * t * (i + 1))
        env = (np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) > 0).astype(float)
        noise = rng.standard_normal(t.size) * (0.05 if name == "drums" else 0.005)
        mono = 0.2 * tone * env + noise
        stems[name] = np.stack([mono, 0.8 * mono], axis=1).astype(np.float32)
        sf.write(folder / f"{name}.wav", stems[name], rate, subtype="FLOAT")
    sf.write(folder / "mixture.wav", sum(stems.values()), rate, subtype="FLOAT")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("wavset")
    for k in range(2):
        write_song(root / "train" / f"song {k}", 3.0, 44100, k)
    write_song(root / "test" / "held out", 2.0, 44100, 9)
    return root


def tiny_config(**train_overrides):
    config = load_config("tiny")
    model = dataclasses.replace(config.model, attn_dropout=0.1, ff_dropout=0.1)
    defaults = dict(
        segment_seconds=0.5,
        batch_size=2,
        valid_seconds=1.0,
        validate_every=3,
        checkpoint_every=1,
        lr_decay_every=2,
    )
    defaults.update(train_overrides)
    return dataclasses.replace(
        config, model=model, train=dataclasses.replace(config.train, **defaults)
    )


def losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["event"] == "step"}


def test_training_writes_checkpoints_logs_and_validation(dataset, tmp_path):
    run = train(tiny_config(), dataset, tmp_path / "run", steps=3, progress=False)
    assert run.step == 3
    records = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3]
    valid = [r for r in records if r["event"] == "valid"]
    assert valid and set(valid[-1]["usdr"]) == set(STEMS)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 3 and {
        "model",
        "ema",
        "optimizer",
        "scheduler",
        "scaler",
        "rng",
    } <= set(state)
    # lr decayed x0.9 every 2 steps
    assert state["scheduler"]["_last_lr"][0] == pytest.approx(1e-3 * 0.9)
    assert (tmp_path / "run" / "model.pt").is_file()


def test_resume_continues_exactly(dataset, tmp_path):
    config = tiny_config()
    train(config, dataset, tmp_path / "whole", steps=4, progress=False)
    train(config, dataset, tmp_path / "split", steps=2, progress=False)
    with pytest.raises(BsrError, match="already holds a run"):
        train(config, dataset, tmp_path / "split", steps=4, progress=False)
    train(config, dataset, tmp_path / "split", steps=4, resume=True, progress=False)
    whole, split = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert list(split) == [1, 2, 3, 4]
    assert split == whole  # bit-identical losses, dropout included
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    for part in ("model", "ema"):  # the EMA's warm-up resumes where it stopped, too
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert a["ema_state"]["n_averaged"] == b["ema_state"]["n_averaged"] == 4


def test_ema_decay_warms_up_to_its_target():
    decays = [ema_decay_at(n, 0.999, 10) for n in range(20000)]
    assert decays[0] == pytest.approx(0.1)  # the first average is mostly the new weights
    assert decays[1] == pytest.approx(2 / 11)
    assert all(a <= b for a, b in zip(decays, decays[1:]))  # never decreases
    assert decays[-1] == 0.999  # and settles at the configured decay
    assert ema_decay_at(5, 0.9, 0) == 0.9  # warm-up 0: the fixed decay


def test_ema_matches_a_float64_recurrence():
    model = torch.nn.Linear(3, 2)
    ema = make_ema(model, decay=0.95, warmup=4)
    history = []
    for _ in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        history.append([p.detach().double().clone() for p in model.parameters()])
        ema.update_parameters(model)
    expected = history[0]  # the first update copies
    for n, current in enumerate(history[1:], start=1):
        d = min(0.95, (1 + n) / (4 + n))
        expected = [d * e + (1 - d) * c for e, c in zip(expected, current)]
    for got, want in zip(ema.module.parameters(), expected):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    import bsr.train as training

    real = training.separation_loss
    calls = {"n": 0}

    def flaky(estimate, reference, **options):
        calls["n"] += 1
        loss, parts = real(estimate, reference, **options)
        return (loss * float("nan") if calls["n"] == 3 else loss), parts

    monkeypatch.setattr(training, "separation_loss", flaky)
    with pytest.raises(BsrError, match="loss became nan at step 3.*last good checkpoint"):
        train(tiny_config(), dataset, tmp_path / "run", steps=5, progress=False)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BsrError) as info:
        read_checkpoint(bad)
    assert "not a readable checkpoint" in str(info.value) and "\n" not in str(info.value)


def test_schedule_and_sampler():
    assert lr_factor(0, 0, 0.9, 10) == 1.0 and lr_factor(25, 0, 0.9, 10) == pytest.approx(0.81)
    assert lr_factor(0, 4, 0.9, 10) == 0.25
    ranks = [list(OffsetSampler(3, 1, 2, rank=r, world=2)) for r in (0, 1)]
    assert ranks == [[4, 5, 8, 9], [6, 7, 10, 11]]  # disjoint, batch 0 skipped on resume


def _ddp_worker(rank, world, port, data, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    run = train(tiny_config(validate_every=100), data, out, steps=2, progress=False)
    torch.save(run.model.state_dict(), f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_ranks_hold_identical_weights(dataset, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(dataset), str(tmp_path)), nprocs=2)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    initial = tiny_config().model
    torch.manual_seed(0)
    from bsr.model import BSRoformer

    fresh = BSRoformer(initial).state_dict()
    assert any(not torch.equal(a[k], fresh[k]) for k in a)  # and they did train


def test_a_skipped_fp16_update_moves_neither_schedule_nor_ema():
    config = tiny_config(lr_decay_every=1)
    run = build_run(config, torch.device("cpu"))
    run.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=True)  # as under fp16
    run.scaler.scale(torch.ones(()))  # the scaler starts its bookkeeping on the first loss
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    ema_before = {k: v.clone() for k, v in run.ema.module.state_dict().items()}
    for p in run.model.parameters():
        p.grad = torch.full_like(p, float("inf"))  # an overflow
    assert apply_update(run) is False
    assert run.scaler.get_scale() == 512.0  # the scaler backed off ...
    assert run.scheduler.last_epoch == 0 and int(run.ema.n_averaged) == 0  # ... nothing else
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    assert all(torch.equal(ema_before[k], v) for k, v in run.ema.module.state_dict().items())
    for p in run.model.parameters():
        p.grad = torch.full_like(p, 1e-3 * 512.0)  # a scaled, finite gradient
    assert apply_update(run) is True
    assert run.scheduler.last_epoch == 1 and int(run.ema.n_averaged) == 1
    assert any(not torch.equal(before[k], v) for k, v in run.model.state_dict().items())


def test_data_at_another_sample_rate_is_one_line(tmp_path):
    write_song(tmp_path / "train" / "slow song", 2.0, 22050, 0)
    with pytest.raises(BsrError) as info:
        train(tiny_config(), tmp_path, tmp_path / "run", steps=1, progress=False)
    message = str(info.value)
    assert "22050 Hz but the model expects 44100 Hz" in message and "\n" not in message
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(
    "capability, expected",
    [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")],
    ids=["T4", "V100", "A100", "H100"],
)
def test_auto_precision_by_gpu_generation(monkeypatch, capability, expected):
    """fp16 with the scaler on T4/V100 (which only emulate bf16), bf16 from A100 on."""
    from bsr.train import pick_precision

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # T4 says yes
    assert pick_precision("auto", torch.device("cuda")) == expected
    assert pick_precision("auto", torch.device("cpu")) == "fp32"


def test_a_time_budget_shows_a_bar_over_seconds_with_validation(dataset, tmp_path, capsys):
    """With max_seconds the bar's ETA is the budget's, and it shows the validation uSDR."""
    run = train(tiny_config(cache=True), dataset, tmp_path / "run", steps=3, max_seconds=120,
                device="cpu", progress=True)  # fmt: skip
    assert run.step == 3
    bar = capsys.readouterr().err
    assert "/120 [" in bar and "valid uSDR=" in bar and "step=3" in bar, bar[-400:]
