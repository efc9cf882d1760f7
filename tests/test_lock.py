"""The run folder's lock (src_train.lock): held by the trainer process alone, not by what it forks."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from napari_medsynth.core.errors import MedSynthError
from src_train.lock import RunLock

posix_only = pytest.mark.skipif(os.name != "posix", reason="fork and SIGKILL")
TINY = ["--width", "0.0625", "--batch-size", "7", "--val-stride", "32", "--device", "cpu", "--variant", "G1"]


def _alive(process: psutil.Process) -> bool:
    """Whether ``process`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _end(processes) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()  # psutil checks that the PID is still that process


@posix_only
def test_a_forked_child_outliving_the_holder_does_not_hold_the_lock(tmp_path):
    """What DataLoader workers are: children forked after the lock was taken, with its file open."""
    hold = ("import os, sys, time; from src_train.lock import RunLock\n"
            f"lock = RunLock({str(tmp_path)!r}).acquire()\n"
            "child = os.fork()\n"
            "if child == 0:\n    time.sleep(60); os._exit(0)\n"
            "print(child, flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(holder.stdout.readline()))
    try:
        with pytest.raises(MedSynthError, match=f"is being trained by PID {holder.pid} on"):
            RunLock(tmp_path).acquire()
        holder.kill()  # SIGKILL: no release, the record stays
        holder.wait()
        assert _alive(child)  # orphaned, with the lock file open
        with pytest.warns(UserWarning, match=f"taking over from PID {holder.pid}"):
            lock = RunLock(tmp_path).acquire()
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
        lock.release()
        assert not (tmp_path / ".lock").exists()
    finally:
        _end([child])
        holder.kill()
        holder.wait()


def test_one_process_cannot_lock_a_folder_twice_and_keeps_its_first_lock(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(MedSynthError, match=f"is being trained by this process \\(PID {os.getpid()}\\)"):
        RunLock(str(tmp_path)).acquire()
    probe = "from src_train.lock import RunLock; import sys; RunLock(sys.argv[1]).acquire()"
    refused = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert refused.returncode == 1 and f"is being trained by PID {os.getpid()} on" in refused.stderr
    first.release()
    RunLock(tmp_path).acquire().release()  # given back: free again, in this process too


@pytest.mark.skipif(sys.platform != "linux", reason="DataLoader workers are forked on Linux")
def test_sigkill_with_loader_workers_then_resume_at_once_continues(phantom_dir, tmp_path):
    """SIGKILL of the trainer alone (its 2 DataLoader workers orphaned, still running), then --resume
    at once: the new trainer takes the folder over and finishes the run."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "src_train", "train", "--data", str(phantom_dir), "--out", str(out), *TINY,
               "--epochs", "1", "--workers", "2"]
    trainer = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    events, deadline = out / "events.jsonl", time.monotonic() + 240
    while True:  # until the first step: the epoch's loader workers run
        assert trainer.poll() is None and time.monotonic() < deadline
        lines = events.read_text().splitlines() if events.is_file() else []
        if any(line.startswith('{"kind": "step", ') for line in lines):
            break
        time.sleep(0.05)
    workers = psutil.Process(trainer.pid).children()
    assert len(workers) == 2, workers
    os.kill(trainer.pid, signal.SIGKILL)  # the trainer only, not its process group
    trainer.wait()
    try:
        assert any(_alive(worker) for worker in workers)  # orphans, holding the lock file open
        resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=240)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    finally:
        _end(workers)
    assert f"taking over from PID {trainer.pid}" in resumed.stderr
    assert "is being trained by" not in resumed.stderr and "Traceback" not in resumed.stderr
    with open(out / "metrics.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1]
    assert (out / "last.pt").is_file() and not (out / ".lock").exists()
