"""Device selection: an NVIDIA GPU that a CPU-only torch cannot use is named, not passed over in silence."""

from __future__ import annotations

import warnings

import torch

from napari_medsynth.core.networks import devices
from napari_medsynth.core.networks.devices import resolve_device, unused_gpu_hint


def test_auto_runs_on_the_cpu_here_and_says_nothing_without_an_nvidia_driver(tmp_path):
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    no_driver = tmp_path / "no-nvidia-driver"
    if not devices.shutil.which("nvidia-smi"):
        assert unused_gpu_hint(no_driver) is None


def test_a_cpu_only_torch_beside_an_nvidia_driver_gets_a_one_line_hint(tmp_path):
    """The driver's GPU list (/proc/driver/nvidia/gpus on Linux) exists: the hint names torch's build."""
    gpu_list = tmp_path / "gpus"
    (gpu_list / "0000:01:00.0").mkdir(parents=True)
    hint = unused_gpu_hint(gpu_list)
    if torch.version.cuda is None:  # the CPU build this project's CI installs
        assert hint.startswith("this machine has an NVIDIA GPU, but torch ") and "CPU-only build" in hint
        assert "\n" not in hint and torch.__version__ in hint
    else:
        assert hint is None


def test_the_hint_is_a_warning_once_per_process_when_auto_falls_back_to_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "NVIDIA_GPU_LIST", tmp_path)  # a folder where the driver's GPU list would be
    devices._warn_once_of_an_unused_gpu.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            resolve_device("auto")
    expected = 0 if torch.cuda.is_available() or torch.version.cuda is not None else 1
    assert len([w for w in caught if "NVIDIA GPU" in str(w.message)]) == expected
    devices._warn_once_of_an_unused_gpu.cache_clear()
