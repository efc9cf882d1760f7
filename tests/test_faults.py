"""Faults a user meets outside the happy path: a full disk, a hostile checkpoint, a phantom that
must come out the same every time. (Killed and stopped training: tests/test_train.py; fuzzed
NIfTI headers: tests/test_fuzz_nifti.py.)"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from napari_medsynth.cli import main
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files import atomic
from napari_medsynth.core.networks.checkpoint import load_checkpoint, save_checkpoint
from napari_medsynth.core.networks.models import Generator

GENERATORS = Path(__file__).parents[1] / "napari_medsynth" / "data" / "generators"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip; but in CI (``CI=true``) fail, for docs/reliability.md cites these tests as evidence."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI must run this test (docs/reliability.md cites it)")
    pytest.skip(reason)


def _fill(disk: Path, leave: int = 8_000) -> None:
    """Write a filler file until only about ``leave`` bytes stay free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


class FullDisk:
    """A folder whose disk ``fill()`` fills; ``extra``: the files filling puts in it."""

    def __init__(self, folder: Path, fill, extra: list[str]):
        self.folder, self.fill, self.extra = folder, fill, extra


@pytest.fixture(params=["enospc", "tmpfs"])
def full_disk(request, tmp_path, monkeypatch):
    """enospc: once filled, each temporary file ``atomic_output`` makes in the folder is a link to /dev/full,
    whose every write fails with the kernel's ENOSPC: the writers (torch's, nibabel's gzip) meet a full disk at
    their first write, without root. tmpfs: a real 512 kB tmpfs, filled up to its last few kilobytes, where the
    first writes succeed (mounting it needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if request.param == "enospc":
        if not os.access("/dev/full", os.W_OK):
            skip_or_fail_in_ci("no /dev/full to write into")
        make_temporary, full = tempfile.mkstemp, []

        def mkstemp(*args, **kwargs):
            handle, name = make_temporary(*args, **kwargs)
            if full and Path(name).parent == mount:
                os.unlink(name)
                os.symlink("/dev/full", name)  # (the writer opens the name: it writes into /dev/full)
            return handle, name

        monkeypatch.setattr(atomic, "tempfile", SimpleNamespace(mkstemp=mkstemp, mkdtemp=tempfile.mkdtemp))
        yield FullDisk(mount, lambda: full.append(True), [])
        return
    try:
        mounted = not subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                                     capture_output=True).returncode
    except OSError:  # no mount command
        mounted = False
    if not mounted:
        skip_or_fail_in_ci("mounting a small tmpfs needs root")
    yield FullDisk(mount, lambda: _fill(mount), ["filler"])
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_checkpoint_on_a_full_disk_keeps_the_previous_file_and_says_how_much_is_free(full_disk):
    path = full_disk.folder / "last.pt"
    save_checkpoint(path, Generator(width=0.0625), direction="t2-pd", variant="G1")
    before = _sha256(path)
    full_disk.fill()
    with pytest.raises(MedSynthError) as raised:
        save_checkpoint(path, Generator(width=0.5), direction="t2-pd", variant="G1")
    message = str(raised.value)
    assert message.startswith(f"{path}: cannot write (No space left on device; ") and "free there)" in message
    assert "\n" not in message
    assert _sha256(path) == before
    left = sorted(p.name for p in full_disk.folder.iterdir())
    assert left == sorted([*full_disk.extra, "last.pt"])  # no temporary file left


def test_a_synthesis_on_a_full_disk_is_one_line_and_keeps_the_previous_output(full_disk, phantom_dir, tmp_path,
                                                                             capsys):
    out = full_disk.folder / "synth.nii.gz"
    out.write_bytes(b"an earlier result")
    full_disk.fill()
    source = next(phantom_dir.glob("*-PD.nii.gz"))
    generator = save_checkpoint(tmp_path / "g.pt", Generator(width=0.0625), direction="pd-t2", variant="G1",
                                target_intensity={"mean": 400.0, "std": 150.0})  # small: the write is the point
    assert main(["synthesize", str(source), "--checkpoint", str(generator), "--out", str(out),
                 "--stride", "32", "--grid", "report", "--device", "cpu"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"medsynth: error: {out}: cannot write (No space left on device")
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in full_disk.folder.iterdir()) == sorted([*full_disk.extra, "synth.nii.gz"])


class _Payload:
    """Unpickling this runs ``Path(marker).touch()``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, phantom_dir, capsys):
    marker = tmp_path / "the payload ran"
    evil = tmp_path / "generator.pt"
    payload = torch.load(GENERATORS / "t2-pd-G4.pt", weights_only=True)
    payload["provenance"] = _Payload(marker)
    torch.save(payload, evil)
    refusal = "generator.pt: refused: it holds Python objects that would run code when loaded"
    with pytest.raises(MedSynthError, match=refusal):
        load_checkpoint(evil)
    source = next(phantom_dir.glob("*-T2.nii.gz"))
    commands = [
        ["synthesize", str(source), "--checkpoint", str(evil), "--out", str(tmp_path / "out.nii.gz")],
        ["synthesize", str(phantom_dir), "--checkpoint", str(evil), "--out", str(tmp_path / "folder")],
    ]
    for command in commands:
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err == f"medsynth: error: {refusal}; a generator checkpoint holds only tensors and numbers\n", err
    from src_train.cli import main as train_main

    assert train_main(["train", "--data", str(phantom_dir), "--out", str(tmp_path / "g4"), "--variant", "G4",
                       "--init", str(evil), "--width", "0.125", "--device", "cpu", "--workers", "0"]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"medsynth-train: error: {refusal}")
    assert not marker.exists()
    assert not (tmp_path / "out.nii.gz").exists() and not list((tmp_path / "folder").glob("*.nii.gz"))


def test_the_phantom_is_bit_identical_on_every_run_and_thread_count(tmp_path):
    command = ["phantom", "--subjects", "2", "--seed", "3", "--shape", "64", "64", "33"]
    assert main([command[0], str(tmp_path / "a"), *command[1:]]) == 0
    subprocess.run([sys.executable, "-m", "napari_medsynth.cli", command[0], str(tmp_path / "b"), *command[1:]],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 4 and files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert [_sha256(tmp_path / "a" / name) for name in files] == [_sha256(tmp_path / "b" / name) for name in files]
