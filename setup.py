"""Package metadata for napari-medsynth (the napari plugin and the src_train module)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# One version source: napari_medsynth/core/version.py (read, not imported: torch need not be installed yet).
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "napari_medsynth/core/version.py").read_text()).group(1)

setup(
    name="napari-medsynth",
    version=VERSION,
    description=(
        "Synthesize PD-weighted from T2-weighted brain MRI and back with a 3D conditional GAN, "
        "in napari or from a terminal"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    packages=find_packages(include=["napari_medsynth", "napari_medsynth.*", "src_train", "src_train.*"]),
    # napari.yaml and the icon live at the repo root (the design card); the package holds
    # links to them so that an installed plugin loads exactly that manifest.
    package_data={"napari_medsynth": ["napari.yaml", "icon.svg", "data/*", "data/generators/*"]},
    # Lower bounds: the oldest versions the suite passes with (.ci/legs wheel installs exactly
    # these); torch 2.13 and Python 3.11 because no older CPU build of torch can be installed
    # where CI runs (PyPI's Linux torch pulls GBs of CUDA), so nothing older is tested.
    install_requires=[
        "napari>=0.9.0",
        "magicgui>=0.10.0",
        "torch>=2.13.0",
        "nibabel>=5.2.0",
        "numpy>=2.0.2",
        "qtpy",  # the plugin reaches Qt only through qtpy: PyQt5 or PyQt6 (the extras below)
        "scipy",
        "tqdm",
        "matplotlib",
        "scikit-image",  # Otsu's threshold of the head mask (a napari dependency already)
        "platformdirs",  # the settings file's place on each OS (a napari dependency already)
    ],
    extras_require={
        # The Qt binding is the user's choice, as napari's plugin guidelines ask ("don't include
        # PyQt5 or PyQt6 in your plugin's default dependencies": a pip binding beside a conda one
        # breaks the environment). PyQt6 is the product's own (.ci/install, the README: the binding
        # napari recommends); PyQt5, which napari 0.9 deprecates, is tested in CI too (.ci/legs qt5).
        "pyqt5": ["pyqt5"],
        "pyqt6": ["PyQt6"],
        # ruff pinned: a new release may add checks that fail CI on unchanged code
        "test": ["pytest", "pytest-qt", "monai", "torchio<2", "ruff==0.17.6"],
        # medsynth export --format onnx (onnx checks the file) and synthesize --checkpoint X.onnx
        "export": ["onnx", "onnxruntime"],
    },
    entry_points={
        "napari.manifest": ["napari-medsynth = napari_medsynth:napari.yaml"],
        "console_scripts": [
            "medsynth = napari_medsynth.cli:main",
            "medsynth-train = src_train.cli:main",
        ],
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: napari",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Image Processing",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
