"""src_train on a tiny phantom set at small width: real torch training, real files."""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained_like

from napari_medsynth import load_checkpoint
from napari_medsynth.core.training.config import TrainConfig
from napari_medsynth.core.training.events import DoneEvent, EventLog, StartEvent, StepEvent, ValidationEvent
from src_train.cli import main
from src_train.trainer import Trainer, TrainingStopped

TINY = ["--width", "0.0625", "--discriminator-width", "0.125", "--batch-size", "7", "--val-stride", "32",
        "--workers", "0", "--device", "cpu"]


def _rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _config(phantom_dir, out, **changes) -> TrainConfig:
    values = dict(data=str(phantom_dir), out=str(out), width=0.0625, discriminator_width=0.125, batch_size=7,
                  val_stride=32, workers=0, device="cpu", epochs=2)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def g3_run(phantom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "g3"
    assert main(["train", "--data", str(phantom_dir), "--out", str(out), "--variant", "G3", "--epochs", "3",
                 "--lr", "1e-3", *TINY]) == 0
    return out


def test_a_run_writes_its_folder_and_the_loss_falls(g3_run):
    names = {p.name for p in g3_run.iterdir()}
    assert {"last.pt", "best.pt", "metrics.csv", "val_subjects.csv", "events.jsonl", "curves.png",
            "split.json"} <= names
    rows = _rows(g3_run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["loss_rec"]) < float(rows[0]["loss_rec"])
    assert float(rows[-1]["loss_d"]) > 0 and float(rows[-1]["loss_gdl"]) > 0
    split = json.loads((g3_run / "split.json").read_text())
    assert [len(split[k]) for k in ("train", "validation", "test")] == [1, 1, 1]
    assert len(_rows(g3_run / "val_subjects.csv")) == 3
    events = EventLog(g3_run).read_new()
    assert isinstance(events[0], StartEvent) and isinstance(events[-1], DoneEvent)
    validations = [e for e in events if isinstance(e, ValidationEvent)]
    assert len(validations) == 3
    for event in validations:  # the epoch's throughput: 1 training subject = 49 patches
        rate = event.throughput
        assert rate["patches"] == 49 and 0 <= rate["loader_wait_fraction"] < 1
        assert rate["generator_patches_per_s"] > rate["patches_per_s"] > 0
        assert rate["discriminator_patches_per_s"] > rate["patches_per_s"]


def test_best_checkpoint_is_the_best_validation_epoch(g3_run):
    rows = _rows(g3_run / "metrics.csv")
    best_row = max(rows, key=lambda r: float(r["val_psnr"]))
    _, info = load_checkpoint(g3_run / "best.pt", direction="t2-pd")
    assert info.variant == "G3" and info.width == 0.0625
    assert info.provenance["best_epoch"] == int(best_row["epoch"])
    assert info.provenance["val_psnr"] == pytest.approx(float(best_row["val_psnr"]))
    assert info.target_intensity.std > 0
    _, last = load_checkpoint(g3_run / "last.pt")
    assert last.provenance["epochs"] == 3


def test_saved_batchnorm_statistics_are_those_of_the_training_patches(g3_run, phantom_dir):
    """Not a moving average of the epoch's last batches: the first BatchNorm's running mean is the
    mean of the first convolution's output over the training subject's patches."""
    from src_train.data import PatchDataset, PreprocessedCache, SubjectSplit, load_volume_pairs, pairs_of

    generator, info = load_checkpoint(g3_run / "last.pt")
    split = SubjectSplit.load(g3_run / "split.json")
    pairs = load_volume_pairs(pairs_of(phantom_dir, split.train), info.direction, PreprocessedCache(g3_run / "cache"))
    patches = torch.cat([source[None] for source, _ in PatchDataset(pairs)])
    assert len(patches) == 49
    with torch.no_grad():
        channel_means = generator.layers[0](patches).mean(dim=(0, 2, 3, 4))
    torch.testing.assert_close(generator.layers[1].running_mean, channel_means, rtol=1e-4, atol=1e-6)


def test_g4_starts_from_g3s_best_weights(g3_run, phantom_dir, tmp_path):
    best = torch.load(g3_run / "best.pt", weights_only=True)
    seen = {}
    config = _config(phantom_dir, tmp_path / "g4", variant="G4", init=str(g3_run / "best.pt"), epochs=1)
    trainer = Trainer(config)

    def on_start(event):
        if isinstance(event, StartEvent):
            seen["generator"] = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
            seen["discriminator"] = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}

    trainer.on_event = on_start
    trainer.run()
    for key, value in best["generator"].items():
        torch.testing.assert_close(seen["generator"][key], value)
    for key, value in best["discriminator"].items():
        torch.testing.assert_close(seen["discriminator"][key], value)
    assert trainer.norm == "l1"


def test_interrupted_and_resumed_equals_uninterrupted(phantom_dir, tmp_path):
    # With the cosine schedule: a resumed run must take the uninterrupted run's rates as well.
    cosine = dict(variant="G2", epochs=1, lr_schedule="cosine")
    whole = Trainer(_config(phantom_dir, tmp_path / "whole", **cosine))
    rates = []
    whole.on_event = lambda event: rates.append(whole.optimizer_g.param_groups[0]["lr"]) \
        if isinstance(event, StepEvent) else None
    whole.run()
    assert rates[0] == pytest.approx(2e-4) and rates[-1] == pytest.approx(2e-6)
    assert all(a > b for a, b in itertools.pairwise(rates)) and len(rates) == 7
    assert whole.optimizer_d.param_groups[0]["lr"] == rates[-1]

    stopped = Trainer(_config(phantom_dir, tmp_path / "split", **cosine))

    def stop_mid_epoch(event):
        if isinstance(event, StepEvent) and event.epoch == 1 and event.step == 3:
            stopped.stop_requested.set()

    stopped.on_event = stop_mid_epoch
    with pytest.raises(TrainingStopped, match="stopped at epoch 1, step 3 of 7"):
        stopped.run()
    assert not (tmp_path / "split" / "metrics.csv").exists()
    Trainer(_config(phantom_dir, tmp_path / "split", **cosine), resume=True).run()

    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    for key, value in a["generator"].items():
        torch.testing.assert_close(b["generator"][key], value, rtol=0, atol=0)
    for key, value in a["training"]["discriminator"].items():
        torch.testing.assert_close(b["training"]["discriminator"][key], value, rtol=0, atol=0)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / "whole" / "metrics.csv")] == \
           [{k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / "split" / "metrics.csv")]


def test_refusals_are_one_line(phantom_dir, tmp_path, g3_run, capsys):
    (tmp_path / "held").mkdir()
    hold = (f"import time; from src_train.lock import RunLock; lock = RunLock({str(tmp_path / 'held')!r}).acquire(); "
            "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    cases = [
        (["--out", str(tmp_path / "held"), "--resume"], f"is being trained by PID {holder.pid} on"),
        (["--out", str(g3_run)], "already holds a run (last.pt): pass --resume"),
        (["--out", str(tmp_path / "nan"), "--lr", "1e38"], "loss became nan"),
        (["--out", str(tmp_path / "b1"), "--variant", "G2", "--batch-size", "1"], "use --batch-size 2 or more"),
        (["--out", str(tmp_path / "cuda"), "--device", "cuda"], "sees no GPU"),
        (["--out", str(tmp_path / "g4"), "--variant", "G4", "--init", str(g3_run / "best.pt"),
          "--discriminator-width", "0.25"], "its discriminator is not the width-0.25 one"),
        (["--out", str(g3_run / "best.pt" / "run")], "cannot write there"),
    ]
    for extra, message in cases:
        if "cuda" in extra and torch.cuda.is_available():
            continue
        args = ["train", "--data", str(phantom_dir), *TINY, "--epochs", "1", *extra]
        assert main(args) == 1, extra
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("medsynth-train: error:")]
        assert len(errors) == 1 and message in errors[0], err
        assert "Traceback" not in err
    holder.kill()
    holder.wait()
    assert not (tmp_path / "nan" / "last.pt").exists()


def test_a_run_killed_before_its_first_save_resumes_afresh_and_takes_over_its_lock(phantom_dir, tmp_path, capsys):
    """What SIGKILL in the first epoch leaves: a lock record of a dead PID, events and no last.pt."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "killed"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "here", "since": "then"}))
    (out / "events.jsonl").write_text('{"kind": "start", "epochs": 99}\n{"kind": "step", "epo')  # half-written
    assert main(["train", "--data", str(phantom_dir), "--out", str(out), *TINY, "--epochs", "1", "--resume"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medsynth-train: warning:")]
    assert any("nothing was saved yet (no last.pt): starting afresh" in w for w in warnings), warnings
    assert any(f"taking over from PID {dead.pid}" in w for w in warnings), warnings
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "start" and events[0]["epochs"] == 1  # only this run's events
    assert (out / "last.pt").is_file() and not (out / ".lock").exists()
    # Resuming a finished run (as the demo recipe does on a rerun) trains nothing and says so
    assert main(["train", "--data", str(phantom_dir), "--out", str(out), *TINY, "--epochs", "1", "--resume"]) == 0
    assert "x1, 1 of 1 epochs already done" in capsys.readouterr().err
    assert [int(r["epoch"]) for r in _rows(out / "metrics.csv")] == [1]


def _wait_for_step(events: Path, deadline: float, global_step: int = 1, steps_per_epoch: int = 7) -> None:
    """Until the run in ``events``' folder has logged its ``global_step``-th step (counted over epochs)."""
    while time.time() < deadline:
        lines = events.read_text().splitlines() if events.exists() else []
        steps = [json.loads(line) for line in lines if line.startswith('{"kind": "step"') and line.endswith("}")]
        if steps and (steps[-1]["epoch"] - 1) * steps_per_epoch + steps[-1]["step"] >= global_step:
            return
        time.sleep(0.05)
    raise AssertionError(f"{events}: step {global_step} not reached")


def test_sigterm_to_the_process_group_with_loader_workers_saves_and_resume_finishes(phantom_dir, tmp_path):
    """As a job scheduler or `timeout` stops a run: SIGTERM to the trainer and its DataLoader workers."""
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "src_train", "train", "--data", str(phantom_dir), "--out", str(out), *TINY,
               "--epochs", "2", "--workers", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_step(out / "events.jsonl", time.time() + 240)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    assert "last.pt saved: continue with --resume" in err and "Traceback" not in err, err
    assert (out / "last.pt").exists()
    assert main(["train", "--data", str(phantom_dir), "--out", str(out), *TINY, "--epochs", "2", "--resume"]) == 0
    assert [int(r["epoch"]) for r in _rows(out / "metrics.csv")] == [1, 2]


@pytest.mark.slow
def test_sigkill_at_random_points_of_both_epochs_resumes_to_the_uninterrupted_weights(phantom_dir, tmp_path):
    """SIGKILL (no chance to save) at a seeded random step of each epoch of a 2-epoch run (steps 5 and 13):
    each rerun with --resume continues from the last epoch saved, and the end is the uninterrupted run,
    records included."""
    options = dict(variant="G1", epochs=2)  # the default engine: its per-layer choice is fixed by the shapes
    Trainer(_config(phantom_dir, tmp_path / "whole", **options)).run()
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "src_train", "train", "--data", str(phantom_dir), "--out", str(out), *TINY,
               "--variant", "G1", "--epochs", "2", "--resume"]
    for global_step in sorted(random.Random(23).sample(range(1, 2 * 7 + 1), 2)):
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        _wait_for_step(out / "events.jsonl", time.time() + 240, global_step)
        process.kill()
        process.wait()
    assert main(["train", "--data", str(phantom_dir), "--out", str(out), *TINY, "--variant", "G1", "--epochs", "2",
                 "--resume"]) == 0

    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    resumed = torch.load(out / "last.pt", weights_only=True)
    for key, value in whole["generator"].items():
        torch.testing.assert_close(resumed["generator"][key], value, rtol=0, atol=0)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in _rows(out / "metrics.csv")] == \
           [{k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / "whole" / "metrics.csv")]
    assert [int(r["epoch"]) for r in _rows(out / "val_subjects.csv")] == [1, 2]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    steps = [(e["epoch"], e["step"]) for e in events if e["kind"] == "step"]
    assert steps == [(epoch, step) for epoch in (1, 2) for step in range(1, 8)]  # none twice, none missing
    assert [e["epoch"] for e in events if e["kind"] == "validation"] == [1, 2]


def test_two_process_gloo_torchrun(phantom_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "src_train", "train", "--data", str(phantom_dir), "--out", str(out), *TINY, "--epochs", "1"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    start = EventLog(out).read_new()[0]
    assert start.world_size == 2 and start.steps == 4  # 49 patches, 2 ranks, batches of 7
    _, info = load_checkpoint(out / "best.pt")
    assert info.provenance["epochs"] == 1


def test_evaluate_writes_its_tables_and_the_run_beats_its_untrained_start(g3_run, phantom_dir, trained, tmp_path,
                                                                           capsys):
    # the run's best.pt beside the generator it started from (the seed's, untrained): one evaluation of both
    start = untrained_like(g3_run / "best.pt", tmp_path / "start" / "start.pt", seed=0)
    assert main(["evaluate", "--data", str(phantom_dir), "--checkpoint", str(trained(g3_run / "best.pt")),
                 str(start), "--split", str(g3_run / "split.json"), "--out", str(tmp_path), "--stride", "32",
                 "--device", "cpu"]) == 0
    table = (tmp_path / "test_table.md").read_text()
    assert table.count("| G3 (") == 2 and "T2->PD" in table
    assert "PSNR (dB), source grid" in table and "PSNR (dB), report grid" in table
    rows = _rows(tmp_path / "test_subjects.csv")
    test_subject = json.loads((g3_run / "split.json").read_text())["test"]
    for scope in ("source", "head", "report"):
        assert [r["subject"] for r in rows if r["scope"] == scope] == test_subject * 2
        run, untrained = ({m: float(r[m]) for m in ("mae", "psnr", "ssim")} for r in rows if r["scope"] == scope)
        # three epochs show (by 3.2-4.0 dB, still below the standardized source): an untrained best.pt fails this
        assert run["psnr"] > untrained["psnr"] + 2 and run["mae"] < untrained["mae"], (scope, run, untrained)
        assert run["ssim"] > untrained["ssim"] + 0.05, (scope, run, untrained)


def test_all_stacks_trains_on_every_slice(phantom_dir, tmp_path):
    out = tmp_path / "stacks"
    trainer = Trainer(_config(phantom_dir, out, epochs=1, all_stacks=True))
    trainer.on_event = lambda event: isinstance(event, StepEvent) and trainer.stop_requested.set()
    with pytest.raises(TrainingStopped, match="step 1 of 21"):  # 3 stacks x 49 patches, batches of 7
        trainer.run()
    assert len(trainer.loader.dataset) == 147
    cached = sorted((out / "cache").glob("*.npy"))
    assert cached and all(np.load(p, mmap_mode="r").shape == (224, 224, 96) for p in cached)


def test_the_fft_engine_trains_the_same_steps_and_writes_plain_checkpoints(phantom_dir, tmp_path):
    """Two G1 steps with each engine from the same seed: the same losses to float rounding."""
    losses = {}
    for engine in ("direct", "fft"):
        out = tmp_path / engine
        assert main(["train", "--data", str(phantom_dir), "--out", str(out), "--epochs", "1", "--engine", engine,
                     *TINY]) == 0
        losses[engine] = float(_rows(out / "metrics.csv")[0]["loss_rec"])
        generator, _ = load_checkpoint(out / "best.pt")  # a plain Generator, whichever engine trained it
        assert all(type(m) is torch.nn.Conv3d for m in generator.modules() if isinstance(m, torch.nn.Conv3d))
    assert losses["fft"] == pytest.approx(losses["direct"], rel=1e-3)
