"""Who and what a scan is, from its file name, and the T2/PD pairs of a folder.

One identity for every file name (:func:`scan_name`):

- IXI: ``IXI002-Guys-0828-T2.nii.gz``: subject ``IXI002-Guys-0828``, contrast ``T2``;
- BIDS: ``sub-01_ses-1_acq-tse_run-2_T2w.nii.gz``: the entities (``sub-01_ses-1_acq-tse_run-2``)
  and the suffix (``T2w``, ``PDw`` or ``PD``, ``T1w``, ``FLAIR``...);
- any other name: its stem without its contrast token (``case7_t2.nii`` -> ``case7``, ``T2``).

A data folder (:func:`find_pairs`) is a BIDS dataset (``sub-*/[ses-*/]anat/*_T2w.nii[.gz]`` beside
the ``*_PDw`` or ``*_PD`` of the same entities; ``derivatives/``, ``sourcedata/`` and dot folders
are not searched), or a folder of IXI- or BIDS-named files, flat or one sub-folder down (IXI ships
``T2/`` and ``PD/``). A small parser, not pybids: it is all a napari plugin needs and adds no
dependency (docs/bids.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedSynthError
from .nifti import is_nifti_path, strip_nifti_suffix

__all__ = [
    "BIDS_SUFFIXES",
    "CONTRASTS",
    "PairScan",
    "ScanName",
    "ScanPair",
    "find_pairs",
    "partner_path",
    "scan_name",
]

CONTRASTS = ("T2", "PD")
# the BIDS suffix of each contrast a synthesis writes; PD-weighted is also read as the older "PD"
BIDS_SUFFIXES = {"T2": "T2w", "PD": "PDw"}
_BIDS_CONTRAST = {"t2w": "T2", "pdw": "PD", "pd": "PD", "t1w": "T1", "flair": "FLAIR", "t2starw": "T2*"}
_IXI_NAME = re.compile(r"^(?P<subject>IXI\d{3}-[A-Za-z]+-\d{4})-(?P<contrast>T1|T2|PD|MRA|DTI-\d+)$",
                       re.IGNORECASE)
_ENTITY = re.compile(r"^(?P<key>[a-zA-Z]+)-(?P<value>[a-zA-Z0-9]+)$")
_SUFFIX = re.compile(r"^[a-zA-Z0-9]+$")
# a contrast as a token of any other file name: T2, t2w, T2-weighted, PD, pdw, T1, FLAIR...
_TOKEN = re.compile(r"(?<![a-z0-9])(t1|t2|pd|flair)(?:w|-?weighted)?(?![a-z0-9])", re.IGNORECASE)
_SKIPPED_FOLDERS = ("derivatives", "sourcedata")


@dataclass(frozen=True)
class ScanName:
    """The identity a file name gives a scan.

    Attributes
    ----------
    scheme : {"ixi", "bids", "other"}
    subject : str
        What pairs a T2 with its PD: ``IXI002-Guys-0828``, ``sub-01_ses-1_run-2`` (the BIDS
        entities), or the stem without its contrast token.
    contrast : str or None
        ``T2``, ``PD``, ``T1``, ``FLAIR``, ... when the name says it.
    entities : tuple of (key, value)
        The BIDS entities in their order (empty for the other schemes).
    suffix : str or None
        The BIDS suffix (``T2w``).
    """

    scheme: str
    subject: str
    contrast: str | None = None
    entities: tuple[tuple[str, str], ...] = ()
    suffix: str | None = None

    @property
    def label(self) -> str:
        """The short name that layer names and suggested file names start with: ``IXI002``,
        ``sub-01_ses-1``, or the subject."""
        return self.subject.split("-")[0] if self.scheme == "ixi" else self.subject

    def entity(self, key: str) -> str | None:
        """The value of BIDS entity ``key`` (``"sub"`` -> ``"01"``), if the name has it."""
        return dict(self.entities).get(key)

    @property
    def participant(self) -> str:
        """Whose scan it is: ``sub-01`` for every session and run of participant 01; the subject otherwise."""
        sub = self.entity("sub")
        return f"sub-{sub}" if sub is not None else self.subject


def scan_name(path: str | os.PathLike) -> ScanName:
    """The :class:`ScanName` of ``path``'s file name (any name has one)."""
    stem = strip_nifti_suffix(Path(path).name)
    match = _IXI_NAME.match(stem)
    if match is not None:
        return ScanName("ixi", match["subject"], match["contrast"].upper())
    parts = stem.split("_")
    entities = [_ENTITY.match(part) for part in parts[:-1]]
    if len(parts) > 1 and all(entities) and entities[0]["key"] == "sub" and _SUFFIX.match(parts[-1]):
        pairs = tuple((m["key"], m["value"]) for m in entities)
        return ScanName("bids", "_".join(parts[:-1]), _BIDS_CONTRAST.get(parts[-1].lower()), pairs, parts[-1])
    tokens = list(_TOKEN.finditer(stem))
    contrasts = {m[1].upper() for m in tokens}
    if len(contrasts) != 1:  # none, or two (a "T1_T2" ratio map): the name does not say
        return ScanName("other", stem)
    token = tokens[-1]
    subject = (stem[: token.start()].rstrip("_-. ") + " " + stem[token.end():].lstrip("_-. ")).strip()
    return ScanName("other", re.sub(r"\s+", "_", subject) or stem, contrasts.pop())


def partner_path(path: str | os.PathLike) -> Path | None:
    """The other of T2 and PD of the same subject beside ``path`` (IXI also in the sibling
    ``T2/``/``PD/`` folder), if that file exists."""
    path = Path(path)
    name = scan_name(path)
    if name.contrast not in CONTRASTS:
        return None
    other = "PD" if name.contrast == "T2" else "T2"
    folders = [path.parent, path.parent.parent / other] if name.scheme == "ixi" else [path.parent]
    for folder in folders:
        if not folder.is_dir():
            continue
        others = [(candidate, found) for candidate in sorted(folder.iterdir())
                  if (found := scan_name(candidate)).contrast == other and found.scheme == name.scheme
                  and is_nifti_path(candidate) and candidate.is_file()]
        exact = [candidate for candidate, found in others if found.subject == name.subject]
        if exact:
            return exact[0]
        if name.scheme == "bids":  # one partner of the same participant and session, whatever its acq-
            session = [candidate for candidate, found in others
                       if (found.entity("sub"), found.entity("ses")) == (name.entity("sub"), name.entity("ses"))]
            if len(session) == 1:
                return session[0]
    return None


@dataclass(frozen=True)
class ScanPair:
    """The T2 and PD files of one subject (one session and run, in BIDS)."""

    subject: str
    t2: Path
    pd: Path

    def path(self, contrast: str) -> Path:
        """The file of ``contrast`` (``"T2"`` or ``"PD"``)."""
        return self.t2 if contrast.upper() == "T2" else self.pd

    @property
    def participant(self) -> str:
        """Whose scans these are (the runs and sessions of one participant share it)."""
        return scan_name(self.t2).participant


@dataclass(frozen=True)
class PairScan:
    """What a folder holds: complete pairs, files without a partner, and files left out.

    Attributes
    ----------
    scheme : {"ixi", "bids", "other"}
        How its files are named (other: a contrast token in any other name, ``case7_t2.nii.gz``).
    dataset : bool
        The folder is a BIDS dataset (``sub-*/...``), not a folder of BIDS-named files.
    ambiguous : list of str
        One line for each subject whose files pair in more than one way.
    """

    folder: Path
    scheme: str = "ixi"
    dataset: bool = False
    pairs: list[ScanPair] = field(default_factory=list)
    unpaired: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a status bar or a log."""
        kind = "BIDS dataset" if self.dataset else "BIDS-named folder" if self.scheme == "bids" else "folder"
        text = f"{len(self.pairs)} T2/PD pairs in the {kind} {self.folder}"
        if self.unpaired:
            text += f"; {len(self.unpaired)} files without a partner"
        if self.duplicates:
            text += f"; {len(self.duplicates)} duplicate files ignored"
        if self.ambiguous:
            text += f"; {len(self.ambiguous)} subjects whose files pair in more than one way"
        return text

    def sources(self, contrast: str) -> list[Path]:
        """Every file of ``contrast``: paired or not, sorted by name."""
        files = [pair.path(contrast) for pair in self.pairs]
        files += [p for p in self.unpaired if scan_name(p).contrast == contrast]
        return sorted(files, key=lambda p: p.name)

    def none_found(self, what: str = "T2/PD pairs") -> str:
        """The line that says the folder holds no ``what``, and how its files must be named."""
        expected = ("sub-<label>[_ses-<label>]..._T2w.nii.gz with its _PDw partner" if self.scheme == "bids"
                    else "IXI###-Site-####-T2.nii.gz with its -PD partner; BIDS: sub-*/anat/sub-*_T2w.nii.gz "
                         "with its _PDw partner; or NAME_T2.nii.gz with NAME_PD.nii.gz")
        return f"{self.folder}: no {what} ({expected})"


def find_pairs(folder: str | os.PathLike) -> PairScan:
    """The T2/PD pairs of a BIDS dataset, or of a folder of IXI- or BIDS-named files (or, when it
    holds neither, of files whose names differ by their contrast token: ``case7_t2``, ``case7_pd``).

    Raises
    ------
    MedSynthError
        ``folder`` is not a readable folder, is a BIDS dataset without ``anat/`` folders, or mixes
        IXI and BIDS names.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSynthError(f"{folder}: no such folder")
    try:
        subjects = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("sub-"))
        dataset = bool(subjects) or (folder / "dataset_description.json").is_file()
        files = _dataset_files(folder, subjects) if dataset else _folder_files(folder)
    except OSError as error:
        raise MedSynthError(f"{folder}: cannot read the folder ({error.strerror})") from error
    named = [(path, scan_name(path)) for path in sorted(files) if is_nifti_path(path)]
    named = [(path, name) for path, name in named if name.contrast in CONTRASTS]
    if any(name.scheme != "other" for _, name in named):  # other names count in a folder of no IXI or BIDS names
        named = [(path, name) for path, name in named if name.scheme != "other"]
    schemes = {name.scheme for _, name in named}
    if len(schemes) > 1:
        ixi = next(path for path, name in named if name.scheme == "ixi")
        bids = next(path for path, name in named if name.scheme == "bids")
        raise MedSynthError(f"{folder} mixes IXI names ({ixi.name}) and BIDS names ({bids.name}): "
                            "keep one naming per folder")
    if dataset and not named and not any(folder.glob("sub-*/anat")) and not any(folder.glob("sub-*/ses-*/anat")):
        raise MedSynthError(f"{folder}: a BIDS dataset without anat/ folders (sub-*/[ses-*/]anat/): "
                            "no anatomical scans to pair")
    scheme = schemes.pop() if schemes else ("bids" if dataset else "ixi")
    return _pair(folder, scheme, dataset, named)


def _dataset_files(folder: Path, subjects: list[Path]) -> list[Path]:
    """``sub-*/anat/*`` and ``sub-*/ses-*/anat/*`` (never ``derivatives/``, ``sourcedata/`` or dot folders)."""
    files = []
    for subject in subjects:
        sessions = [subject, *sorted(p for p in subject.iterdir() if p.is_dir() and p.name.startswith("ses-"))]
        for session in sessions:
            anat = session / "anat"
            if anat.is_dir():
                files += [p for p in anat.iterdir() if p.is_file()]
    return files


def _folder_files(folder: Path) -> list[Path]:
    """The files of ``folder`` and of its sub-folders one level down (not dot folders or BIDS' own)."""
    files = [p for p in folder.iterdir() if p.is_file()]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not sub.name.startswith(".") and sub.name not in _SKIPPED_FOLDERS:
            files += [p for p in sub.iterdir() if p.is_file()]
    return files


def _pair(folder: Path, scheme: str, dataset: bool, named: list[tuple[Path, ScanName]]) -> PairScan:
    """Pair the files by subject; in BIDS, left-over files of one participant and session pair when
    there is exactly one of each contrast (a T2w and a PDw whose acq- differ)."""
    found: dict[str, dict[str, list[Path]]] = {}
    for path, name in named:
        found.setdefault(name.subject, {}).setdefault(name.contrast, []).append(path)
    scan = PairScan(folder, scheme, dataset)
    leftover: dict[tuple, dict[str, list[Path]]] = {}
    for subject in sorted(found):
        files = found[subject]
        for paths in files.values():
            scan.duplicates.extend(paths[1:])
        if set(files) == set(CONTRASTS):
            scan.pairs.append(ScanPair(subject, files["T2"][0], files["PD"][0]))
            continue
        (contrast, paths), = files.items()
        name = scan_name(paths[0])
        key = (name.entity("sub"), name.entity("ses")) if scheme == "bids" else (subject,)
        leftover.setdefault(key, {}).setdefault(contrast, []).append(paths[0])
    for key, files in sorted(leftover.items(), key=lambda item: str(item[0])):
        counts = {contrast: len(paths) for contrast, paths in files.items()}
        if scheme == "bids" and counts == {"T2": 1, "PD": 1}:
            t2, pd = files["T2"][0], files["PD"][0]
            scan.pairs.append(ScanPair(_common_subject(t2, pd), t2, pd))
            continue
        if scheme == "bids" and len(counts) == 2:
            scan.ambiguous.append(
                f"{'_'.join(f'{k}-{v}' for k, v in zip(('sub', 'ses'), key) if v)}: "
                f"{counts['T2']} T2w and {counts['PD']} PDw files whose entities differ: name each pair with "
                "the same run-/acq- entities")
        scan.unpaired.extend(path for paths in files.values() for path in paths)
    scan.pairs.sort(key=lambda pair: pair.subject)
    return scan


def _common_subject(t2: Path, pd: Path) -> str:
    """The entities two BIDS names share, in the T2's order (``sub-01_ses-1``)."""
    shared = set(scan_name(pd).entities)
    return "_".join(f"{k}-{v}" for k, v in scan_name(t2).entities if (k, v) in shared)
