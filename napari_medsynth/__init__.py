"""napari-medsynth: MRI contrast synthesis (T2 <-> PD) with a 3D conditional GAN.

The public API imports neither Qt nor napari, and loads torch only when first used,
so that napari's start-up does not pay for it::

    from napari_medsynth import Generator, Discriminator, reconstruct_volume
    from napari_medsynth import save_checkpoint, load_checkpoint
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Generator": "napari_medsynth.core.models",
    "Discriminator": "napari_medsynth.core.models",
    "reconstruct_volume": "napari_medsynth.core.reconstruct",
    "save_checkpoint": "napari_medsynth.core.checkpoint",
    "load_checkpoint": "napari_medsynth.core.checkpoint",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'napari_medsynth' has no attribute {name!r}")
