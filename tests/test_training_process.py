"""The Qt-free process control of a training run: a real tiny ``python -m src_train train`` child."""

from __future__ import annotations

import csv
import json
import time

from napari_medsynth.core.console import EXIT_INTERRUPTED
from napari_medsynth.core.train_config import train_argv
from napari_medsynth.core.training_process import TrainingProcess

TINY = dict(width="0.0625", batch_size=7, val_stride=32, workers=0, device="cpu", variant="G1")


def _wait(process: TrainingProcess, deadline_s: float = 240) -> int:
    deadline = time.monotonic() + deadline_s
    while process.poll() is None:
        assert time.monotonic() < deadline, process.last_line()
        time.sleep(0.1)
    return process.poll()


def _wait_for_a_step(process: TrainingProcess, deadline_s: float = 240) -> None:
    events = process.run_dir / "events.jsonl"
    deadline = time.monotonic() + deadline_s
    while not (events.is_file() and '{"kind": "step"' in events.read_text()):
        assert process.poll() is None, process.last_line()
        assert time.monotonic() < deadline, process.last_line()
        time.sleep(0.05)


def test_stop_saves_a_last_pt_that_resume_finishes(phantom_dir, tmp_path):
    run_dir = tmp_path / "runs" / "tiny"  # made by TrainingProcess
    process = TrainingProcess(train_argv(data=phantom_dir, out=run_dir, epochs=1, **TINY), run_dir)
    assert process.run_dir == run_dir and process.poll() is None
    _wait_for_a_step(process)
    assert process.stop(wait=240) == EXIT_INTERRUPTED
    assert (run_dir / "last.pt").is_file()
    assert "last.pt saved: continue with --resume" in process.log_path.read_text()

    resumed = TrainingProcess(train_argv(data=phantom_dir, out=run_dir, epochs=1, resume=True, **TINY), run_dir)
    assert _wait(resumed) == 0, resumed.last_line()
    assert resumed.stop() == 0  # a finished process: nothing to stop
    assert (run_dir / "best.pt").is_file() and not (run_dir / ".lock").exists()
    with open(run_dir / "metrics.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1]
    steps = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
             if line.startswith('{"kind": "step"')]
    assert [s["step"] for s in steps] == list(range(1, 8))  # the resumed run took the steps the stop left
    assert resumed.last_line().startswith("best epoch 1")
    log = (run_dir / "train.log").read_text()  # both runs' output, appended
    assert log.count("G1 t2-pd: 1 training and 1 validation subjects") == 2 and "Traceback" not in log


def test_a_refused_run_exits_1_with_its_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    process = TrainingProcess(train_argv(data=empty, out=tmp_path / "run", epochs=1, **TINY), tmp_path / "run")
    assert _wait(process) == 1
    assert process.last_line().startswith("medsynth-train: error:")
    assert "Traceback" not in process.log_path.read_text()
