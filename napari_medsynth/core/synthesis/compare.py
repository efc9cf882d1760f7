"""Several generators on one subject: one preprocessing of the source, each generator's synthesis
and figures beside the intensity-mapping baseline's, the table as CSV and a montage as PNG.

The study this product implements is such a comparison (G1 < G2 < G3 < G4, with and without
residual learning); :func:`compare_generators` is its table for one subject, as the synthesis
dock's Compare and ``medsynth compare`` show it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..choices import MapKind, MetricScope, parse_direction
from ..errors import Cancelled, MedSynthError
from ..evaluation.baselines import BASELINES
from ..evaluation.figures import Figures
from ..evaluation.masks import check_mask, head_mask
from ..files.atomic import atomic_output, make_folder
from ..files.nifti import Volume
from ..networks.checkpoint import load_checkpoint
from ..preprocessing.preprocess import check_pair, preprocess_volume
from .catalog import bundled_mapping
from .options import SynthesisOptions
from .pipeline import SynthesisResult, synthesize, voxelwise_prediction

__all__ = ["FIGURES", "MAPPING", "ComparedRow", "compare_generators", "difference_map", "metrics_csv",
           "write_comparison", "write_montage"]

MAPPING = BASELINES[1]  # the baseline row's label
FIGURES = ("mae", "psnr", "ssim")


@dataclass(frozen=True)
class ComparedRow:
    """One row of a comparison: a generator's synthesis (or the intensity mapping's) and its figures,
    or the one line that says why the generator could not run.

    Attributes
    ----------
    label : str
        Unique within the comparison: the variant (``"G4+RL"``), with the checkpoint's folder or
        file name where two rows would read the same; :data:`MAPPING` for the baseline.
    checkpoint : str or None
        The generator's file; None for the baseline.
    synthesis : np.ndarray or None
        On the source's grid, in the target contrast's intensities (clipped at 0).
    metrics : Figures or None
        MAE, PSNR and SSIM on each :class:`~napari_medsynth.core.choices.MetricScope`.
    maps : dict of np.ndarray
        The error maps (and a generator's spread map) on the source's grid.
    result : SynthesisResult or None
        A generator's whole result (what :meth:`SynthesisResult.save` writes).
    error : str or None
        Why the generator has no result (another direction, an unreadable file).
    """

    label: str
    checkpoint: str | None = None
    synthesis: np.ndarray | None = None
    metrics: Figures | None = None
    maps: dict = field(default_factory=dict)
    result: SynthesisResult | None = None
    error: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.checkpoint is None


def compare_generators(
    source: Volume,
    generators,
    direction: str,
    options: SynthesisOptions | None = None,
    *,
    target: Volume,
    mask=None,
    progress=None,
    cancel=None,
    on_row=None,
    figures: bool = True,
) -> list[ComparedRow]:
    """Synthesize ``source`` with each checkpoint of ``generators`` (paths) on one preprocessing,
    one head mask and one set of ``options``, score each against ``target``, and add the bundled
    intensity mapping of ``direction`` as the last row.

    A generator that cannot run (another direction, a broken file) is a row with ``error`` and the
    others go on. ``progress(done, total)`` counts the patches of every generator together;
    ``on_row(row)`` hears each row as it is done. Cancelling keeps the rows already done (no
    baseline row is added then). ``figures=False``: the syntheses alone, without figures or the
    mapping's row (a first picture of each, before any figure is taken).

    Raises
    ------
    MedSynthError
        No generator, a source and target of different grids, a constant source, a bad mask.
    """
    direction = parse_direction(direction)
    paths = [Path(path) for path in generators]
    if not paths:
        raise MedSynthError("nothing to compare: give at least one generator checkpoint")
    options = options if options is not None else SynthesisOptions()
    check_pair(source, target)
    head = check_mask(mask, source.data.shape) if mask is not None else head_mask(source.data)
    prepared = preprocess_volume(source, options.grid)
    loaded = [_load(path, direction) for path in paths]
    labels = _unique_labels(paths, [each[1].label if isinstance(each, tuple) else None for each in loaded])
    rows = []

    def keep(row: ComparedRow) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    for index, (path, label, generator) in enumerate(zip(paths, labels, loaded)):
        if not isinstance(generator, tuple):
            keep(ComparedRow(label, str(path), error=generator))
            continue
        counted = None if progress is None else (
            lambda done, total, i=index: progress(i * total + done, len(paths) * total))
        try:
            result = synthesize(source, generator, options, target=target, mask=head, progress=counted,
                                cancel=cancel, prepared=prepared, figures=figures)
        except Cancelled:
            return rows
        except MedSynthError as error:  # a contrast check, a generator that fails on this volume
            keep(ComparedRow(label, str(path), error=str(error)))
            continue
        keep(ComparedRow(label, str(path), result.synthesis, result.metrics, result.all_maps(), result))
    if figures:
        keep(_mapping_row(source, target, head, direction, prepared))
    return rows


def _load(path: Path, direction: str):
    """``load_checkpoint``'s pair, or the one line that says why it cannot be used."""
    try:
        return load_checkpoint(path, direction)
    except (MedSynthError, OSError) as error:
        return str(error)


def _unique_labels(paths: list[Path], labels: list[str | None]) -> list[str]:
    """Each checkpoint's variant label (its file name if unreadable), with its run folder's name
    (``best.pt``, ``last.pt``) or its file's name where two are alike."""
    labels = [label or path.name for label, path in zip(labels, paths)]
    return [f"{label} ({path.parent.name if path.stem in ('best', 'last') else path.name})"
            if labels.count(label) > 1 else label for label, path in zip(labels, paths)]


def _mapping_row(source: Volume, target: Volume, head, direction: str, prepared) -> ComparedRow:
    """The bundled intensity mapping's row, through the generators' grid (``prepared``) and back, its
    synthesis in the truth's intensities."""
    on_source, metrics, maps = voxelwise_prediction(bundled_mapping(direction).predict, source, target, head,
                                                    prepared)
    truth_scale = preprocess_volume(target, "report").standardization
    return ComparedRow(MAPPING, None, np.maximum(truth_scale.invert(on_source), 0.0), metrics, maps)


def difference_map(first: ComparedRow, second: ComparedRow) -> np.ndarray:
    """``first``'s synthesis minus ``second``'s: float32 on the source's grid, target intensities."""
    if first.synthesis is None or second.synthesis is None:
        raise MedSynthError(f"{first.label if first.synthesis is None else second.label} has no synthesis")
    return np.asarray(first.synthesis, np.float32) - np.asarray(second.synthesis, np.float32)


def metrics_csv(rows: list[ComparedRow]) -> str:
    """The table as CSV: one line per row, ``generator, checkpoint, error`` and MAE, PSNR (dB) and SSIM
    on each scope (``source_mae``, ``source_psnr``, ..., ``report_ssim``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["generator", "checkpoint", "error",
                     *(f"{scope.value}_{figure}" for scope in MetricScope for figure in FIGURES)])
    for row in rows:
        values = row.metrics.as_dict() if row.metrics is not None else {}
        writer.writerow([row.label, row.checkpoint or "", row.error or "",
                         *(f"{values[scope.value][figure]:.6g}" if scope.value in values else ""
                           for scope in MetricScope for figure in FIGURES)])
    return buffer.getvalue()


def write_comparison(rows: list[ComparedRow], source: Volume, target: Volume, out_dir, protect=()) -> list[Path]:
    """Write each generator's synthesis (``<label>.nii.gz`` and its sidecar, as ``medsynth synthesize``),
    ``metrics.csv`` and ``compare.png`` into ``out_dir``; the paths written."""
    out = make_folder(out_dir)
    written = []
    for row in rows:
        if row.result is not None:
            written += row.result.save(source, out / f"{_file_label(row.label)}.nii.gz", protect=protect)
    with atomic_output(out / "metrics.csv") as tmp_name:
        Path(tmp_name).write_text(metrics_csv(rows))
    written.append(out / "metrics.csv")
    written.append(write_montage(out / "compare.png", rows, source, target))
    return written


def _file_label(label: str) -> str:
    """The row's label as a file name (``G4+RL``, ``G4 (run-a)``): only what no file system takes is replaced."""
    return "".join("_" if c in '<>:"/\\|?*' or ord(c) < 32 else c for c in label).strip(" .") or "generator"


def write_montage(path, rows: list[ComparedRow], source: Volume, target: Volume) -> Path:
    """A PNG of the middle display slice: the source and the truth on top, then one row per generator
    (and the mapping) with its synthesis and squared-error map, titled with its figures."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe beside napari

    from ..files.nifti import to_display

    def plane(data):
        shown = to_display(Volume(np.asarray(data, dtype=np.float32), source.affine))[0]
        return shown[shown.shape[0] // 2]

    shown = [row for row in rows if row.synthesis is not None]
    source_plane, truth = plane(source.data), plane(target.data)
    low, high = np.percentile(truth, [0.5, 99.5])
    errors = [plane(row.maps[MapKind.SQUARED_ERROR]) for row in shown]
    error_high = max((float(np.percentile(e, 99.5)) for e in errors), default=1.0) or 1.0
    figure = Figure(figsize=(6.4, 3.2 * (len(shown) + 1)), layout="constrained")
    axes = figure.subplots(len(shown) + 1, 2, squeeze=False)
    axes[0, 0].imshow(source_plane, cmap="gray", vmin=np.percentile(source_plane, 0.5),
                      vmax=np.percentile(source_plane, 99.5))
    axes[0, 0].set_title("source", fontsize=10)
    axes[0, 1].imshow(truth, cmap="gray", vmin=low, vmax=high)
    axes[0, 1].set_title("ground truth", fontsize=10)
    for line, (row, error) in enumerate(zip(shown, errors), start=1):
        axes[line, 0].imshow(plane(row.synthesis), cmap="gray", vmin=low, vmax=high)
        axes[line, 0].set_title(f"{row.label}\n{row.metrics.source.text()}", fontsize=8)
        shown_error = axes[line, 1].imshow(error, cmap="inferno", vmin=0.0, vmax=error_high)
        axes[line, 1].set_title(f"{row.label}\nsquared error", fontsize=8)
        scale = figure.colorbar(shown_error, ax=axes[line, 1], shrink=0.85)  # one scale for every row
        scale.set_label("standardized units²", fontsize=7)
        scale.ax.tick_params(labelsize=7)
    for each in axes.ravel():
        each.set_axis_off()
    failed = [row.label for row in rows if row.error]
    figure.suptitle(", ".join(row.label for row in shown) + (f" ({', '.join(failed)} failed)" if failed else ""),
                    fontsize=10)
    path = Path(path)
    with atomic_output(path, ".png") as tmp_name:
        figure.savefig(tmp_name, dpi=80, format="png")
    return path
