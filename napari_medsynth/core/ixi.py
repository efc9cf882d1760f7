"""Finding IXI T2/PD pairs in a folder.

IXI names its files ``IXI<nnn>-<Site>-<nnnn>-<Contrast>.nii.gz`` (for example
``IXI002-Guys-0828-T2.nii.gz``) and ships each contrast as its own archive, so a
data folder is either flat or holds ``T2/`` and ``PD/`` sub-folders (any
sub-folder one level down is searched).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MedSynthError

__all__ = ["CONTRASTS", "IXIPair", "PairScan", "find_ixi_pairs", "ixi_name", "partner_path"]

CONTRASTS = ("T2", "PD")
_IXI_NAME = re.compile(
    r"^(?P<subject>IXI\d{3}-[A-Za-z]+-\d{4})-(?P<contrast>T2|PD)\.nii(?:\.gz)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class IXIPair:
    """The two files of one subject."""

    subject: str
    t2: Path
    pd: Path

    def path(self, contrast: str) -> Path:
        """The file of ``contrast`` (``"T2"`` or ``"PD"``)."""
        return self.t2 if contrast.upper() == "T2" else self.pd


@dataclass(frozen=True)
class PairScan:
    """What a folder holds: complete pairs, and files whose partner is missing or doubled."""

    folder: Path
    pairs: list[IXIPair] = field(default_factory=list)
    unpaired: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a status bar or a log."""
        text = f"{len(self.pairs)} T2/PD pairs in {self.folder}"
        if self.unpaired:
            text += f"; {len(self.unpaired)} files without a partner"
        if self.duplicates:
            text += f"; {len(self.duplicates)} duplicate files ignored"
        return text


def ixi_name(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(subject, contrast)`` of an IXI T2/PD file name, or None for any other name."""
    match = _IXI_NAME.match(Path(path).name)
    if match is None:
        return None
    return match["subject"], match["contrast"].upper()


def partner_path(path: str | os.PathLike) -> Path | None:
    """The other contrast's file beside ``path`` (or in the sibling T2/PD folder), if it exists."""
    path = Path(path)
    parsed = ixi_name(path)
    if parsed is None:
        return None
    subject, contrast = parsed
    other = "PD" if contrast == "T2" else "T2"
    for folder in (path.parent, path.parent.parent / other):
        for suffix in (".nii.gz", ".nii"):
            candidate = folder / f"{subject}-{other}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def find_ixi_pairs(folder: str | os.PathLike) -> PairScan:
    """Scan ``folder`` and its immediate sub-folders for IXI T2/PD files.

    Raises
    ------
    MedSynthError
        ``folder`` is not a readable folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSynthError(f"{folder}: no such folder")
    found: dict[str, dict[str, list[Path]]] = {}
    try:
        candidates = list(folder.iterdir())
        for sub in sorted(p for p in candidates if p.is_dir()):
            candidates.extend(sub.iterdir())
    except OSError as error:
        raise MedSynthError(f"{folder}: cannot read the folder ({error.strerror})") from error
    for path in sorted(candidates):
        parsed = ixi_name(path)
        if parsed is None or not path.is_file():
            continue
        subject, contrast = parsed
        found.setdefault(subject, {}).setdefault(contrast, []).append(path)
    pairs, unpaired, duplicates = [], [], []
    for subject in sorted(found):
        files = found[subject]
        for paths in files.values():
            duplicates.extend(paths[1:])
        if set(files) == set(CONTRASTS):
            pairs.append(IXIPair(subject, files["T2"][0], files["PD"][0]))
        else:
            unpaired.extend(paths[0] for paths in files.values())
    return PairScan(folder, pairs, unpaired, duplicates)
