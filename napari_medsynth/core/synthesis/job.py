"""One synthesis as every entry point runs it: the command line (a file, a folder), the folder runner,
the demo and the synthesis dock (single, folder, compare) each make a :class:`SynthesisJob`.

The job holds the source, the generator (read once), the options (the device resolved once), the
optional truth and mask; it owns the staging (:func:`synthesis_phases`: the first picture, the preview,
the refined patch average), which files must never be overwritten (:meth:`SynthesisJob.protected`) and
whether the maps are written (:meth:`SynthesisJob.save`, ``options.maps``). The engine underneath is
:mod:`~napari_medsynth.core.synthesis.pipeline`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import Grid, Stage
from ..evaluation.masks import head_mask
from ..files.nifti import Volume, load_volume
from ..networks.checkpoint import CheckpointInfo, LoadedCheckpoint, load_checkpoint
from ..preprocessing.preprocess import preprocess_volume
from .options import SynthesisOptions
from .pipeline import SynthesisResult, synthesize

__all__ = ["SynthesisJob", "synthesis_phases"]


def synthesis_phases(options: SynthesisOptions, preview_first: bool = True) -> list[tuple[Stage, SynthesisOptions]]:
    """The pictures of a synthesis in the order a user sees them come, each with its options.

    With ``preview_first`` (or ``options.preview``): on the native grid first one pass of the
    generator on the report grid (a third of the work; no figures), then one pass on the native grid;
    on the report grid the preview alone. Then, unless ``options.preview``, the patch average where its
    patches overlap: at a stride without overlap the preview is the finished result (the average would
    only add the patches' seams, :attr:`SynthesisOptions.overlapping`).
    """
    phases = []
    if preview_first or options.preview:
        if options.grid == Grid.NATIVE:
            phases.append((Stage.FIRST_PICTURE, options.replace(grid=Grid.REPORT, preview=True)))
        phases.append((Stage.PREVIEW, options.replace(preview=True)))
    if not options.preview and not (phases and not options.overlapping):
        phases.append((Stage.REFINED, options))
    return phases


@dataclass(frozen=True)
class SynthesisJob:
    """A source, a generator read once, the options, and optionally a truth and a mask (on the source's grid)."""

    source: Volume
    generator: LoadedCheckpoint
    options: SynthesisOptions
    target: Volume | None = None
    mask: np.ndarray | None = None

    @classmethod
    def load(cls, source: Volume | str | os.PathLike, generator, options: SynthesisOptions | None = None, *,
             target: Volume | str | os.PathLike | None = None, mask=None, direction: str | None = None,
             to_files: bool = False) -> SynthesisJob:
        """The job of ``generator`` (a checkpoint or export file, read here, of ``direction`` if given;
        or a :class:`LoadedCheckpoint` read before), with ``options``' device resolved (``auto``: a GPU if torch sees
        one); ``to_files``: its result goes to files (no spread map is made that is not written).
        ``source`` and ``target`` are volumes or files, read after the generator.

        Raises
        ------
        MedSynthError
            An unreadable checkpoint, one of another direction, a device torch does not have, an
            unreadable source or truth.
        """
        from ..networks.devices import resolve_device

        loaded = LoadedCheckpoint(*generator) if isinstance(generator, tuple) else load_checkpoint(generator, direction)
        options = options if options is not None else SynthesisOptions()
        options = options.for_files() if to_files else options
        source, target = (load_volume(v) if isinstance(v, str | os.PathLike) else v for v in (source, target))
        return cls(source, loaded, options.replace(device=str(resolve_device(options.device))), target, mask)

    @property
    def info(self) -> CheckpointInfo:
        return self.generator.info

    def stages(self, *, preview_first: bool = True, progress=None, cancel=None) -> Iterator[SynthesisResult]:
        """The synthesis as a user should see it come: each picture of :func:`synthesis_phases` as soon
        as it is made, then (with a truth, but for the first picture) the same with its figures
        (:meth:`SynthesisResult.scored`); the last is the finished one (``final``), the others are not.
        ``progress(done, total)`` counts the patch average's patches. Errors are :func:`synthesize`'s."""
        phases, mask = synthesis_phases(self.options, preview_first), self.mask
        prepared = {}  # one preprocessing per grid
        for number, (stage, options) in enumerate(phases, start=1):
            if options.grid not in prepared:
                prepared[options.grid] = preprocess_volume(self.source, options.grid)
            scores = self.target is not None and stage != Stage.FIRST_PICTURE
            if scores and mask is None:
                mask = head_mask(self.source.data)  # one head mask for every stage's figures (after the first picture)
            result = synthesize(self.source, self.generator, options, target=self.target, mask=mask, cancel=cancel,
                                progress=progress if stage == Stage.REFINED else None,
                                prepared=prepared[options.grid], figures=False, checks=number == 1)
            last = number == len(phases)
            yield dataclasses.replace(result, stage=stage, final=last and not scores)
            if scores:
                yield dataclasses.replace(result.scored(self.target), final=last)

    def run(self, *, progress=None, cancel=None, figures: bool = True) -> SynthesisResult:
        """The synthesis as ``options`` say, in one go (``figures=False``: its figures later, by
        :meth:`SynthesisResult.scored`)."""
        return synthesize(self.source, self.generator, self.options, target=self.target, mask=self.mask,
                          progress=progress, cancel=cancel, figures=figures)

    def protected(self, *others) -> tuple[Path, ...]:
        """The files a result must never overwrite: the source, the truth, the generator's file, and ``others``."""
        paths = (self.source.path, self.target.path if self.target is not None else None, self.info.path, *others)
        return tuple(Path(path) for path in paths if path is not None)

    def save(self, result: SynthesisResult, out: str | os.PathLike, *, maps_folder=None, extra: dict | None = None,
             protect=(), volume: bool = True, with_maps: bool = True) -> list[Path]:
        """Write ``result`` to ``out`` with its sidecar (and ``extra`` in it), never over :meth:`protected`
        or ``protect``; its maps too when ``options.maps`` says so, into ``maps_folder`` (default: beside
        ``out``). ``volume=False``: the sidecar (and maps) alone; ``with_maps=False``: not yet (a picture
        written before its figures)."""
        wanted = self.options.maps and with_maps
        folder = (maps_folder if maps_folder is not None else Path(out).parent) if wanted else None
        return result.save(self.source, out, maps_folder=folder, protect=self.protected(*protect), extra=extra,
                           volume=volume)
