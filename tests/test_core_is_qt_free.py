"""The core that training uses must import without Qt, napari or magicgui."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_public_api_import_no_gui():
    code = (
        "import sys, pkgutil, importlib, napari_medsynth.core as core\n"
        "names = [m.name for m in pkgutil.walk_packages(core.__path__, 'napari_medsynth.core.')]\n"
        "assert 'napari_medsynth.core.synthesis.job' in names and len(names) > 40, names\n"
        "for name in names:  # every module of every room, not only the flat ones\n"
        "    importlib.import_module(name)\n"
        "from napari_medsynth import Generator, Discriminator, reconstruct_volume, save_checkpoint, load_checkpoint\n"
        "import napari_medsynth.cli, src_train\n"
        "gui = sorted({n.split('.')[0] for n in sys.modules}\n"
        "             & {'qtpy', 'PyQt5', 'PyQt6', 'napari', 'magicgui', 'vispy'})\n"
        "print(','.join(gui))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_package_import_does_not_load_torch():
    code = "import sys, napari_medsynth, napari_medsynth._reader; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
