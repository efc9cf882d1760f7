"""Save docs/napari_compare.png: the synthesis dock's Compare on the phantom sample (every bundled
T2->PD generator and the intensity mapping), the figures table docked below, the best row selected
(its error maps in the grid), at 1600x1000; with ``default``, docs/napari_compare_default.png at
napari's default window size.

Run under a display, or ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_compare.py [default]``.
"""

from __future__ import annotations

import os
import tempfile

# napari as a new user has it: its default window, not the size an earlier run left in its settings
os.environ.setdefault("NAPARI_CONFIG", os.path.join(tempfile.mkdtemp(), "napari.yaml"))

import sys
from pathlib import Path

import napari
from screenshot_widgets import close_toasts, wait  # (this script's folder is on the path)

from napari_medsynth._widgets._shared import RUNS
from napari_medsynth.core.synthesis.catalog import bundled_generators
from napari_medsynth.core.synthesis.options import SynthesisOptions


def main(docs: Path, default_size: bool = False) -> None:
    RUNS.set(Path(tempfile.mkdtemp()) / "runs")
    viewer = napari.Viewer(show=True)
    if not default_size:
        viewer.window.resize(1600, 1000)
    viewer.open_sample("napari-medsynth", "phantom_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-medsynth", "Synthesize contrast")
    widget.configure("t2-pd", options=SynthesisOptions(stride=16, device="cpu"), preview_first=False)
    widget.compare([str(entry.path) for entry in bundled_generators("t2-pd")])
    wait(lambda: widget.worker is None, 3600)
    widget.comparing.figures.select([widget.comparing.figures.best("source_psnr")])
    depth = viewer.dims.range[0]
    viewer.dims.set_point(0, depth.start + 0.55 * (depth.stop - depth.start))
    close_toasts(viewer)
    wait(lambda: False, 1)
    name = "napari_compare_default.png" if default_size else "napari_compare.png"
    viewer.screenshot(str(docs / name), canvas_only=False, flash=False)
    print(widget.status)
    print(widget.comparing.figures.csv())
    viewer.close()


if __name__ == "__main__":
    main(Path(__file__).resolve().parent.parent / "docs", default_size=sys.argv[1:] == ["default"])
