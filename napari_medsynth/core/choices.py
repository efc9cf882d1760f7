"""The named choices of the command line, the GUI, training and checkpoints, importable without
numpy or torch (so that building a parser stays instant)."""

from __future__ import annotations

from .errors import MedSynthError

__all__ = ["DIRECTIONS", "ENGINES", "GRIDS", "VARIANTS", "direction_label", "parse_direction", "run_label"]

# direction: (source contrast, target contrast)
DIRECTIONS = {"t2-pd": ("T2", "PD"), "pd-t2": ("PD", "T2")}
# The report's generator variants: G1 L2; G2 +adversarial; G3 +gradient difference; G4 G3 fine-tuned with L1.
VARIANTS = ("G1", "G2", "G3", "G4")
# What the user sees (every slice synthesized) and what the report scores (one in three):
# see napari_medsynth.core.preprocess.
GRIDS = ("native", "report")
# How the generator's convolutions run: see napari_medsynth.core.fftconv.
ENGINES = ("auto", "direct", "fft")


def parse_direction(direction: str) -> str:
    """Normalize ``"T2->PD"``, ``"t2-pd"``, ``"T2_PD"`` ... to ``"t2-pd"`` or ``"pd-t2"``."""
    key = str(direction).lower().replace("->", "-").replace("_", "-").replace(" ", "")
    if key not in DIRECTIONS:
        raise MedSynthError(f"unknown direction {direction!r}; use t2-pd or pd-t2")
    return key


def direction_label(direction: str) -> str:
    """``"t2-pd"`` -> ``"T2->PD"``."""
    source, target = DIRECTIONS[parse_direction(direction)]
    return f"{source}->{target}"


def run_label(variant: str, residual: bool) -> str:
    """The short name of a generator: ``"G4"``, or ``"G4+RL"`` with residual learning."""
    return f"{variant}+RL" if residual else variant
