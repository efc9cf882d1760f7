"""Exported generators read back: a ``.ts`` or ``.onnx`` file written by ``medsynth export``
(:mod:`napari_medsynth.core.networks.export`) and its sidecar ``<file>.json``, as the plain callable that
:func:`~napari_medsynth.core.synthesis.reconstruct.reconstruct_volume` runs. A file is taken only when it
is the model its sidecar describes (SHA-256) and maps a small batch to its own shape.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..errors import MedSynthError
from ..files.atomic import file_sha256

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "SIDECAR_FORMAT", "SIDECAR_VERSION", "SUFFIXES", "ExportedGenerator",
           "first_line", "is_exported", "quiet_torch_deprecations", "read_exported", "sidecar_path"]

SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
INPUT_NAME, OUTPUT_NAME = "source", "synthesis"
SIDECAR_FORMAT = "napari-medsynth-exported-generator"
SIDECAR_VERSION = 1
_PROBE_SHAPE = (2, 1, 5, 6, 7)  # what a loaded model must map to its own shape


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of an exported model file: ``model.ts`` -> ``model.ts.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def is_exported(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (``.ts`` or ``.onnx``) rather than a checkpoint."""
    return Path(path).suffix.lower() in SUFFIXES.values()


def read_exported(path: str | os.PathLike) -> tuple[ExportedGenerator, dict]:
    """An exported ``.ts`` or ``.onnx`` generator as a callable ``(B, 1, Z, Y, X) -> (B, 1, Z, Y, X)``
    tensor map on the input's device, and its sidecar (what the checkpoint said about it:
    :func:`~napari_medsynth.core.networks.checkpoint.load_checkpoint` reads that as it reads a checkpoint).

    Raises
    ------
    MedSynthError
        No sidecar or an unreadable one, a model file that is not the one its sidecar describes
        (another model, truncated, changed), a file its runtime cannot load or that does not map
        a small batch to its own shape, or ``onnxruntime`` not installed for an ``.onnx`` file.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise MedSynthError(f"{name}: no such model file")
    sidecar_file = sidecar_path(path)
    try:
        sidecar = json.loads(sidecar_file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MedSynthError(f"{name}: no sidecar {sidecar_file.name} beside it (medsynth export writes one with "
                            "the direction, preprocessing and intensities)") from error
    except (OSError, ValueError) as error:
        raise MedSynthError(f"{sidecar_file.name}: not a readable sidecar ({error})") from error
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise MedSynthError(f"{sidecar_file.name}: not a napari-medsynth export sidecar")
    try:
        newer = int(sidecar["format_version"]) > SIDECAR_VERSION
        model = sidecar["model"]
        model_format, digest = model["format"], model["sha256"]
        radius = int(sidecar["receptive_radius"])
    except (KeyError, TypeError, ValueError) as error:
        raise MedSynthError(f"{sidecar_file.name}: incomplete or malformed sidecar ({error!r})") from error
    if newer:
        raise MedSynthError(f"{sidecar_file.name}: export format {sidecar['format_version']} is newer than this "
                            f"napari-medsynth reads ({SIDECAR_VERSION}); update napari-medsynth")
    if file_sha256(path) != digest:
        raise MedSynthError(f"{name}: not the model its sidecar {sidecar_file.name} describes (SHA-256 differs): "
                            "truncated, changed or another model; export it again")
    expected = SUFFIXES.get(model_format)
    if path.suffix.lower() != expected:
        raise MedSynthError(f"{name}: its sidecar describes a {model_format} model, which ends in {expected}")
    generator = ExportedGenerator(path, model_format,
                                  _TorchScriptRunner(path) if model_format == "torchscript" else _OnnxRunner(path),
                                  radius)
    _check_runs(generator)
    return generator, sidecar


def _check_runs(generator: ExportedGenerator) -> None:
    """Refuse a model that fails on, or changes the shape of, a small odd-sized batch (a generator keeps it).

    Raises
    ------
    MedSynthError
        It fails or returns another shape.
    """
    probe = torch.zeros(_PROBE_SHAPE)
    try:
        with torch.inference_mode():
            shape = tuple(generator(probe).shape)
    except Exception as error:  # whatever the runtime raises for a model of another kind
        lines = [line for line in str(error).splitlines() if line.strip()]  # TorchScript's reason comes last
        detail = lines[-1].strip() if lines else type(error).__name__
        raise MedSynthError(f"{generator.path.name}: does not run as a generator ({detail})") from error
    if shape != _PROBE_SHAPE:
        raise MedSynthError(f"{generator.path.name}: maps {_PROBE_SHAPE} to {shape}; a generator keeps the shape")


class ExportedGenerator:
    """An exported generator as the synthesis calls one: a ``(B, 1, Z, Y, X)`` float32 tensor in,
    the synthesis of the same shape out, on the input's device. Not an ``nn.Module``: the
    pipeline runs it as it is (its BatchNorm is already folded, its convolutions are fixed).

    Attributes
    ----------
    path : Path
        The model file.
    model_format : str
        ``"torchscript"`` or ``"onnx"``.
    receptive_radius : int
        Voxels each output sees on either side (the sidecar's): the halo a tiled preview needs.
    """

    def __init__(self, path: Path, model_format: str, runner, receptive_radius: int):
        self.path, self.model_format, self._runner = path, model_format, runner
        self.receptive_radius = receptive_radius

    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        return self._runner(source)

    def __repr__(self) -> str:
        return f"ExportedGenerator({self.model_format}: {self.path.name})"


class _TorchScriptRunner:
    """A TorchScript generator, moved to the input's device at the first call there."""

    def __init__(self, path: Path):
        try:
            with quiet_torch_deprecations():
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as error:  # torch raises RuntimeError, ValueError ... for a file it cannot read
            raise MedSynthError(f"{path.name}: not a loadable TorchScript file ({first_line(error)})") from error
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.device = torch.device("cpu")

    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        if source.device != self.device:
            with torch.inference_mode(False):  # parameters stay normal tensors whatever mode calls first
                self.module = self.module.to(source.device)
            self.device = source.device
        return self.module(source.float())


class _OnnxRunner:
    """An ONNX Runtime session (CUDA when that runtime has it, else the CPU); tensors pass through NumPy."""

    def __init__(self, path: Path):
        try:
            import onnxruntime
        except ImportError as error:
            raise MedSynthError(f"{path.name}: running ONNX needs onnxruntime "
                                "(pip install 'napari-medsynth[export]')") from error
        available = onnxruntime.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime's own exception types for a malformed model
            raise MedSynthError(f"{path.name}: not a loadable ONNX model ({first_line(error)})") from error

    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(source.detach().float().cpu().numpy())
        (output,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(output).to(source.device)


@contextmanager
def quiet_torch_deprecations():
    """Without torch's deprecation notices of TorchScript and its TorchScript-based ONNX exporter (both
    still supported by torch 2.13; the block holds only torch's own calls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
