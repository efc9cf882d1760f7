"""Writing a synthesis to disk with its provenance: the one writer of the command line, folder
mode, the demo, the widget's Save and napari's File > Save.

A synthesis is written on its source's grid with the source's header when that header places
the voxels by the source's affine (qform and sform and their codes, units), ``descrip`` naming
the generator, ``cal_min`` and ``cal_max`` zeroed (the source's display range is not the
synthesis'), float32; beside it a JSON sidecar holds the :class:`Provenance`. Maps are written
the same way, without a sidecar. Every file is written atomically and never over an input.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import nibabel as nib
import numpy as np

from ..version import __version__
from .atomic import file_sha256, write_json
from .nifti import Volume, save_volume, strip_nifti_suffix

__all__ = ["Provenance", "map_path", "save_map", "save_result", "sidecar_path"]

_DESCRIP_BYTES = 80  # the NIfTI-1 header's descrip field


@dataclass(frozen=True)
class Provenance:
    """Where a synthesis comes from: the sidecar's content and the layer metadata's ``provenance``."""

    checkpoint: str | None
    checkpoint_sha256: str | None
    direction: str
    variant: str
    width: float
    options: dict
    source: str | None = None
    ground_truth: str | None = None
    metrics: dict | None = None
    package_version: str = __version__

    @classmethod
    def of(cls, info, options, *, source=None, ground_truth=None, metrics=None) -> Provenance:
        """The provenance of a synthesis by the generator ``info`` describes (its ``path``, if any)
        with :class:`~napari_medsynth.core.synthesis.options.SynthesisOptions` ``options``."""
        checkpoint = Path(info.path).resolve() if info.path else None
        return cls(checkpoint=str(checkpoint) if checkpoint else None,
                   checkpoint_sha256=_sha256(checkpoint, checkpoint.stat().st_mtime_ns) if checkpoint else None,
                   direction=str(info.direction), variant=info.label, width=float(info.width),
                   options=options.record(), source=_resolved(source), ground_truth=_resolved(ground_truth),
                   metrics=metrics.as_dict() if metrics is not None else None)

    @classmethod
    def from_record(cls, record: dict) -> Provenance:
        """From a sidecar or a layer's ``provenance`` (keys it does not know are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def record(self) -> dict:
        """What JSON holds."""
        return asdict(self)

    def descrip(self, what: str = "") -> bytes:
        """``b"napari-medsynth G4+RL t2-pd-G4/best.pt"`` (and ``what``, a map's name), ASCII, at most 80 bytes."""
        checkpoint = Path(self.checkpoint) if self.checkpoint else None
        generator = (f"{checkpoint.parent.name}/{checkpoint.name}" if checkpoint and checkpoint.parent.name
                     else checkpoint.name if checkpoint else "")
        text = " ".join(part for part in ("napari-medsynth", self.variant, generator, what) if part)
        return text.encode("ascii", "replace")[:_DESCRIP_BYTES]


def _resolved(path) -> str | None:
    return str(Path(path).resolve()) if path else None


@functools.lru_cache(maxsize=16)
def _sha256(path: Path, _mtime_ns: int) -> str:
    return file_sha256(path)


def sidecar_path(out) -> Path:
    """``IXI002-PD_synth.json`` beside ``IXI002-PD_synth.nii.gz``."""
    out = Path(out)
    return out.with_name(strip_nifti_suffix(out.name) + ".json")


def save_result(synthesis: np.ndarray, source: Volume, out, provenance: Provenance, *, maps: dict | None = None,
                maps_folder=None, protect=(), extra: dict | None = None, volume: bool = True) -> list[Path]:
    """Write ``synthesis`` (on ``source``'s grid) to ``out`` with its sidecar (the provenance, and
    ``extra``: a derivative's ``Sources``), and each of ``maps`` (name -> array or None) to
    ``maps_folder`` as ``<out stem>_<name>.nii.gz``. ``volume=False``: ``out`` holds this synthesis
    already (written before its figures were taken): only the sidecar and the maps are written.

    Returns
    -------
    list of Path
        The synthesis first, then its sidecar and the maps.

    Raises
    ------
    MedSynthError
        ``out`` or a map would overwrite ``source``'s file or a ``protect`` path, is not a NIfTI
        name, or its folder cannot be written.
    """
    out = Path(out)
    written = [save_volume(out, synthesis, _like(source, provenance.descrip()), protect=protect) if volume else out]
    sidecar = sidecar_path(out)
    record = {**provenance.record(), "output": out.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {})}
    write_json(sidecar, record)
    written.append(sidecar)
    for name, data in (maps or {}).items():
        if data is not None:
            written.append(save_map(data, name, source, map_path(out, name, maps_folder), provenance, protect=protect))
    return written


def map_path(out, name: str, maps_folder=None) -> Path:
    """Where the map ``name`` of the synthesis ``out`` goes: ``<out stem>_<name>.nii.gz`` in
    ``maps_folder`` (default: beside ``out``)."""
    out = Path(out)
    return Path(maps_folder or out.parent) / f"{strip_nifti_suffix(out.name)}_{name}.nii.gz"


def save_map(data: np.ndarray, name: str, source: Volume, out, provenance: Provenance, *, protect=()) -> Path:
    """Write the map ``name`` (``"squared_error"``...) of a synthesis to ``out``, headed as the synthesis."""
    return save_volume(out, data, _like(source, provenance.descrip(name)), protect=protect)


def _like(source: Volume, descrip: bytes) -> Volume:
    """``source``'s grid with the header a result gets (see the module's docstring)."""
    header = source.header
    if header is None or not np.allclose(header.get_best_affine(), source.affine, atol=1e-6):
        header = nib.Nifti1Header()
        header.set_xyzt_units("mm")
    else:
        header = header.copy()
    header["descrip"] = descrip
    header["cal_min"] = header["cal_max"] = 0.0
    return Volume(source.data, source.affine, header, source.path)
