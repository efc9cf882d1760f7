"""Choosing where torch runs."""

from __future__ import annotations

import torch

from .errors import MedSynthError

__all__ = ["resolve_device"]


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
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError as error:
        raise MedSynthError(f"unknown device {device!r}; use auto, cpu or cuda") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise MedSynthError(f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees no GPU")
    return chosen
