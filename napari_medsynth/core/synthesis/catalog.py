"""Where generators come from: the bundled demo checkpoints and the best.pt of training runs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..choices import Direction, direction_label, parse_direction
from ..errors import MedSynthError
from ..evaluation.baselines import QuantileIntensityMapping
from ..networks.checkpoint import CheckpointInfo, checkpoint_info, read_checkpoint

__all__ = [
    "BUNDLED_DIR",
    "GeneratorEntry",
    "bundled_generators",
    "bundled_mapping",
    "default_generator",
    "describe",
    "find_generators",
    "read_generator_entry",
    "resolve_generator",
    "source_direction",
]

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "data" / "generators"
DEFAULT_DEMO = "pd-t2-G4+RL.pt"  # the demo generator that beats both baselines on held-out phantoms
MAPPING_FILE = "intensity-mapping.json"


@dataclass(frozen=True)
class GeneratorEntry:
    """A generator checkpoint on disk and what it says about itself.

    Attributes
    ----------
    path : Path
        The checkpoint file.
    info : CheckpointInfo
        Direction, variant, residual, width and provenance.
    origin : str
        ``"bundled"`` for the package's demo generators, else ``"run"``.
    """

    path: Path
    info: CheckpointInfo
    origin: str

    @property
    def title(self) -> str:
        """What a list shows: ``"G4+RL  demo, trained on the phantom"`` or ``"G3  runs/t2-pd-G3/best.pt"``."""
        if self.origin == "bundled":
            return f"{self.info.label}  demo, trained on the phantom"
        return f"{self.info.label}  {self.path.parent.name}/{self.path.name}"


def read_generator_entry(path: str | os.PathLike, origin: str = "file") -> GeneratorEntry:
    """The entry of one checkpoint file.

    Raises
    ------
    MedSynthError
        Not a readable checkpoint of the study's generator.
    """
    path = Path(path)
    stat = path.stat() if path.is_file() else None
    return _cached_entry(path, origin, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@lru_cache(maxsize=256)
def _cached_entry(path: Path, origin: str, mtime_ns: int, size: int) -> GeneratorEntry:
    """Read once per file version: the lists are rebuilt whenever napari's layers change."""
    return GeneratorEntry(path, checkpoint_info(read_checkpoint(path), path.name), origin)


def _entry(path: Path, origin: str) -> GeneratorEntry | None:
    try:
        return read_generator_entry(path, origin)
    except (MedSynthError, OSError, KeyError, TypeError, ValueError):
        return None  # a broken or foreign file is left out of the list, not an error


def bundled_generators(direction: str | None = None) -> list[GeneratorEntry]:
    """The demo generators shipped in the package, optionally of one direction, by variant."""
    return find_generators(BUNDLED_DIR, direction, pattern="*.pt", origin="bundled")


def default_generator(direction: str | None = None) -> GeneratorEntry | None:
    """The bundled demo generator the demo and the synthesis widget start with: the demo's
    (PD->T2 G4+RL) unless ``direction`` excludes it, then that direction's last by variant."""
    entries = bundled_generators(direction)
    preferred = [e for e in entries if e.path.name == DEFAULT_DEMO]
    return (preferred or entries[-1:] or [None])[0]


def resolve_generator(text: str | os.PathLike, direction: str | None = None, *, source=None) -> Path:
    """The checkpoint file ``text`` names, as ``--checkpoint`` and the dock take it: a file (as it is);
    a bundled generator's file name or stem (``t2-pd-G4+RL``); or a bundled generator's variant label,
    the name the dock lists it by (``G4+RL``), of ``direction``. Without ``direction``, a label of both
    directions takes the direction of ``source`` (a Volume or its file, :func:`source_direction`).

    Raises
    ------
    MedSynthError
        Neither a file nor a bundled name, or a label of both directions and nothing to choose by:
        one line that names ``text`` as given.
    """
    given = os.fspath(text)
    if Path(given).is_file():
        return Path(given)
    entries = [e for d in Direction for e in bundled_generators(d)]
    wanted = given.strip().casefold().removesuffix(".pt")
    for entry in entries:
        if entry.path.stem.casefold() == wanted:
            return entry.path
    labelled = [e for e in entries if e.info.label.casefold() == wanted]
    if not labelled:
        raise MedSynthError(f"{given}: no such checkpoint file or bundled generator name (the bundled ones: "
                            + ", ".join(e.path.stem for e in entries) + ", or their variant labels)")
    if direction is None and source is not None and len(labelled) > 1:
        direction = source_direction(source)
    if direction is not None:
        direction = parse_direction(direction)
        chosen = [e for e in labelled if e.info.direction == direction]
        if not chosen:
            ones = ", ".join(e.info.label for e in entries if e.info.direction == direction)
            raise MedSynthError(f"{given}: no bundled {direction_label(direction)} generator of that name "
                                f"(the bundled {direction_label(direction)} ones: {ones})")
        labelled = chosen
    if len(labelled) > 1:
        raise MedSynthError(f"{given}: a bundled generator of each direction; name one: "
                            + " or ".join(e.path.stem for e in labelled))
    return labelled[0].path


def source_direction(source) -> str | None:
    """``"t2-pd"`` or ``"pd-t2"``: the direction whose source is ``source`` (a Volume or its file) by
    the contrast its file's name says (IXI, BIDS, a T2/PD token), else by its intensities; None when
    neither tells T2 from PD."""
    from ..evaluation.contrast import guess_contrast
    from ..files.nifti import Volume, load_volume
    from ..files.scans import scan_name

    path = source.path if isinstance(source, Volume) else Path(source)
    contrast = scan_name(path).contrast if path is not None else None
    if contrast not in ("T2", "PD"):
        contrast = guess_contrast(source if isinstance(source, Volume) else load_volume(path))
    return {"T2": "t2-pd", "PD": "pd-t2"}.get(contrast)


def bundled_mapping(direction: str) -> QuantileIntensityMapping:
    """The per-voxel intensity-mapping baseline fitted on the demo generators' training subjects.

    Raises
    ------
    MedSynthError
        The package holds no mapping for ``direction``.
    """
    path = BUNDLED_DIR / MAPPING_FILE
    try:
        state = json.loads(path.read_text())[parse_direction(direction)]["mapping"]
    except (OSError, ValueError, KeyError) as error:
        raise MedSynthError(f"no bundled intensity mapping for {direction} in {path} ({error})") from error
    return QuantileIntensityMapping.from_dict(state)


def find_generators(
    folder: str | os.PathLike | None,
    direction: str | None = None,
    *,
    pattern: str = "best.pt",
    origin: str = "run",
) -> list[GeneratorEntry]:
    """Readable generator checkpoints named ``pattern`` under ``folder`` (recursively).

    Parameters
    ----------
    folder : path-like or None
        A training runs folder; None or a missing folder gives an empty list.
    direction : str, optional
        Keep only ``"t2-pd"`` or ``"pd-t2"`` generators.

    Returns
    -------
    list of GeneratorEntry
        Sorted by variant, then residual, then path.
    """
    if folder is None or not Path(folder).is_dir():
        return []
    wanted = parse_direction(direction) if direction else None
    entries = [e for e in (_entry(p, origin) for p in sorted(Path(folder).rglob(pattern))) if e is not None]
    entries = [e for e in entries if wanted is None or e.info.direction == wanted]
    return sorted(entries, key=lambda e: (e.info.variant, e.info.residual, str(e.path)))


def describe(entry: GeneratorEntry) -> str:
    """One line about a generator for tooltips and the CLI."""
    info, record = entry.info, entry.info.training
    parts = [f"{direction_label(info.direction)} {info.label}", f"width {info.width:g}"]
    if record.best_epoch:
        parts.append(f"best epoch {record.best_epoch}")
    if record.val_psnr is not None:
        parts.append(f"validation PSNR {float(record.val_psnr):.2f} dB")
    held_out = record.test
    if isinstance(held_out.get("source"), dict) and held_out["source"].get("psnr") is not None:
        parts.append(f"held-out PSNR {float(held_out['source']['psnr']):.2f} dB on the source grid "
                     f"({len(held_out.get('subjects', []))} subjects)")
    if record.trained_on:
        parts.append(f"trained on {record.trained_on}")
    return ", ".join(parts) + f" ({entry.path})"
