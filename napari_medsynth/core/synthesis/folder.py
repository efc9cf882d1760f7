"""Synthesis of a whole folder: one output, one JSON sidecar per file, one metrics table.

The sources are every file of the generator's source contrast that
:func:`~napari_medsynth.core.files.scans.find_pairs` finds, each scored against its partner when there
is one (one without is synthesized without figures). Where the outputs go (:class:`FolderLayout`):

- IXI names (and other names): ``OUT/<subject>-<target>_synth.nii.gz`` and ``.json``, ``OUT/metrics.csv``;
- BIDS (a dataset or BIDS-named files): a BIDS-derivatives dataset, ``OUT/dataset_description.json``
  (``DatasetType: derivative``, ``GeneratedBy``: this package and the generator),
  ``OUT/sub-01/[ses-1/]anat/sub-01_[ses-1_]..._desc-synth_PDw.nii.gz`` (the source's entities kept)
  with a JSON sidecar whose ``Sources`` names the source as a BIDS URI, and ``OUT/metrics.tsv``.

Each sidecar holds the provenance (:class:`~napari_medsynth.core.files.results.Provenance`: checkpoint
and its SHA-256, direction, variant, width, the options, package version, time) and the figures.
A bad file is one line in the report and the others still run. :func:`run_folder` is the one
folder API of the command line and of Python: under ``torchrun`` each rank synthesizes every
``WORLD_SIZE``-th file, and rank 0 writes the metrics once all ranks are done.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import MetricScope
from ..errors import Cancelled, MedSynthError
from ..files.atomic import atomic_output, make_folder, write_json
from ..files.results import sidecar_path
from ..files.scans import BIDS_SUFFIXES, PairScan, find_pairs, scan_name
from ..version import __version__
from .options import SynthesisOptions

__all__ = [
    "FolderLayout",
    "FolderOutcome",
    "FolderReport",
    "folder_sources",
    "run_folder",
    "synthesize_folder",
    "write_folder_metrics",
]

DESCRIPTION_FILE = "dataset_description.json"
BIDS_VERSION = "1.10.0"
SYNTHESIS_DESC = "synth"  # the desc- entity of a synthesis in a derivatives dataset


@dataclass
class FolderReport:
    """What a folder run did: files written, skipped, written without a ground truth, and one line per failure."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    without_truth: list[Path] = field(default_factory=list)

    def untruthed_line(self, target_contrast: str) -> str | None:
        """The one line that says which sources had no partner to score against, if any."""
        if not self.without_truth:
            return None
        names = ", ".join(p.name for p in self.without_truth[:3]) + (", ..." if len(self.without_truth) > 3 else "")
        return (f"{len(self.without_truth)} sources have no {target_contrast} partner and were synthesized "
                f"without figures: {names}")


@dataclass(frozen=True)
class FolderOutcome:
    """What :func:`run_folder` did: this rank's report and files, the files found, written, skipped
    and failed summed over every rank, the metrics table (rank 0's; None on another rank or when no
    file had a ground truth) and the rank."""

    report: FolderReport
    files: list[Path]
    total: int
    written: int
    skipped: int
    failed: int
    metrics: Path | None
    rank: int

    def summary(self) -> str:
        """The closing line: ``2 of 4 files synthesized, 1 skipped (already there), 1 failed`` (no zero parts)."""
        return (f"{self.written} of {self.total} files synthesized"
                + (f", {self.skipped} skipped (already there)" if self.skipped else "")
                + (f", {self.failed} failed" if self.failed else ""))


@dataclass(frozen=True)
class FolderLayout:
    """Where a folder run of ``scan`` into ``out_dir`` writes each synthesis (see the module's docstring)."""

    scan: PairScan
    out_dir: Path
    target_contrast: str

    @property
    def bids(self) -> bool:
        """The outputs form a BIDS-derivatives dataset."""
        return self.scan.scheme == "bids"

    @property
    def metrics_path(self) -> Path:
        """``metrics.tsv`` (BIDS) or ``metrics.csv``."""
        return self.out_dir / ("metrics.tsv" if self.bids else "metrics.csv")

    def outputs(self, source: Path) -> tuple[Path, Path]:
        """The synthesis of ``source`` and its sidecar: ``IXI002-Guys-0828-PD_synth.nii.gz``, or
        ``sub-01/ses-1/anat/sub-01_ses-1_desc-synth_PDw.nii.gz``."""
        name = scan_name(source)
        if not self.bids:
            out = self.out_dir / f"{name.subject}-{self.target_contrast}_synth.nii.gz"
            return out, sidecar_path(out)
        entities = [(k, v) for k, v in name.entities if k != "desc"] + [("desc", SYNTHESIS_DESC)]
        folder = self.out_dir / f"sub-{name.entity('sub')}"
        if name.entity("ses") is not None:
            folder = folder / f"ses-{name.entity('ses')}"
        stem = "_".join(f"{k}-{v}" for k, v in entities) + f"_{BIDS_SUFFIXES[self.target_contrast]}"
        out = folder / "anat" / f"{stem}.nii.gz"
        return out, sidecar_path(out)

    def sidecar_extra(self, source: Path) -> dict:
        """What a derivative's sidecar adds: ``Sources``, the source as a BIDS URI."""
        if not self.bids:
            return {}
        return {"Sources": [f"bids:raw:{source.relative_to(self.scan.folder).as_posix()}"]}

    def describe(self, info) -> None:
        """Write (or add this generator to) ``OUT/dataset_description.json`` of a derivatives dataset."""
        if not self.bids:
            return
        path = self.out_dir / DESCRIPTION_FILE
        generated = {"Name": "napari-medsynth", "Version": __version__,
                     "Description": f"{info.target_contrast}-weighted synthesized from {info.source_contrast}-weighted "
                                    f"by the {info.label} generator"
                                    + (f" {Path(info.path).name}" if info.path else "")}
        description = {"Name": f"napari-medsynth {info.target_contrast} syntheses", "BIDSVersion": BIDS_VERSION,
                       "DatasetType": "derivative", "GeneratedBy": [],
                       "DatasetLinks": {"raw": self.scan.folder.resolve().as_uri()}}
        if path.is_file():
            with contextlib.suppress(ValueError):  # an unreadable one is written anew
                description = {**description, **json.loads(path.read_text())}
        if generated in description["GeneratedBy"]:
            return
        description["GeneratedBy"] = [*description["GeneratedBy"], generated]
        write_json(path, description)


def folder_sources(folder, source_contrast: str) -> list[Path]:
    """The files of ``source_contrast`` in ``folder`` (:func:`~napari_medsynth.core.files.scans.find_pairs`), sorted.

    Raises
    ------
    MedSynthError
        Not a readable folder, or no file of that contrast in it.
    """
    scan = find_pairs(folder)
    files = scan.sources(source_contrast)
    if not files:
        raise MedSynthError(scan.none_found(f"{source_contrast} files"))
    return files


def synthesize_folder(folder, checkpoint, out_dir, options: SynthesisOptions | None = None, *, maps_dir=None,
                      skip_existing=False, rank=0, world_size=1, on_file=None, progress=None,
                      cancel=None, on_stage=None) -> tuple[FolderReport, list[Path]]:
    """Synthesize this rank's share of ``folder`` into ``out_dir`` with ``options``.

    ``maps_dir``: where each file's maps go when ``options.maps`` says to write them (None: beside
    its synthesis). ``on_file(done, total, name)`` is
    called before each of the rank's files; ``progress`` and ``cancel`` go to each synthesis (a
    cancel stops the folder after the current file's batch). ``on_stage(source, truth, result)``
    hears each stage of the first file's synthesis as it comes (its first picture within seconds:
    :meth:`~napari_medsynth.core.synthesis.job.SynthesisJob.stages`), the finished one last.
    Returns the report and this rank's files. Raises :class:`MedSynthError` before any work, and
    before ``out_dir`` is made, when the checkpoint, the folder or ``out_dir`` cannot be used; a new
    ``out_dir`` that nothing was written into is removed again.
    """
    from ..files.nifti import load_volume
    from ..networks.checkpoint import load_checkpoint
    from .job import SynthesisJob

    options = options if options is not None else SynthesisOptions()
    generator = load_checkpoint(checkpoint)  # once for the folder
    info = generator.info
    scan = find_pairs(folder)
    files = scan.sources(info.source_contrast)
    if not files:
        raise MedSynthError(scan.none_found(f"{info.source_contrast} files"))
    files = files[rank::world_size]
    partners = {pair.path(info.source_contrast): pair.path(info.target_contrast) for pair in scan.pairs}
    new_folder = not Path(out_dir).exists()
    layout = FolderLayout(scan, make_folder(out_dir), info.target_contrast)
    report = FolderReport()
    try:
        for done, source_path in enumerate(files):
            out, sidecar = layout.outputs(source_path)
            if on_file is not None:
                on_file(done, len(files), source_path.name)
            if skip_existing and out.is_file() and sidecar.is_file():
                report.skipped.append(out)
                continue
            truth_path = partners.get(source_path)
            try:
                source = load_volume(source_path)
                truth = load_volume(truth_path) if truth_path is not None else None
                job = SynthesisJob.load(source, generator, options, target=truth, to_files=True)
                if on_stage is not None and not report.written:  # the first file's pictures, as they come
                    for result in job.stages(progress=progress, cancel=cancel):
                        on_stage(source, truth, result)  # (the last, final one, too)
                else:
                    result = job.run(progress=progress, cancel=cancel)
                layout.describe(info)
                beside = maps_dir is None or Path(maps_dir) == layout.out_dir  # (in a derivatives dataset: anat/)
                job.save(result, out, maps_folder=None if beside else maps_dir, extra=layout.sidecar_extra(source_path))
                report.written.append(out)
                if truth_path is None:
                    report.without_truth.append(source_path)
            except Cancelled:
                raise
            except Exception as error:  # one bad file never stops the folder; its line says what went wrong
                line = str(error) if isinstance(error, MedSynthError) else f"{type(error).__name__}: {error}"
                prefix = "" if line.startswith(source_path.name) else f"{source_path.name}: "
                report.failed.append(prefix + line.splitlines()[0])
    finally:
        if new_folder and not any(layout.out_dir.iterdir()):
            layout.out_dir.rmdir()  # a run that wrote nothing leaves no folder behind
    return report, files


def run_folder(folder, checkpoint, out_dir, options: SynthesisOptions | None = None, *, maps_dir=None,
               skip_existing=False, on_file=None, progress=None, cancel=None, on_stage=None) -> FolderOutcome:
    """Synthesize ``folder`` into ``out_dir`` (:func:`synthesize_folder`, whose arguments these are),
    then write its metrics table (:func:`write_folder_metrics`).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this process joins a gloo process group, synthesizes its
    rank's share of the files (on its own GPU when ``options.device`` is ``"auto"``), sums the counts
    over the ranks, and leaves the group; rank 0 writes the metrics once every rank is done.
    """
    from ..networks.devices import TorchrunRank

    place = TorchrunRank.from_env()
    options = options if options is not None else SynthesisOptions()
    if place.world_size > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")  # only to agree on the end: each rank's files are its own
    try:
        report, files = synthesize_folder(
            folder, checkpoint, out_dir, options.replace(device=place.device(options.device)), maps_dir=maps_dir,
            skip_existing=skip_existing, rank=place.rank, world_size=place.world_size, on_file=on_file,
            progress=progress, cancel=cancel, on_stage=on_stage)
        counts = [len(files), len(report.written), len(report.skipped), len(report.failed)]
        if place.world_size > 1:
            import torch

            total = torch.tensor(counts)
            dist.all_reduce(total)  # also the barrier before rank 0 merges every rank's sidecars
            counts = total.tolist()
    finally:
        if place.world_size > 1:
            dist.destroy_process_group()
    metrics = write_folder_metrics(out_dir) if place.rank == 0 else None
    return FolderOutcome(report, files, *counts, metrics, place.rank)


def write_folder_metrics(out_dir) -> Path | None:
    """``OUT/metrics.csv`` (``metrics.tsv`` in a derivatives dataset) from every sidecar in
    ``out_dir`` (one row per file with a ground truth), rewritten only when its content changes;
    its path, or None when no file had a ground truth."""
    out_dir = Path(out_dir)
    bids = (out_dir / DESCRIPTION_FILE).is_file()
    sidecars = out_dir.rglob(f"*_desc-{SYNTHESIS_DESC}_*.json") if bids else out_dir.glob("*_synth.json")
    rows = []
    for sidecar in sorted(sidecars):
        record = json.loads(sidecar.read_text())
        if record.get("metrics"):
            source = record["Sources"][0].removeprefix("bids:raw:") if bids else Path(record["source"]).name
            output = sidecar.with_name(record["output"]).relative_to(out_dir).as_posix()
            row = {"source": source, "output": output, "variant": record["variant"]}
            for scope in MetricScope:
                for name in ("mae", "psnr", "ssim"):
                    row[f"{scope}_{name}"] = f"{record['metrics'][scope][name]:.6f}"
            rows.append(row)
    if not rows:
        return None
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n", delimiter="\t" if bids else ",")
    writer.writeheader()
    writer.writerows(rows)
    path = out_dir / ("metrics.tsv" if bids else "metrics.csv")
    if path.is_file() and path.read_text() == text.getvalue():
        return path
    with atomic_output(path) as tmp_name:
        Path(tmp_name).write_text(text.getvalue())
    return path
