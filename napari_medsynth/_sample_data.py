"""napari sample data: the built-in T2/PD brain phantom."""

from __future__ import annotations

from ._layers import volume_layer

__all__ = ["phantom_pair"]


def phantom_pair() -> list[tuple]:
    """The seed-0 phantom subject as two layers, ``phantom T2`` (on top: the default source) and ``phantom PD``."""
    from ._reader import claim_nifti_files
    from .core.simulation.phantom import sample_pair

    claim_nifti_files()
    t2, pd = sample_pair()
    return [
        volume_layer(pd, name="phantom PD", subject="phantom", contrast="PD"),
        volume_layer(t2, name="phantom T2", subject="phantom", contrast="T2"),
    ]
