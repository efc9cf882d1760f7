"""napari-medsynth: MRI contrast synthesis (T2 <-> PD) with a 3D conditional GAN.

The public API imports neither Qt nor napari, and loads torch only when first used,
so that napari's start-up does not pay for it::

    from napari_medsynth import SynthesisOptions, load_volume, save_result, synthesize

    source = load_volume("IXI002-Guys-0828-T2.nii.gz")
    result = synthesize(source, "t2-pd-G4/best.pt", SynthesisOptions(stride=16))
    result.save(source, "IXI002-PD_synth.nii.gz")
"""

from __future__ import annotations

import importlib

from .core.version import __version__

_PUBLIC = {
    "synthesize": "napari_medsynth.core.synthesis.pipeline",
    "SynthesisResult": "napari_medsynth.core.synthesis.pipeline",
    "SynthesisOptions": "napari_medsynth.core.synthesis.options",
    "Figures": "napari_medsynth.core.evaluation.figures",
    "Provenance": "napari_medsynth.core.files.results",
    "save_result": "napari_medsynth.core.files.results",
    "load_volume": "napari_medsynth.core.files.nifti",
    "save_volume": "napari_medsynth.core.files.nifti",
    "Volume": "napari_medsynth.core.files.nifti",
    "load_checkpoint": "napari_medsynth.core.networks.checkpoint",
    "save_checkpoint": "napari_medsynth.core.networks.checkpoint",
    "bundled_generators": "napari_medsynth.core.synthesis.catalog",
    "default_generator": "napari_medsynth.core.synthesis.catalog",
    "export_generator": "napari_medsynth.core.networks.export",
    "reconstruct_volume": "napari_medsynth.core.synthesis.reconstruct",
    "Generator": "napari_medsynth.core.networks.models",
    "Discriminator": "napari_medsynth.core.networks.models",
    "Direction": "napari_medsynth.core.choices",
    "Grid": "napari_medsynth.core.choices",
    "Engine": "napari_medsynth.core.choices",
    "MedSynthError": "napari_medsynth.core.errors",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'napari_medsynth' has no attribute {name!r}")
