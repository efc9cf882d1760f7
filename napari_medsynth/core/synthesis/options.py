"""The one definition of a synthesis' options.

:class:`SynthesisOptions`' fields (:func:`~napari_medsynth.core.fields.option`) carry their help
text, choices and GUI labels; the command-line options of ``medsynth synthesize`` (file and folder),
``medsynth demo`` and ``medsynth-train evaluate`` (:func:`add_synthesis_arguments`,
:func:`options_from_args`, with :func:`~napari_medsynth.core.fields.add_arguments`), the synthesis widget's
form and remembered settings, the sidecar and the layer metadata (:meth:`SynthesisOptions.record`)
are all built from them, as :mod:`~napari_medsynth.core.training.config` does for training. The
builders read :data:`SynthesisOptions` when they run, so a field added to it shows everywhere.
Importable without torch, numpy or Qt.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields

from ..choices import DEVICES, Choice, Engine, Grid
from ..errors import MedSynthError
from ..fields import add_arguments, option

__all__ = ["PATCH", "SynthesisOptions", "add_synthesis_arguments", "option", "option_fields", "options_from",
           "options_from_args"]


def _device(value) -> str:
    text = str(value).strip().lower()
    if not (text in ("auto", "cpu", "mps") or text == "cuda" or
            (text.startswith("cuda:") and text[5:].isdigit())):
        raise MedSynthError(f"unknown device {value!r}; use auto, cpu, cuda or cuda:N")
    return text


def _count(value, what: str, none: bool = False):
    if value is None and none:
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise MedSynthError(f"{what} must be a whole number of at least 1, got {value!r}")
    return number


PATCH = 32  # the edge of the generator's patches (the report's 32^3)


@dataclass(frozen=True)
class SynthesisOptions:
    """How a synthesis runs: validated when made (one :class:`MedSynthError` line for a bad value)."""

    grid: Grid = option(Grid.NATIVE, "native: synthesize every slice of the 224x224x96 resample (default; the best "
                                     "quality per second); report: the study's protocol, one slice in three "
                                     "(224x224x32) and the rest interpolated, to compare with its figures (3-4 dB "
                                     "below native on the source grid in the same time: docs/performance.md)",
                        choices=[("native: every slice (best)", "native"), ("report: the study's protocol", "report")])
    stride: int = option(8, "patch stride in voxels (default 8, the study's; 16 takes a quarter of the patches and "
                            "scored as well on the native grid; 32 is the fastest, with no spread map)", metavar="S",
                         choices=[("8 (the study's)", 8), ("16 (a quarter of the work)", 16),
                                  ("32 (fastest, no spread map)", 32)])
    engine: Engine = option(Engine.AUTO, "convolutions: auto (the faster per layer, default), direct, or fft "
                                         "(transform domain); the same result either way", label="convolutions",
                            choices=[("auto (the faster per layer)", "auto"), ("direct", "direct"),
                                     ("fft (transform domain)", "fft")])
    device: str = option("auto", "auto, cpu, cuda or cuda:N (default auto)", choices=DEVICES)
    batch_size: int | None = option(None, "patches per forward pass (default: automatic)", gui=False, metavar="B")
    preview: bool = option(False, "one pass of the generator over the whole volume instead of the patch average "
                                  "(fast; no spread map)", gui=False)
    spread: bool = option(True, "the patch-disagreement (spread) map among the maps",
                          label="spread map", maps=True)
    masked_maps: bool = option(False, "error maps set to 0 outside the (head) mask",
                               label="error maps in the mask only", maps=True)
    maps: bool = option(False, "write the maps as files beside each synthesis: the spread map, and with a ground "
                               "truth the squared-error and gradient-difference maps (command line: --maps [DIR]; "
                               "the dock: its Save and its folder runs)", label="write the maps as files", maps=True,
                        cli=False)

    def __post_init__(self):
        checks = {"grid": lambda v: Grid.parse(v, "grid"), "engine": lambda v: Engine.parse(v, "engine"),
                  "stride": lambda v: _count(v, "the stride"),
                  "batch_size": lambda v: _count(v, "the batch size", none=True), "device": _device}
        for name, check in checks.items():
            object.__setattr__(self, name, check(getattr(self, name)))
        for option_field in fields(self):  # the fields nobody checks above (an added one) keep their type
            value, default = getattr(self, option_field.name), option_field.default
            if option_field.name in checks or value is None:
                continue
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise MedSynthError(f"{option_field.name} must be true or false, got {value!r}")
            elif isinstance(default, (int, float)):
                try:
                    object.__setattr__(self, option_field.name, type(default)(value))
                except ValueError:
                    raise MedSynthError(f"{option_field.name} must be a number, got {value!r}") from None

    @property
    def overlapping(self) -> bool:
        """The patch average's patches overlap (a stride below the patch's edge): only then does it
        refine the one-pass preview and give a spread map; at stride 32 it only adds seams."""
        return self.stride < PATCH

    def replace(self, **changes) -> SynthesisOptions:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def for_files(self) -> SynthesisOptions:
        """The options of a synthesis written to files: no spread map is computed that is not written."""
        return self.replace(spread=self.spread and self.maps)

    def record(self) -> dict:
        """Every option as JSON holds it (the sidecar's and the layer metadata's ``options``)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_record(cls, record: dict) -> SynthesisOptions:
        """The options of a :meth:`record` (keys this version does not know are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


def _plain(value):
    return value.value if isinstance(value, Choice) else value


def option_fields(*, gui: bool | None = None, maps: bool = True) -> list[dataclasses.Field]:
    """The fields of :data:`SynthesisOptions` (as it is now): only those in the GUI's form with
    ``gui=True``, and without the map options with ``maps=False``."""
    return [f for f in fields(SynthesisOptions)
            if (gui is None or f.metadata.get("gui", True) == gui) and (maps or not f.metadata.get("maps"))]


def add_synthesis_arguments(parser: argparse.ArgumentParser, *, maps: bool = True) -> None:
    """Add an option per field of :data:`SynthesisOptions` to ``parser`` (without the map options
    with ``maps=False``): ``--stride S``, ``--grid {native,report}``, ``--preview``, ``--no-spread``..."""
    add_arguments(parser, option_fields(maps=maps))


def options_from_args(args: argparse.Namespace) -> SynthesisOptions:
    """The :data:`SynthesisOptions` of parsed arguments (options the namespace lacks keep their defaults).

    Raises
    ------
    MedSynthError
        A value the options refuse (``--stride 0``), in one line.
    """
    values = vars(args)
    if "maps" in values and not isinstance(values["maps"], bool):  # --maps [DIR]: whether, and where
        values = {**values, "maps": values["maps"] is not None}
    return options_from(values)


def options_from(values: dict) -> SynthesisOptions:
    """The :data:`SynthesisOptions` (as it is now) of ``values`` by field name; other keys are left out.

    Raises
    ------
    MedSynthError
        A value the options refuse.
    """
    names = {f.name for f in fields(SynthesisOptions)}
    return SynthesisOptions(**{k: v for k, v in values.items() if k in names})
