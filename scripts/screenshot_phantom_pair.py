"""Save docs/napari_phantom_pair.png: napari showing the built-in phantom pair side by side.

Run under a display (or ``xvfb-run -a python scripts/screenshot_phantom_pair.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari


def main(out: str = "docs/napari_phantom_pair.png") -> None:
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 800)
    viewer.open_sample("napari-medsynth", "phantom_pair")
    viewer.grid.enabled = True
    axis = viewer.dims.range[0]
    viewer.dims.set_point(0, axis.start + 0.55 * (axis.stop - axis.start))
    viewer.reset_view()
    napari.qt.get_qapp().processEvents()
    viewer.screenshot(str(Path(out)), canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
