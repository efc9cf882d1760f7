"""Training data: a seeded subject split, a cache of preprocessed volumes, and 32^3 patches."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from napari_medsynth.core.choices import Direction
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.atomic import atomic_output, write_json
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.files.scans import CONTRASTS, ScanPair, find_pairs
from napari_medsynth.core.preprocessing.patches import patch_grid
from napari_medsynth.core.preprocessing.preprocess import (
    KEEP_EVERY,
    KEEP_OFFSET,
    PREPROCESSED_SHAPE,
    RESAMPLED_SHAPE,
    Standardization,
    check_pair,
    preprocess_volume,
)
from napari_medsynth.core.training.config import REPORT_FRACTIONS, pairing_problem, too_few_subjects

from .randomize import AcquisitionRandomization

__all__ = [
    "PatchDataset",
    "PreprocessedCache",
    "ResumableSampler",
    "SubjectSplit",
    "VolumePair",
    "find_pairs_or_fail",
    "load_volume_pairs",
    "pairs_of",
    "randomized_acquisitions",
]

_PREPROCESSING_KEY = json.dumps([RESAMPLED_SHAPE, KEEP_EVERY, KEEP_OFFSET, "zscore-v1"])


@dataclass(frozen=True)
class SubjectSplit:
    """Which subjects train, validate and test; written into the run folder and reused. A subject
    here is a participant (:attr:`~napari_medsynth.core.files.scans.ScanPair.participant`): the sessions
    and runs of one BIDS participant stay on one side of the split."""

    train: list[str]
    validation: list[str]
    test: list[str]
    seed: int = 0

    @classmethod
    def make(cls, subjects: list[str], fractions=REPORT_FRACTIONS, seed: int = 0) -> SubjectSplit:
        """Shuffle ``subjects`` with ``seed`` and cut by ``fractions`` (train, validation, test).

        Validation and test get at least one subject each when there are three or more.

        Raises
        ------
        MedSynthError
            Fewer subjects than :data:`~napari_medsynth.core.training.config.MIN_SUBJECTS`.
        """
        subjects = sorted(subjects)
        if (problem := too_few_subjects(len(subjects))) is not None:
            raise MedSynthError(problem)
        total = sum(fractions)
        n_val = max(1, round(len(subjects) * fractions[1] / total))
        n_test = max(1, round(len(subjects) * fractions[2] / total))
        n_val = min(n_val, len(subjects) - 2)
        n_test = min(n_test, len(subjects) - 1 - n_val)
        order = np.random.default_rng(seed).permutation(len(subjects))
        shuffled = [subjects[i] for i in order]
        return cls(
            train=sorted(shuffled[n_val + n_test :]),
            validation=sorted(shuffled[:n_val]),
            test=sorted(shuffled[n_val : n_val + n_test]),
            seed=seed,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        write_json(path, asdict(self), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SubjectSplit:
        """Read a split written by :meth:`save`."""
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise MedSynthError(f"{path}: not a readable split file ({error})") from error


@dataclass(frozen=True)
class CachedVolume:
    """A preprocessed volume stored as .npy (memory-mapped on use) and its statistics."""

    array_path: Path
    standardization: Standardization

    def load(self, mmap: bool = True) -> np.ndarray:
        """The standardized float32 array: (224, 224, 32), or (224, 224, 96) from a native-grid cache."""
        return np.load(self.array_path, mmap_mode="r" if mmap else None)


class PreprocessedCache:
    """Preprocessed volumes on disk, keyed by file path, size, modification time and settings,
    so epochs (and later runs) never read or resample a .nii.gz again.

    Parameters
    ----------
    folder : path
        Where the arrays go.
    grid : {"report", "native"}, default="report"
        The preprocessing grid (see :func:`~napari_medsynth.core.preprocessing.preprocess.preprocess_volume`).
    """

    def __init__(self, folder: str | os.PathLike, grid: str = "report"):
        self.folder = Path(folder)
        self.grid = grid

    def _paths(self, path: Path, variant: str = "") -> tuple[Path, Path]:
        stat = path.stat()
        # the report grid keeps its old keys, so existing caches stay valid
        settings = _PREPROCESSING_KEY if self.grid == "report" else f"{_PREPROCESSING_KEY}|{self.grid}"
        key = hashlib.sha1(
            f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{settings}{variant}".encode()
        ).hexdigest()[:16]
        array_path = self.folder / f"{path.name.split('.')[0]}-{key}.npy"
        return array_path, array_path.with_suffix(".json")

    def lookup(self, path: Path, variant: str = "") -> CachedVolume | None:
        """The cached preprocessed volume of ``path`` (of its ``variant``: a randomized acquisition's
        key), or None if it is not cached yet."""
        array_path, stats_path = self._paths(path, variant)
        if not (array_path.is_file() and stats_path.is_file()):
            return None
        stats = json.loads(stats_path.read_text())
        return CachedVolume(array_path, Standardization(stats["mean"], stats["std"]))

    def store(self, path: Path, volume, variant: str = "") -> CachedVolume:
        """Preprocess ``volume`` (read from ``path``, or made from it as ``variant``) and cache it, atomically."""
        array_path, stats_path = self._paths(path, variant)
        prepared = preprocess_volume(volume, self.grid)
        with atomic_output(array_path, ".npy") as tmp_name:
            np.save(tmp_name, prepared.data)
        write_json(stats_path, asdict(prepared.standardization), indent=None)
        return CachedVolume(array_path, prepared.standardization)


@dataclass(frozen=True)
class VolumePair:
    """One subject's preprocessed source and target in the training direction, and its randomized
    acquisitions (:func:`randomized_acquisitions`: source and target pairs), if any."""

    subject: str
    source: CachedVolume
    target: CachedVolume
    variants: tuple[tuple[CachedVolume, CachedVolume], ...] = ()


def load_volume_pairs(pairs: list[ScanPair], direction: str, cache: PreprocessedCache,
                      progress=None) -> list[VolumePair]:
    """Check and preprocess (through ``cache``) each pair, oriented source -> target.

    Raises
    ------
    MedSynthError
        A volume is unreadable, constant, or on another grid than its partner.
    """
    source_contrast, target_contrast = Direction(direction).contrasts
    result = []
    for done, pair in enumerate(pairs, start=1):
        cached = {c: cache.lookup(pair.path(c)) for c in CONTRASTS}
        if None in cached.values():
            volumes = {c: load_volume(pair.path(c)) for c in CONTRASTS}
            check_pair(volumes["T2"], volumes["PD"])
            cached = {c: cache.store(pair.path(c), volumes[c]) for c in CONTRASTS}
        result.append(VolumePair(pair.subject, cached[source_contrast], cached[target_contrast]))
        if progress is not None:
            progress(done, len(pairs))
    return result


def randomized_acquisitions(pairs: list[ScanPair], direction: str, cache: PreprocessedCache,
                            randomization: AcquisitionRandomization, seed, count: int, progress=None) -> list[tuple]:
    """``count`` randomized acquisitions of each pair (:mod:`.randomize`), source and target each
    preprocessed as a user's scan is and cached: drawn from ``(seed, pair, acquisition)`` alone, so a
    resumed run or another run with the same settings finds them. One tuple of ``(source, target)``
    :class:`CachedVolume` pairs per pair."""
    contrasts = Direction(direction).contrasts
    settings = json.dumps([randomization.record(), seed], sort_keys=True)
    result = []
    for done, pair in enumerate(pairs, start=1):
        paths, volumes = [pair.path(c) for c in contrasts], None
        drawn = []
        for number in range(count):
            variant = f"|acquired|{settings}|{number}"
            cached = [cache.lookup(path, variant) for path in paths]
            if None in cached:
                volumes = volumes or [load_volume(path) for path in paths]
                rng = np.random.default_rng([*np.atleast_1d(seed), _stable(pair.subject), number])
                acquired = randomization(*volumes, rng)
                cached = [cache.store(path, volume, variant) for path, volume in zip(paths, acquired)]
            drawn.append(tuple(cached))
        result.append(tuple(drawn))
        if progress is not None:
            progress(done, len(pairs))
    return result


def _stable(text: str) -> int:
    """A number of ``text`` that is the same in every process (``hash`` is salted)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def find_pairs_or_fail(data: str | os.PathLike) -> list[ScanPair]:
    """The T2/PD pairs in ``data`` (IXI or BIDS: :func:`~napari_medsynth.core.files.scans.find_pairs`).

    Raises
    ------
    MedSynthError
        The folder holds none, a file without its partner (named), or files that pair in more than one way.
    """
    scan = find_pairs(data)
    if (problem := pairing_problem(scan)) is not None:
        raise MedSynthError(problem)
    return scan.pairs


def pairs_of(data: str | os.PathLike, subjects: list[str] | None = None) -> list[ScanPair]:
    """The pairs in ``data``, limited to those of ``subjects`` (participants, as a split lists them) when given."""
    pairs = find_pairs_or_fail(data)
    if subjects is None:
        return pairs
    wanted = set(subjects)
    return [p for p in pairs if p.participant in wanted]


class PatchDataset(Dataset):
    """All non-overlapping ``patch``^3 patches of the given subjects (49 per stack), as
    ``(source, target)`` float32 tensors of shape ``(1, p, p, p)``.

    With ``stacks=3`` the cached arrays are native-grid (224, 224, 96) volumes and each of
    their three interleaved stacks (slices ``k, k + 3, ...``) gives its own 49 patches,
    of the report grid's geometry. Arrays are memory-mapped lazily in each DataLoader worker.
    """

    def __init__(self, pairs: list[VolumePair], patch: int = 32, stacks: int = 1, seed: int = 0):
        self.paths = [(p.source.array_path, p.target.array_path,
                       *(cached.array_path for variant in p.variants for cached in variant)) for p in pairs]
        self.patch = patch
        self.stacks = stacks
        self.starts = patch_grid(PREPROCESSED_SHAPE, patch)
        self.seed = seed
        self._arrays: dict[int, tuple[np.ndarray, ...]] = {}

    def __len__(self) -> int:
        return len(self.paths) * self.stacks * len(self.starts)

    def __iter__(self):
        """Each patch once, in order (as an epoch-0 draw)."""
        return (self[index] for index in range(len(self)))

    def __getitem__(self, index: int):
        """Patch ``index`` modulo the dataset's length; the quotient is the epoch (the sampler adds
        it). A subject with randomized acquisitions gives the patch from one of them or from its own
        pair, drawn from (seed, epoch, patch) alone, so a resumed run sees the same patches."""
        epoch, index = divmod(index, len(self))
        subject, position = divmod(index, self.stacks * len(self.starts))
        stack, position = divmod(position, len(self.starts))
        if subject not in self._arrays:
            self._arrays[subject] = tuple(np.load(p, mmap_mode="r") for p in self.paths[subject])
        z, y, x = self.starts[position]
        region = (slice(z, z + self.patch), slice(y, y + self.patch), slice(x * self.stacks + stack, None, self.stacks))
        arrays = self._arrays[subject]  # source, target, then each acquisition's source and target
        count = len(arrays) // 2
        chosen = int(np.random.default_rng([self.seed, epoch, index]).integers(count)) if count > 1 else 0
        source, target = (np.array(a[region][..., : self.patch], dtype=np.float32)
                          for a in arrays[2 * chosen: 2 * chosen + 2])
        return torch.from_numpy(source)[None], torch.from_numpy(target)[None]


class ResumableSampler(DistributedSampler):
    """A seeded shuffle per epoch (``set_epoch``), split across ranks, that can skip the
    samples a stopped run already trained on, so a resumed run sees the same order."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self):  # each index carries the epoch (the dataset takes it modulo its length)
        return iter([index + self.epoch * len(self.dataset) for index in super().__iter__()][self.skip :])

    def __len__(self) -> int:
        return super().__len__() - self.skip
