"""The named choices of the command line, the GUI, training, checkpoints and results, as string
enums whose values are the strings that JSON, argparse and settings files hold; importable
without numpy or torch (so that building a parser stays instant)."""

from __future__ import annotations

from enum import StrEnum

from .errors import MedSynthError

__all__ = [
    "DEVICES",
    "Choice",
    "DeviceChoices",
    "Direction",
    "Engine",
    "ExportFormat",
    "Grid",
    "MapKind",
    "MetricScope",
    "Stage",
    "Variant",
    "direction_label",
    "parse_direction",
    "run_label",
]


class Choice(StrEnum):
    """A named choice that is its own string: ``Grid.NATIVE == "native"``, ``f"{Grid.NATIVE}"`` is
    ``"native"``, and ``json.dumps`` writes the value."""

    @classmethod
    def parse(cls, value, what: str):
        """The member whose value is ``value``.

        Raises
        ------
        MedSynthError
            ``value`` is none of them (one line naming the choices).
        """
        try:
            return cls(value)
        except ValueError:
            raise MedSynthError(f"unknown {what} {value!r}; use {', '.join(cls)}") from None


class DeviceChoices:
    """The choices of a device option (:data:`DEVICES`): what this machine has, listed when a widget is
    made (:meth:`offered`); the command line takes any device name torch reads (``cuda``, ``cuda:1``)."""

    def offered(self) -> list[str]:
        """``auto``, ``cpu`` and one ``cuda:N`` per GPU torch sees."""
        import torch

        return ["auto", "cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]


DEVICES = DeviceChoices()


class Direction(Choice):
    """Which contrast is synthesized from which."""

    T2_PD = "t2-pd"
    PD_T2 = "pd-t2"

    @property
    def contrasts(self) -> tuple[str, str]:
        """(source contrast, target contrast), e.g. ``("T2", "PD")``."""
        source, target = self.value.upper().split("-")
        return source, target

    @property
    def label(self) -> str:
        """``"T2->PD"``."""
        return "->".join(self.contrasts)


class Stage(Choice):
    """Where a synthesis stands as it comes (:meth:`~napari_medsynth.core.synthesis.job.SynthesisJob.stages`)."""

    FIRST_PICTURE = "first picture"  # one pass on the report grid, within seconds
    PREVIEW = "preview"  # one pass on the options' grid
    REFINED = "refined"  # the patch average


class MapKind(Choice):
    """The maps of a synthesis: the patches' disagreement, and against a truth its two error maps."""

    SPREAD = "spread"  # the standard deviation of the overlapping patches' predictions
    SQUARED_ERROR = "squared_error"
    GRADIENT_DIFFERENCE = "gradient_difference"

    @property
    def against_truth(self) -> bool:
        """An error map: it compares the synthesis with a ground truth."""
        return self is not MapKind.SPREAD


class Variant(Choice):
    """The report's generators: G1 L2; G2 +adversarial; G3 +gradient difference; G4 G3 fine-tuned with L1."""

    G1 = "G1"
    G2 = "G2"
    G3 = "G3"
    G4 = "G4"


class Grid(Choice):
    """What the user sees (every slice synthesized) and what the report scores (one in three):
    see :mod:`napari_medsynth.core.preprocessing.preprocess`."""

    NATIVE = "native"
    REPORT = "report"


class Engine(Choice):
    """How the generator's convolutions run: see :mod:`napari_medsynth.core.networks.fftconv`."""

    AUTO = "auto"
    DIRECT = "direct"
    FFT = "fft"


class ExportFormat(Choice):
    """What ``medsynth export`` writes: see :mod:`napari_medsynth.core.networks.export`."""

    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    MONAI_BUNDLE = "monai-bundle"


class MetricScope(Choice):
    """Where the figures are taken, the user's view first: the source's own voxel grid (whole
    volume, and the head mask of :mod:`~napari_medsynth.core.evaluation.masks`), then the report's
    224 x 224 x 32 grid."""

    SOURCE = "source"
    HEAD = "head"
    REPORT = "report"

    @property
    def description(self) -> str:
        """``"source grid, whole volume"``, ``"source grid, head mask"``, ``"report grid (224x224x32)"``."""
        return {"source": "source grid, whole volume", "head": "source grid, head mask",
                "report": "report grid (224x224x32)"}[self.value]

    @property
    def short(self) -> str:
        """``"source grid"``, ``"head"``, ``"report grid"`` (a table's column)."""
        return {"source": "source grid", "head": "head", "report": "report grid"}[self.value]


def parse_direction(direction) -> Direction:
    """Normalize ``"T2->PD"``, ``"t2-pd"``, ``"T2_PD"`` ... to :class:`Direction`."""
    key = str(direction).lower().replace("->", "-").replace("_", "-").replace(" ", "")
    try:
        return Direction(key)
    except ValueError:
        raise MedSynthError(f"unknown direction {direction!r}; use t2-pd or pd-t2") from None


def direction_label(direction) -> str:
    """``"t2-pd"`` -> ``"T2->PD"``."""
    return parse_direction(direction).label


def run_label(variant: str, residual: bool) -> str:
    """The short name of a generator: ``"G4"``, or ``"G4+RL"`` with residual learning."""
    return f"{variant}+RL" if residual else variant

