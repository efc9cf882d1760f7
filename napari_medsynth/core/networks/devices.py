"""Choosing where torch runs."""

from __future__ import annotations

import shutil
import warnings
from functools import cache
from pathlib import Path

import torch

from ..errors import MedSynthError

__all__ = ["resolve_device", "unused_gpu_hint"]

# Where the NVIDIA driver lists the machine's GPUs on Linux; elsewhere, nvidia-smi on PATH tells
NVIDIA_GPU_LIST = Path("/proc/driver/nvidia/gpus")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is the first GPU when torch sees one, else the CPU.

    Raises
    ------
    MedSynthError
        CUDA is asked for but torch sees no GPU (for example a CPU-only build of torch).
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        _warn_once_of_an_unused_gpu()
        return torch.device("cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError as error:
        raise MedSynthError(f"unknown device {device!r}; use auto, cpu or cuda") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise MedSynthError(f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees no GPU")
    return chosen


def unused_gpu_hint(gpu_list: Path | None = None) -> str | None:
    """One line when the machine has an NVIDIA GPU that this torch cannot use (a CPU-only build,
    as a plain ``pip install torch`` gives on Windows), else None. ``gpu_list``: the driver's list
    of GPUs (default :data:`NVIDIA_GPU_LIST`)."""
    gpu_list = NVIDIA_GPU_LIST if gpu_list is None else gpu_list
    if torch.version.cuda is not None or not (gpu_list.is_dir() or shutil.which("nvidia-smi")):
        return None
    return (f"this machine has an NVIDIA GPU, but torch {torch.__version__} is a CPU-only build: "
            "install a CUDA build of torch (pytorch.org, Get Started) to use the GPU")


@cache
def _warn_once_of_an_unused_gpu() -> None:
    hint = unused_gpu_hint()
    if hint is not None:
        warnings.warn(hint, stacklevel=3)
