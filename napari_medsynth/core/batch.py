"""Synthesis of a whole folder of IXI volumes: one output, one JSON sidecar per file, one metrics.csv.

Each source file (the generator's source contrast, in a flat folder or in ``T2/`` and ``PD/``)
gives ``OUT/<subject>-<target>_synth.nii.gz`` on the source's grid and ``OUT/<...>_synth.json``
with the provenance (:class:`~napari_medsynth.core.results.Provenance`: checkpoint and its SHA-256,
direction, variant, width, the options, package version, time) and, when the file's IXI partner is
there, the metrics. A bad file is one line in
the report and the others still run. Under ``torchrun`` each rank synthesizes every
``WORLD_SIZE``-th file, and rank 0 writes ``metrics.csv`` once all ranks are done.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_output, make_folder
from .choices import MetricScope
from .errors import Cancelled, MedSynthError
from .ixi import find_ixi_pairs, ixi_name, partner_path
from .options import SynthesisOptions
from .results import sidecar_path

__all__ = ["FolderReport", "folder_sources", "synthesize_folder", "write_folder_metrics"]

METRICS_FILE = "metrics.csv"


@dataclass
class FolderReport:
    """What a folder run did: files written, skipped, and one line per failure."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def folder_sources(folder, source_contrast: str) -> list[Path]:
    """The IXI files of ``source_contrast`` in ``folder`` (flat, or ``T2/`` and ``PD/``), sorted.

    Raises
    ------
    MedSynthError
        Not a readable folder, or no file of that contrast in it.
    """
    scan = find_ixi_pairs(folder)
    files = [pair.path(source_contrast) for pair in scan.pairs]
    files += [p for p in scan.unpaired if ixi_name(p)[1] == source_contrast]
    if not files:
        raise MedSynthError(f"{folder}: no IXI {source_contrast} files (IXI###-Site-####-{source_contrast}.nii.gz)")
    return sorted(files, key=lambda p: p.name)


def output_paths(out_dir: Path, source: Path, target_contrast: str) -> tuple[Path, Path]:
    """The synthesis and its sidecar for ``source``: ``IXI002-Guys-0828-PD_synth.nii.gz`` and ``.json``."""
    out = out_dir / f"{ixi_name(source)[0]}-{target_contrast}_synth.nii.gz"
    return out, sidecar_path(out)


def synthesize_folder(folder, checkpoint, out_dir, options: SynthesisOptions | None = None, *, maps=None,
                      skip_existing=False, rank=0, world_size=1, on_file=None, progress=None,
                      cancel=None) -> tuple[FolderReport, list[Path]]:
    """Synthesize this rank's share of ``folder`` into ``out_dir`` with ``options``.

    ``maps``: a folder for each file's maps (None: no maps). ``on_file(done, total, name)`` is
    called before each of the rank's files; ``progress`` and ``cancel`` go to each synthesis (a
    cancel stops the folder after the current file's batch). Returns the report and this rank's
    files. Raises :class:`MedSynthError` before any work, and before ``out_dir`` is made, when the
    checkpoint, the folder or ``out_dir`` cannot be used.
    """
    from .checkpoint import load_checkpoint
    from .nifti import load_volume
    from .synthesis import synthesize

    options = options if options is not None else SynthesisOptions()
    generator = load_checkpoint(checkpoint)
    info = generator[1]
    files = folder_sources(folder, info.source_contrast)[rank::world_size]
    out_dir = make_folder(out_dir)
    report = FolderReport()
    for done, source_path in enumerate(files):
        out, sidecar = output_paths(out_dir, source_path, info.target_contrast)
        if on_file is not None:
            on_file(done, len(files), source_path.name)
        if skip_existing and out.is_file() and sidecar.is_file():
            report.skipped.append(out)
            continue
        try:
            source = load_volume(source_path)
            truth_path = partner_path(source_path)
            truth = load_volume(truth_path) if truth_path is not None else None
            result = synthesize(source, generator, options.replace(spread=options.spread and maps is not None),
                                target=truth, progress=progress, cancel=cancel)
            protect = [p for p in (source_path, truth_path, Path(checkpoint)) if p is not None]
            result.save(source, out, maps_folder=maps, protect=protect)
            report.written.append(out)
        except Cancelled:
            raise
        except Exception as error:  # one bad file never stops the folder; its line says what went wrong
            line = str(error) if isinstance(error, MedSynthError) else f"{type(error).__name__}: {error}"
            prefix = "" if line.startswith(source_path.name) else f"{source_path.name}: "
            report.failed.append(prefix + line.splitlines()[0])
    return report, files


def write_folder_metrics(out_dir) -> Path | None:
    """``OUT/metrics.csv`` from every sidecar in ``out_dir`` (one row per file with a ground truth),
    rewritten only when its content changes; its path, or None when no file had a ground truth."""
    out_dir = Path(out_dir)
    rows = []
    for sidecar in sorted(out_dir.glob("*_synth.json")):
        record = json.loads(sidecar.read_text())
        if record.get("metrics"):
            row = {"source": Path(record["source"]).name, "output": record["output"], "variant": record["variant"]}
            for scope in MetricScope:
                for name in ("mae", "psnr", "ssim"):
                    row[f"{scope}_{name}"] = f"{record['metrics'][scope][name]:.6f}"
            rows.append(row)
    if not rows:
        return None
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = out_dir / METRICS_FILE
    if path.is_file() and path.read_text() == text.getvalue():
        return path
    with atomic_output(path) as tmp_name:
        Path(tmp_name).write_text(text.getvalue())
    return path


