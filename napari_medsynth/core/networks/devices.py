"""Choosing where torch runs."""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from ..errors import MedSynthError

__all__ = ["TorchrunRank", "resolve_device", "unused_gpu_hint"]

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


@dataclass(frozen=True)
class TorchrunRank:
    """This process's place under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); alone, rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls):
        """The place that ``torchrun`` put in the environment."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Several processes: a process group to join."""
        return self.world_size > 1

    def device(self, device: str) -> torch.device:
        """``device`` resolved; ``"auto"`` under ``torchrun`` is this rank's GPU (``LOCAL_RANK``
        modulo the GPUs), or the CPU when torch sees no GPU."""
        if self.active and device == "auto":
            device = f"cuda:{self.local_rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
        return resolve_device(device)
