"""Self-describing generator checkpoints.

A checkpoint is one ``torch.save`` file holding a plain dictionary: the generator's
weights and everything needed to use them (architecture, direction, variant, patch size,
preprocessing, the training targets' intensity scale, provenance) plus a format
version. It loads with ``torch.load(weights_only=True)``, so opening a file never runs
code from it. Training checkpoints add their own keys (optimizers, discriminator, RNG
states) to the same dictionary; :func:`load_checkpoint` reads the generator part.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..choices import Direction, Variant, direction_label, parse_direction, run_label
from ..errors import MedSynthError
from ..files.atomic import atomic_output
from ..preprocessing.preprocess import KEEP_EVERY, KEEP_OFFSET, RESAMPLED_SHAPE, Standardization
from .exported import ExportedGenerator, is_exported, read_exported, sidecar_path
from .models import Generator

__all__ = [
    "RECORD_VERSION",
    "CheckpointInfo",
    "LoadedCheckpoint",
    "TrainingRecord",
    "checkpoint_info",
    "checkpoint_payload",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "write_atomically",
]

FORMAT = "napari-medsynth-generator"
FORMAT_VERSION = 1
RECORD_VERSION = 1  # of TrainingRecord, in a provenance dict under _RECORD_VERSION_KEY (none: an older file)
_RECORD_VERSION_KEY = "record_version"
ARCHITECTURE = "nie2018-dilated-generator"


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint says of how its generator was made (its ``provenance``), typed: the trainer
    writes it, the catalog, the exporter, the demo and ``reproduce`` read it. Every field may be missing
    in an older file; keys this version does not know are kept in ``other``.
    """

    trained_on: str | None = None  # in words ("the synthetic phantom ...")
    data_set: str | None = None  # the data folder
    train_subjects: int | None = None
    target_intensity: dict | None = None  # the training targets' typical {"mean", "std"}
    init: str | None = None  # the checkpoint it started from
    command: str | None = None  # the command (or recipe) that made it
    torch: str | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    val_mae: float | None = None
    val_psnr: float | None = None
    val_ssim: float | None = None
    training_hours: float | None = None
    test: dict = field(default_factory=dict)  # held-out figures: {"subjects", "stride", "grid", scope: {...}}
    other: dict = field(default_factory=dict)
    version: int = RECORD_VERSION

    @classmethod
    def from_dict(cls, provenance: dict | None) -> TrainingRecord:
        """The record of a checkpoint's ``provenance`` dict (of any version)."""
        known = {f.name for f in fields(cls)} - {"other", "version"}
        provenance = dict(provenance or {})
        provenance.pop(_RECORD_VERSION_KEY, None)
        return cls(**{k: v for k, v in provenance.items() if k in known},
                   other={k: v for k, v in provenance.items() if k not in known})

    def as_dict(self) -> dict:
        """The ``provenance`` dict a checkpoint holds (plain types; missing fields left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("other", "version")}
        return {_RECORD_VERSION_KEY: self.version, **self.other,
                **{k: v for k, v in values.items() if v is not None and v != {}}}

    @property
    def origin(self) -> str:
        """What it was trained on, in words, for a user: ``trained_on``, else the data folder."""
        return str(self.trained_on or self.data_set or "not recorded")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its generator."""

    direction: str
    variant: str
    width: float
    residual: bool
    patch: int = 32
    preprocessing: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    path: Path | None = field(default=None, compare=False)  # the file it was read from

    @property
    def source_contrast(self) -> str:
        """``"T2"`` or ``"PD"``."""
        return Direction(self.direction).contrasts[0]

    @property
    def target_contrast(self) -> str:
        """``"PD"`` or ``"T2"``."""
        return Direction(self.direction).contrasts[1]

    @property
    def label(self) -> str:
        """Short name such as ``"G4+RL"`` (RL: residual learning)."""
        return run_label(self.variant, self.residual)

    @property
    def training(self) -> TrainingRecord:
        """The typed record of its ``provenance``."""
        return TrainingRecord.from_dict(self.provenance)

    @property
    def target_intensity(self) -> Standardization | None:
        """Typical mean and std of the training targets, to turn a synthesis into intensities."""
        stats = self.training.target_intensity
        return Standardization(float(stats["mean"]), float(stats["std"])) if stats else None


def checkpoint_payload(generator: nn.Module, *, direction: str, variant: str, **provenance) -> dict:
    """The dictionary a checkpoint file holds (weights on the CPU, plain types only).

    ``provenance`` takes plain values (numbers, strings, lists, dicts): for example
    ``data_set``, ``epochs``, ``best_epoch``, ``val_mae``, ``val_psnr``, and
    ``target_intensity={"mean": ..., "std": ...}``, the training targets' typical scale.
    """
    generator = getattr(generator, "module", generator)  # unwrap DistributedDataParallel
    if not isinstance(generator, Generator):
        raise TypeError(f"expected a Generator, got {type(generator).__name__}")
    variant = str(variant).upper()
    if variant not in tuple(Variant):
        raise MedSynthError(f"unknown variant {variant!r}; use one of {', '.join(Variant)}")
    patch = int(provenance.pop("patch", 32))
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {"name": ARCHITECTURE, "width": generator.width, "residual": generator.residual},
        "direction": parse_direction(direction).value,
        "variant": variant,
        "patch": patch,
        "preprocessing": {
            "resampled_shape": list(RESAMPLED_SHAPE),
            "keep_every": KEEP_EVERY,
            "keep_offset": KEEP_OFFSET,
            "standardization": "per-volume zero mean, unit std",
        },
        "provenance": _plain(provenance),
        "generator": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()},
    }


def write_atomically(path: str | os.PathLike, payload: dict) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename into place.

    Raises
    ------
    MedSynthError
        The folder cannot be created or written.
    """
    path = Path(path)
    # through a Python file object, so that a full disk raises OSError (torch's own writer
    # reports it as an obscure RuntimeError)
    with atomic_output(path) as tmp_name, open(tmp_name, "wb") as handle:
        torch.save(payload, handle)
    return path


def save_checkpoint(path, generator: nn.Module, *, direction: str, variant: str, **provenance) -> Path:
    """Write a self-describing generator checkpoint atomically (see :func:`checkpoint_payload`)."""
    return write_atomically(path, checkpoint_payload(generator, direction=direction, variant=variant, **provenance))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dictionary, loaded with ``weights_only=True`` onto the CPU.

    Raises
    ------
    MedSynthError
        Missing, truncated, not a torch file, not ours, or of a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise MedSynthError(f"{path.name}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a broken file
        if "Unsupported global" in str(error):
            raise MedSynthError(f"{path.name}: refused: it holds Python objects that would run code when loaded; "
                                "a generator checkpoint holds only tensors and numbers") from error
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        # torch wraps any unpickling failure in a long paragraph about weights_only: leave it out
        detail = "" if reason.startswith("Weights only load failed") else f" ({reason})"
        raise MedSynthError(f"{path.name}: not a readable checkpoint, truncated or not a torch file{detail}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MedSynthError(f"{path.name}: not a napari-medsynth generator checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise MedSynthError(
            f"{path.name}: checkpoint format {payload['format_version']} is newer than this "
            f"napari-medsynth reads ({FORMAT_VERSION}); update napari-medsynth"
        )
    return payload


def checkpoint_info(payload: dict, name: str = "checkpoint") -> CheckpointInfo:
    """What a raw checkpoint dictionary (:func:`read_checkpoint`) says about its generator.

    Raises
    ------
    MedSynthError
        The weights are of another model than the study's generator.
    """
    architecture = payload.get("architecture", {})
    if architecture.get("name") != ARCHITECTURE:
        raise MedSynthError(f"{name}: holds a {architecture.get('name', 'unknown')!r} model, not the study's generator")
    return CheckpointInfo(
        direction=payload["direction"],
        variant=payload["variant"],
        width=float(architecture["width"]),
        residual=bool(architecture["residual"]),
        patch=int(payload.get("patch", 32)),
        preprocessing=dict(payload.get("preprocessing", {})),
        provenance=dict(payload.get("provenance", {})),
        format_version=int(payload["format_version"]),
    )


class LoadedCheckpoint(NamedTuple):
    """A generator read from its file: the network (in eval mode, on the CPU) and what the file says."""

    network: Generator | ExportedGenerator
    info: CheckpointInfo


def load_checkpoint(path: str | os.PathLike, direction: str | None = None) -> LoadedCheckpoint:
    """The generator of a checkpoint, in eval mode on the CPU, and what the file says about it.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save_checkpoint` or by training (``last.pt``, ``best.pt``); or
        a ``.ts`` or ``.onnx`` file written by ``medsynth export`` with its sidecar JSON, which
        comes back as the plain callable the synthesis runs as it is
        (:func:`~napari_medsynth.core.networks.exported.read_exported`).
    direction : str, optional
        ``"t2-pd"`` or ``"pd-t2"``: refuse a generator of the other direction.

    Raises
    ------
    MedSynthError
        Unreadable file, weights of another architecture, or the other direction.
    """
    name = Path(path).name
    if is_exported(path):
        exported, sidecar = read_exported(path)
        try:
            info = checkpoint_info(sidecar, sidecar_path(path).name)
        except (KeyError, TypeError, ValueError) as error:
            raise MedSynthError(f"{sidecar_path(path).name}: incomplete or malformed sidecar ({error!r})") from error
        _refuse_other_direction(info, direction, name)
        return LoadedCheckpoint(exported, replace(info, path=Path(path)))
    payload = read_checkpoint(path)
    info = replace(checkpoint_info(payload, name), path=Path(path))
    _refuse_other_direction(info, direction, name)
    generator = Generator(residual=info.residual, width=info.width)
    try:
        generator.load_state_dict(payload["generator"])
    except (RuntimeError, KeyError) as error:
        first = str(error).splitlines()
        detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
        raise MedSynthError(
            f"{name}: the weights do not fit the width-{info.width:g} generator it describes ({detail})"
        ) from error
    return LoadedCheckpoint(generator.eval(), info)


def _refuse_other_direction(info: CheckpointInfo, direction: str | None, name: str) -> None:
    if direction is not None and parse_direction(direction) != info.direction:
        raise MedSynthError(
            f"{name}: a {direction_label(info.direction)} generator, but {direction_label(direction)} was asked for"
        )


def _plain(value):
    """``value`` with numpy scalars turned into Python ones; refuses anything else unplain."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)  # plain str: subclasses such as torch's TorchVersion do not unpickle safely
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if torch.is_tensor(value):
        return value.detach().cpu()
    raise TypeError(f"checkpoint provenance must hold plain values, got {type(value).__name__}")
