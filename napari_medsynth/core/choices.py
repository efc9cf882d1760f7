"""The named choices of the command line, the GUI and the core, importable without numpy or torch
(so that building a parser stays instant)."""

from __future__ import annotations

__all__ = ["ENGINES", "GRIDS"]

# What the user sees (every slice synthesized) and what the report scores (one in three):
# see napari_medsynth.core.preprocess.
GRIDS = ("native", "report")
# How the generator's convolutions run: see napari_medsynth.core.fftconv.
ENGINES = ("auto", "direct", "fft")
