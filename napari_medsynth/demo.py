"""The out-of-the-box demo: the built-in phantom pair through the default bundled generator.

:func:`run_headless_demo` does the work without a display and writes NIfTI files, the
metrics beside the two baselines and a PNG figure; :func:`open_demo_viewer` does it in
napari through the synthesis widget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._layers import RESULT_MAPS, robust_contrast_limits
from .core.choices import MetricScope, direction_label
from .core.errors import MedSynthError
from .core.evaluation.baselines import BASELINES
from .core.evaluation.figures import CONVENTION
from .core.evaluation.masks import head_mask
from .core.files.atomic import atomic_output, make_folder, write_json
from .core.files.nifti import Volume, save_volume, to_display
from .core.synthesis.catalog import GeneratorEntry, bundled_mapping, default_generator
from .core.synthesis.job import SynthesisJob
from .core.synthesis.options import SynthesisOptions
from .core.synthesis.pipeline import SynthesisResult, score_voxelwise

__all__ = ["DEMO_SUBJECT", "demo_generator", "open_demo_viewer", "run_headless_demo"]

DEMO_SUBJECT = "phantom subject seed 0 (napari sample data; held out from the generators' training)"


def demo_generator() -> GeneratorEntry:
    """The default bundled generator.

    Raises
    ------
    MedSynthError
        The package holds no demo generator (a broken installation).
    """
    entry = default_generator()
    if entry is None:
        raise MedSynthError("this installation holds no demo generator; reinstall napari-medsynth")
    return entry


def run_headless_demo(out_dir, options: SynthesisOptions | None = None, *, progress=None, cancel=None) -> dict:
    """Synthesize the phantom sample with the demo generator (with ``options``) and write
    everything to ``out_dir``.

    Writes ``phantom_T2.nii.gz`` and ``phantom_PD.nii.gz`` (the inputs), the synthesis and its
    spread (unless ``options.spread`` is off), squared-error and gradient-difference maps as
    NIfTI on the source's grid, ``metrics.json`` (the generator beside the standardized source and the per-voxel
    intensity mapping fitted on the generator's training subjects, each on the source's
    grid, in its head mask and on the report's grid) and ``demo.png``.

    Returns
    -------
    dict
        What ``metrics.json`` holds, plus ``files``: every path written.

    Raises
    ------
    MedSynthError
        ``out_dir`` cannot be written, or the package holds no demo generator.
    """
    from .core.simulation.phantom import sample_pair

    entry = demo_generator()
    out = make_folder(out_dir)
    volumes = dict(zip(("T2", "PD"), sample_pair()))
    files = [save_volume(out / f"phantom_{contrast}.nii.gz", volume.data, volume)
             for contrast, volume in volumes.items()]
    source, truth = volumes[entry.info.source_contrast], volumes[entry.info.target_contrast]
    head = head_mask(source.data)  # one mask for the generator and both baselines
    # the demo shows everything: its maps are written beside the synthesis
    job = SynthesisJob.load(source, entry.path, (options or SynthesisOptions()).replace(maps=True), target=truth,
                            mask=head, direction=entry.info.direction)
    info = job.info
    result = job.run(progress=progress, cancel=cancel)
    synthesis_path = out / f"phantom_{info.target_contrast}_synth_{info.label.replace('+', '')}.nii.gz"
    files += job.save(result, synthesis_path)

    metrics = {
        f"{info.label} (demo generator)": result.metrics.as_dict(),
        BASELINES[0]: score_voxelwise(lambda x: x, source, truth, head).as_dict(),
        BASELINES[1]: score_voxelwise(bundled_mapping(info.direction).predict, source, truth, head).as_dict(),
    }
    summary = {
        "generator": str(entry.path.name),
        "direction": direction_label(info.direction),
        "trained_on": info.training.trained_on or "",
        "subject": DEMO_SUBJECT,
        "options": result.provenance.options,
        "metrics": metrics,
        "scopes": {scope.value: scope.description for scope in MetricScope},
        "convention": CONVENTION,
    }
    write_json(out / "metrics.json", summary, indent=2)
    files.append(out / "metrics.json")
    files.append(write_demo_figure(out / "demo.png", source, truth, result, info))
    return {**summary, "files": [str(path) for path in files]}


def write_demo_figure(path, source: Volume, truth: Volume, result: SynthesisResult, info) -> Path:
    """A PNG of the middle display slice: source | synthesis | truth | spread | squared error | gradient difference."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe beside napari

    target = info.target_contrast
    panels = [(f"source ({info.source_contrast})", source.data, "gray"),
              (f"synthesis [{info.label}]", result.synthesis, "gray"),
              (f"ground truth ({target})", truth.data, "gray")]
    maps = result.all_maps()
    panels += [(suffix, maps[key], colormap) for key, (suffix, colormap) in RESULT_MAPS.items()
               if maps.get(key) is not None]
    figure = Figure(figsize=(3 * len(panels), 3.4), layout="constrained")
    for axes, (title, data, colormap) in zip(figure.subplots(1, len(panels)), panels):
        shown = to_display(Volume(np.asarray(data, dtype=np.float32), source.affine))[0]
        plane = shown[shown.shape[0] // 2]
        low, high = robust_contrast_limits(plane, 0.0 if colormap != "gray" else 0.5, 99.5)
        axes.imshow(plane, cmap=colormap, vmin=low, vmax=high)
        axes.set_title(title, fontsize=10)
        axes.set_axis_off()
    figure.suptitle(f"{direction_label(info.direction)} {info.label} on the phantom ({result.options.grid} grid), "
                    f"on the source grid: {result.metrics.source.text()}",
                    fontsize=11)
    path = Path(path)
    with atomic_output(path, ".png") as tmp_name:
        figure.savefig(tmp_name, dpi=90, format="png")
    return path


def open_demo_viewer(viewer=None, *, options: SynthesisOptions | None = None, when_shown: bool = False):
    """Open napari (or use ``viewer``) on the phantom pair and start the demo generator in the
    synthesis widget, side by side with the ground truth and the maps; returns ``(viewer, widget)``.
    ``when_shown``: start once napari's window has painted (the synthesis' threads would otherwise
    hold the window back by seconds), as ``medsynth demo`` does; else at once."""
    import napari

    from ._napari_adapter import after_first_paint

    entry = demo_generator()
    viewer = viewer or napari.Viewer(title="napari-medsynth demo")
    viewer.open_sample("napari-medsynth", "phantom_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-medsynth", "Synthesize contrast")
    widget.configure(entry.info.direction, entry.path, options=options, side_by_side=True)
    if when_shown:
        after_first_paint(viewer, widget.start)
    else:
        widget.start()
    return viewer, widget

