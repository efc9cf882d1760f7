"""The Qt-free process control of a training run: a real ``python -m src_train train`` child. (Stop and
Resume of a real run through it: the training dock's test in test_widgets.py.)"""

from __future__ import annotations

import time

from napari_medsynth.core.training.config import train_argv
from napari_medsynth.core.training.process import TrainingProcess

TINY = dict(width="0.0625", batch_size=7, val_stride=32, workers=0, device="cpu", variant="G1")


def _wait(process: TrainingProcess, deadline_s: float = 240) -> int:
    deadline = time.monotonic() + deadline_s
    while process.poll() is None:
        assert time.monotonic() < deadline, process.last_line()
        time.sleep(0.1)
    return process.poll()


def test_a_refused_run_exits_1_with_its_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    process = TrainingProcess(train_argv(data=empty, out=tmp_path / "run", epochs=1, **TINY), tmp_path / "run")
    assert _wait(process) == 1
    assert process.last_line().startswith("medsynth-train: error:")
    assert "Traceback" not in process.log_path.read_text()
