"""Generators that leave the package: TorchScript, ONNX and a MONAI bundle, and loading them back.

:func:`export_generator` writes a checkpoint's generator as it runs at inference: an eval-mode
copy with each BatchNorm folded into its convolution (a bias) and plain ``nn.Conv3d`` layers
whatever :func:`~napari_medsynth.core.networks.fftconv.set_conv_engine` chose, traced on a small input
(the generator is fully convolutional, so the trace holds for any size). One input
``source`` and one output ``synthesis``, both ``(batch, 1, z, y, x)`` float32 in standardized
units, any batch and spatial size.

- ``"torchscript"``: ``OUT.ts`` (``torch.jit.load``, libtorch, 3D Slicer).
- ``"onnx"``: ``OUT.onnx``, opset :data:`ONNX_OPSET`, dynamic batch and spatial axes (ONNX
  Runtime). Written by torch's TorchScript-based exporter (``dynamo=False``): the dynamo
  exporter needs ``onnxscript``, which the ``export`` extra does not install.
- ``"monai-bundle"``: the folder ``OUT`` with ``configs/metadata.json`` (direction, intensities,
  preprocessing), ``configs/inference.json`` (MONAI's ``SlidingWindowInferer``, roi 32, overlap
  0.75: the report's stride-8 plain patch average), ``models/model.ts`` and ``docs/README.md``.

Each model file gets a sidecar ``<file>.json`` (``model.ts.json``, ``model.onnx.json``) holding
what the checkpoint says about the generator (direction, variant, width, residual, patch,
preprocessing, provenance with the targets' intensities), the model file's SHA-256 and where it
came from. :mod:`napari_medsynth.core.networks.exported` reads a ``.ts`` or ``.onnx`` file and its sidecar back as
the plain callable that :func:`~napari_medsynth.core.synthesis.reconstruct.reconstruct_volume` calls, so
:func:`~napari_medsynth.core.networks.checkpoint.load_checkpoint` hands it to the usual synthesis.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..choices import Direction, ExportFormat, direction_label
from ..errors import MedSynthError
from ..files.atomic import atomic_folder, atomic_output, file_sha256, write_json
from ..version import __version__
from .checkpoint import ARCHITECTURE, CheckpointInfo, load_checkpoint
from .exported import (
    INPUT_NAME,
    OUTPUT_NAME,
    SIDECAR_FORMAT,
    SIDECAR_VERSION,
    SUFFIXES,
    is_exported,
    quiet_torch_deprecations,
    sidecar_path,
)
from .fftconv import set_conv_engine
from .inference import fold_batchnorm
from .models import GENERATOR_LAYERS

__all__ = ["ONNX_OPSET", "export_generator", "plain_generator"]

ONNX_OPSET = 17
MONAI_TESTED = "1.6.1"  # the MONAI release the bundle's configs are tested with (tests/test_export.py)
SLIDING_WINDOW_OVERLAP = 0.75  # roi 32, overlap 0.75: MONAI's scan interval int(32 * 0.25) = 8, the report's stride
_TRACE_SHAPE = (1, 1, 8, 8, 8)  # any size traces the same graph: no layer depends on it


def plain_generator(generator: nn.Module) -> nn.Module:
    """An eval-mode copy of ``generator`` as exported: BatchNorm folded into the convolutions
    (:func:`~napari_medsynth.core.networks.inference.fold_batchnorm`), every convolution a plain
    ``nn.Conv3d``, no gradients; ``generator`` itself is left untouched."""
    return set_conv_engine(fold_batchnorm(generator), "direct").requires_grad_(False)


def export_generator(checkpoint: str | os.PathLike, model_format: str, out: str | os.PathLike) -> Path:
    """Write the generator of ``checkpoint`` as ``model_format`` to ``out``; return ``out``.

    Parameters
    ----------
    checkpoint : path-like
        A generator checkpoint (``.pt``: bundled, ``best.pt``, ``last.pt``).
    model_format : {"torchscript", "onnx", "monai-bundle"}
        See the module's description.
    out : path-like
        A ``.ts`` or ``.onnx`` file (its sidecar goes beside it), or the bundle's folder, which
        must not exist or be empty. Everything is written to temporary names and renamed, so a
        failure leaves nothing behind.

    Raises
    ------
    MedSynthError
        An unknown format, an output name of the wrong kind, an unreadable or exported
        ``checkpoint``, ``onnx`` not installed, or an output that cannot be written.
    """
    model_format = ExportFormat.parse(model_format, "export format")
    checkpoint, out = Path(checkpoint), Path(out)
    if is_exported(checkpoint):
        raise MedSynthError(f"{checkpoint.name}: already exported; export from the generator's .pt checkpoint")
    wanted = SUFFIXES.get(model_format)
    if wanted is not None and out.suffix.lower() != wanted:
        raise MedSynthError(f"{out.name}: the name of a {model_format} export must end in {wanted}")
    if wanted is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedSynthError(f"{out}: exists and is not an empty folder; choose a new folder for the bundle")
    generator, info = load_checkpoint(checkpoint)
    plain = plain_generator(generator)
    origin = {"checkpoint": checkpoint.name, "checkpoint_sha256": file_sha256(checkpoint),
              "package_version": __version__, "torch": str(torch.__version__)}
    if model_format == "torchscript":
        _write_model(out, info, origin, lambda name: _save_torchscript(plain, name))
    elif model_format == "onnx":
        _write_model(out, info, origin, lambda name: _save_onnx(plain, name))
    else:
        _write_bundle(out, plain, info, origin)
    return out


# Writing -----------------------------------------------------------------------------------------


def _write_model(out: Path, info: CheckpointInfo, origin: dict, save) -> None:
    """``save(name)`` writes the model to a temporary name; with its sidecar also written, both are
    renamed into place (the sidecar first)."""
    with atomic_output(out) as model_name:
        save(model_name)
        sidecar = _sidecar(info, origin, _model_record(out, model_name))
        write_json(sidecar_path(out), sidecar)


def _model_record(out: Path, written: str) -> dict:
    model_format = next(f for f, suffix in SUFFIXES.items() if out.suffix.lower() == suffix)
    record = {"file": out.name, "format": model_format, "sha256": file_sha256(written),
              "input": INPUT_NAME, "output": OUTPUT_NAME,
              "shape": "(batch, 1, z, y, x), any batch and size; float32, standardized units",
              "batchnorm": "folded into the convolutions"}
    if model_format == "onnx":
        record["opset"] = ONNX_OPSET
    return record


def _sidecar(info: CheckpointInfo, origin: dict, model: dict) -> dict:
    """What the sidecar holds: the checkpoint's description of its generator, the model file and its origin."""
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "architecture": {"name": ARCHITECTURE, "width": info.width, "residual": info.residual},
        "direction": info.direction,
        "variant": info.variant,
        "patch": info.patch,
        "receptive_radius": sum(dilation * (kernel - 1) // 2 for kernel, _, dilation in GENERATOR_LAYERS),
        "preprocessing": info.preprocessing,
        "provenance": _json_ready(info.provenance),
        "model": model,
        "exported_from": origin,
    }


def _save_torchscript(plain: nn.Module, name: str) -> None:
    with quiet_torch_deprecations(), torch.no_grad():
        traced = torch.jit.trace(plain, torch.zeros(_TRACE_SHAPE), check_trace=False)
        torch.jit.save(traced, name)


def _save_onnx(plain: nn.Module, name: str) -> None:
    try:
        import onnx
    except ImportError as error:
        raise MedSynthError("exporting ONNX needs onnx (pip install 'napari-medsynth[export]')") from error
    spatial = {0: "batch", 2: "z", 3: "y", 4: "x"}
    with quiet_torch_deprecations(), torch.no_grad():
        torch.onnx.export(plain, (torch.zeros(_TRACE_SHAPE),), name, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: spatial, OUTPUT_NAME: spatial})
    onnx.checker.check_model(name)


def _write_bundle(out: Path, plain: nn.Module, info: CheckpointInfo, origin: dict) -> None:
    """The bundle's files in a temporary folder beside ``out``, renamed onto it when complete."""
    with atomic_folder(out) as staging:
        for folder in ("configs", "models", "docs"):
            (staging / folder).mkdir()
        model = staging / "models" / "model.ts"
        _save_torchscript(plain, str(model))
        sidecar = _sidecar(info, origin, _model_record(model, str(model)))
        files = {
            "models/model.ts.json": sidecar,
            "configs/metadata.json": _bundle_metadata(info, sidecar),
            "configs/inference.json": _bundle_inference(info),
        }
        for relative, content in files.items():
            (staging / relative).write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
        (staging / "docs" / "README.md").write_text(_bundle_readme(info, origin), encoding="utf-8")


def _bundle_metadata(info: CheckpointInfo, sidecar: dict) -> dict:
    source, target = Direction(info.direction).contrasts
    trained_on = _trained_on(info)

    def tensor(contrast):
        return {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 1,
                "spatial_shape": [info.patch] * 3, "dtype": "float32", "value_range": [],
                "is_patch_data": True, "channel_def": {"0": f"{contrast}-weighted, standardized"}}

    scale = info.target_intensity
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                  "meta_schema_20220324.json",
        "version": "1.0.0",
        "changelog": {"1.0.0": f"exported by napari-medsynth {__version__} from "
                               f"{sidecar['exported_from']['checkpoint']}"},
        "monai_version": MONAI_TESTED,
        "pytorch_version": str(torch.__version__).split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"nibabel": _installed("nibabel")},
        "name": f"napari-medsynth {direction_label(info.direction)} {info.label}",
        "task": f"MRI contrast synthesis: {target}-weighted from {source}-weighted brain MRI",
        "description": (f"The 3D dilated generator of Nie et al. 2018 ({info.label}, width {info.width:g}) "
                        f"synthesizing {target} from {source}. Trained on {trained_on}. Research use only, "
                        "not for diagnosis."),
        "authors": "napari-medsynth",
        "copyright": "BSD-3-Clause (napari-medsynth)",
        "data_source": trained_on,
        "data_type": "nibabel",
        "intended_use": "research only; not for diagnosis" + (
            "; trained on a synthetic phantom: not for real MRI" if _phantom_trained(info) else ""),
        "direction": info.direction,
        "source_contrast": source,
        "target_contrast": target,
        "target_intensity": None if scale is None else {"mean": scale.mean, "std": scale.std},
        "preprocessing": {
            **info.preprocessing,
            "slice_axis": "the voxel axis closest to superior-inferior, moved last (the third axis of IXI files)",
            "grid": "224 x 224 x 32: resampled to 224 x 224 x 96 (linear, anti-aliased), slices 1, 4, ..., 94",
            "sliding_window": {"roi": [info.patch] * 3, "overlap": SLIDING_WINDOW_OVERLAP, "mode": "constant",
                               "stride": int(info.patch * (1 - SLIDING_WINDOW_OVERLAP))},
        },
        "network_data_format": {"inputs": {"image": tensor(source)}, "outputs": {"pred": tensor(target)}},
        "napari_medsynth": sidecar,
    }


def _bundle_inference(info: CheckpointInfo) -> dict:
    """MONAI's config: ``network`` and ``inferer`` for use on a preprocessed volume, and a ``run``
    that reads ``input_file``, approximates the preprocessing with MONAI transforms and writes the
    synthesis on the 224 x 224 x 32 grid into ``output_dir``."""
    target = Direction(info.direction).contrasts[1]
    scale = info.target_intensity
    to_intensity = [{"_target_": "Lambda", "func": f"$lambda x: x * {scale.std!r} + {scale.mean!r}"}] if scale else []
    grid = [224, 224, 96]
    return {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "input_file": "",
        "output_dir": "$@bundle_root + '/eval'",
        "network_def": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location=@device)",
        "network": "$@network_def.eval()",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImage", "image_only": True},
            {"_target_": "EnsureChannelFirst"},
            {"_target_": "Resize", "spatial_size": grid, "mode": "trilinear", "align_corners": False,
             "anti_aliasing": True},
            {"_target_": "Resize", "spatial_size": [224, 224, 32], "mode": "nearest-exact"},
            {"_target_": "NormalizeIntensity"},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [info.patch] * 3, "sw_batch_size": 8,
                    "overlap": SLIDING_WINDOW_OVERLAP, "mode": "constant"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            *to_intensity,
            {"_target_": "SaveImage", "output_dir": "@output_dir", "output_postfix": f"{target}_synth",
             "separate_folder": False, "resample": False},
        ]},
        "run": ["$@postprocessing(@inferer(@preprocessing(@input_file)[None].to(@device), @network)[0].cpu())"],
    }


def _bundle_readme(info: CheckpointInfo, origin: dict) -> str:
    source, target = Direction(info.direction).contrasts
    phantom = _phantom_trained(info)
    limits = ("It was trained on a **synthetic phantom**, not on real MRI: it shows that the pipeline works and "
              "is **not for real MRI**." if phantom else
              "Check it on your own scanner's data before relying on it: a generator does not transfer between "
              "sites, sequences or field strengths unseen in training.")
    scale = info.target_intensity
    intensity = (f"mean {scale.mean:.6g}, std {scale.std:.6g} (the training targets' typical scale)" if scale
                 else "not recorded: the output stays in standardized units")
    return f"""# napari-medsynth {direction_label(info.direction)} {info.label}

{target}-weighted brain MRI synthesized from {source}-weighted MRI by the 3D dilated generator of
Nie et al. 2018 (variant {info.label}, width {info.width:g}), exported by napari-medsynth {__version__}
from `{origin['checkpoint']}` (SHA-256 `{origin['checkpoint_sha256']}`).

**Research use only, not for diagnosis.**

## Training data and limits

Trained on: {_trained_on(info)}. {limits}

## Input and output

- `models/model.ts`: TorchScript, BatchNorm folded. Input `(batch, 1, z, y, x)` float32, the
  standardized {source} volume; output the same shape, the standardized {target} synthesis.
  Fully convolutional: any size runs, the report uses 32^3 patches.
- Preprocessing (`configs/metadata.json`): axial slices along the last axis, resampled to
  224 x 224 x 96 (linear, anti-aliased), slices 1, 4, ..., 94 kept (224 x 224 x 32), standardized
  to zero mean and unit standard deviation.
- Patches: `SlidingWindowInferer` with roi 32 and overlap 0.75 (stride 8), plain average
  (`mode="constant"`), as the report.
- Intensities: the synthesis times the std plus the mean: {intensity}.

## Running it

    python -m monai.bundle run --config_file configs/inference.json --bundle_root . \\
        --input_file IXI002-Guys-0828-{source}.nii.gz

writes `eval/<input>_{target}_synth.nii.gz` on the 224 x 224 x 32 grid. Its `preprocessing`
approximates napari-medsynth's with MONAI transforms (torch's resampling, not SciPy's: close, not
identical); `medsynth synthesize SOURCE --checkpoint models/model.ts --out OUT.nii.gz` runs the
exact pipeline and maps the result back onto the source's own grid.
"""


# Helpers -----------------------------------------------------------------------------------------


def _trained_on(info: CheckpointInfo) -> str:
    return info.training.origin


def _phantom_trained(info: CheckpointInfo) -> bool:
    return "phantom" in _trained_on(info).lower()


def _json_ready(value):
    """``value`` with tensors as lists, so that json can write it."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value.tolist() if torch.is_tensor(value) else value


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"

