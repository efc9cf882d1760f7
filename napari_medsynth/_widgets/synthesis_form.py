"""The synthesis dock's form: the input layers, the generator and one widget per field of
:class:`~napari_medsynth.core.synthesis.options.SynthesisOptions`, turned into a :class:`SynthesisRequest`."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, LineEdit, SpinBox, create_widget

from .._layer_metadata import LayerMetadata
from .._layers import layer_mask, layer_volume
from ..core.choices import Choice, Direction
from ..core.errors import MedSynthError
from ..core.synthesis.catalog import GeneratorEntry, bundled_generators, default_generator, describe, find_generators
from ..core.synthesis.options import SynthesisOptions, option_fields, options_from
from ._shared import RUNS, device_choices
from .requests import SynthesisRequest

__all__ = ["SynthesisForm", "default_save_path", "option_widget"]


def option_widget(option_field):
    """The form's widget for a field of :class:`SynthesisOptions`, from its metadata and default."""
    meta, default = option_field.metadata, option_field.default
    common = {"label": meta.get("label") or option_field.name.replace("_", " "), "tooltip": meta["help"]}
    choices = meta.get("choices")
    if choices == "devices":
        return ComboBox(choices=device_choices(), value=default, **common)
    if choices is not None or isinstance(default, Choice):
        choices = choices or [member.value for member in type(default)]
        return ComboBox(choices=choices, value=default.value if isinstance(default, Choice) else default, **common)
    if isinstance(default, bool):
        return CheckBox(text=common["label"], value=default, tooltip=common["tooltip"])
    if isinstance(default, int):
        return SpinBox(value=default, min=1, max=10_000, **common)
    if isinstance(default, float):
        return FloatSpinBox(value=default, **common)
    return LineEdit(value=str(default), **common)


class SynthesisForm:
    """The widgets that say what to synthesize; :meth:`request` reads them."""

    def __init__(self, viewer):
        self._viewer = viewer
        self.extra: dict[str, GeneratorEntry] = {}  # checkpoints picked with the file dialog
        self.listed: dict[str, GeneratorEntry] = {}  # the generator list's entries, by path
        self.source = create_widget(annotation="napari.layers.Image", label="source")
        self.truth = create_widget(annotation="napari.layers.Image", label="ground truth",
                                   options={"nullable": True, "value": None})
        self.mask = create_widget(annotation="napari.layers.Labels", label="mask",
                                  options={"nullable": True, "value": None,
                                           "tooltip": "a labels layer on the source's grid (non-zero: inside) for "
                                                      "the 'head' figures; none: the automatic head mask"})
        self.direction = ComboBox(label="direction", choices=[(d.label, d.value) for d in Direction])
        self.generator = ComboBox(label="generator", choices=self.generator_choices, nullable=True)
        self.other = FileEdit(label="other file", mode="r", filter="*.pt *.ts *.onnx",
                              tooltip="add a generator from a file: a checkpoint (.pt) or an export (.ts, .onnx)")
        self.runs = FileEdit(label="runs folder", mode="d", value=RUNS.folder)
        self.options = {f.name: option_widget(f) for f in option_fields(gui=True)}
        self.preview_first = CheckBox(text="preview first, then refine", value=True,
                                      tooltip="one pass of the generator first (on the native grid the best quality "
                                              "per second: docs/performance.md), then the patch average replaces it")
        self.side_by_side = CheckBox(text="side by side (grid)", value=False,
                                     tooltip="source | synthesis | ground truth | maps in napari's grid")

    def widgets(self) -> list:
        """In the order the dock shows them."""
        return [self.source, self.truth, self.mask, self.direction, self.generator, self.other, self.runs,
                *self.options.values(), self.preview_first, self.side_by_side]

    def remembered(self) -> dict:
        """The choices that persist, by settings key."""
        return {"direction": self.direction, **self.options}

    def synthesis_options(self) -> SynthesisOptions:
        """The options the form shows (validated)."""
        return options_from({name: widget.value for name, widget in self.options.items()})

    def set_options(self, options: SynthesisOptions) -> None:
        """Show ``options`` (those the form has)."""
        record = options.record()
        for name, widget in self.options.items():
            widget.value = record[name]

    def request(self) -> SynthesisRequest:
        """What Synthesize would run now.

        Raises
        ------
        MedSynthError
            No source layer, no generator, a 2D layer, a mask on another grid, a bad option.
        """
        source_layer, truth_layer = self.source.value, self.truth.value
        if source_layer is None:
            raise MedSynthError("choose a source image layer")
        if not self.generator.value:
            raise MedSynthError(f"no {Direction(self.direction.value).label} generator: pick a checkpoint file")
        source = layer_volume(source_layer)
        truth = layer_volume(truth_layer) if truth_layer is not None and truth_layer is not source_layer else None
        mask = layer_mask(self.mask.value, source_layer) if self.mask.value is not None else None
        return SynthesisRequest(
            source=source, checkpoint=self.generator.value, direction=self.direction.value,
            options=self.synthesis_options(), truth=truth, mask=mask, preview_first=self.preview_first.value,
            source_layer=source_layer.name, truth_layer=truth_layer.name if truth is not None else None,
            subject=_subject(source_layer, self._viewer.layers),
        )

    # the generator list ------------------------------------------------------------------------
    def generator_choices(self, _widget=None) -> list[tuple[str, str]]:
        """The direction's generators as (title, path): the bundled ones, the runs folder's, the files added."""
        direction = self.direction.value
        entries = [*bundled_generators(direction), *find_generators(RUNS.folder, direction),
                   *(e for e in self.extra.values() if e.info.direction == direction)]
        self.listed = {str(entry.path): entry for entry in entries}
        return [(entry.title, path) for path, entry in self.listed.items()]

    def refresh_generators(self) -> None:
        """List the direction's generators again, keeping the choice (else the default one)."""
        previous = self.generator.value
        self.generator.reset_choices()
        values = [value for value in self.generator.choices if value]
        if previous in values:
            self.generator.value = previous
        elif values:
            default = default_generator(self.direction.value)
            self.generator.value = str(default.path) if default and str(default.path) in values else values[-1]
        entry = self.listed.get(self.generator.value)
        self.generator.tooltip = describe(entry) if entry else ""

    def pick_layers(self) -> None:
        """Take the layers whose contrast fits the direction: its source, and the other as truth."""
        from napari.layers import Image

        wanted, other = Direction(self.direction.value).contrasts
        by_contrast = {}
        for layer in self._viewer.layers:  # the first input layer of each contrast, never a result layer
            if isinstance(layer, Image) and LayerMetadata.of(layer).is_input:
                by_contrast.setdefault(LayerMetadata.of(layer).contrast, layer)
        source, truth = self.source.value, self.truth.value
        if wanted in by_contrast and (source is None or LayerMetadata.of(source).contrast != wanted):
            self.source.value = by_contrast[wanted]
        if other in by_contrast and (truth is None or LayerMetadata.of(truth).contrast != other):
            self.truth.value = by_contrast[other]


def _subject(layer, layers) -> str:
    """The identity result layers are named by: the layer's scan label (``IXI002``, ``sub-01``), with
    its folder's name when another open file of its contrast has that label (``scan (a)``, ``scan (b)``)."""
    record = LayerMetadata.of(layer)
    label, path = str(record.subject or layer.name.split()[0]), record.source_path
    files = {LayerMetadata.of(other).source_path for other in layers
             if LayerMetadata.of(other).is_input and (LayerMetadata.of(other).subject, LayerMetadata.of(other).contrast)
             == (label, record.contrast)}
    return f"{label} ({Path(path).parent.name})" if path and len(files) > 1 else label


def default_save_path(layer_name: str) -> Path:
    """In ``syntheses/`` beside the runs, never among the input data."""
    stem = layer_name.replace(" [", "_").replace("]", "").replace("+", "").replace(" ", "_")
    return RUNS.folder / "syntheses" / f"{stem}.nii.gz"
