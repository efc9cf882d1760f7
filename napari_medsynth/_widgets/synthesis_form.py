"""The synthesis dock's form: the input layers, the generator and one widget per field of
:class:`~napari_medsynth.core.synthesis.options.SynthesisOptions`, turned into a :class:`SynthesisRequest`."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, FileEdit, create_widget

from .._layer_metadata import LayerMetadata
from .._layers import layer_mask, layer_volume
from ..core.choices import Direction
from ..core.errors import MedSynthError
from ..core.files.scans import CONTRASTS, partner_path
from ..core.preprocessing.preprocess import check_pair
from ..core.synthesis.catalog import GeneratorEntry, bundled_generators, default_generator, describe, find_generators
from ..core.synthesis.options import SynthesisOptions, option_fields, options_from
from ._shared import RUNS, field_widget
from .requests import SynthesisRequest

__all__ = ["SynthesisForm", "default_save_path", "partner_of", "same_scan"]


class SynthesisForm:
    """The widgets that say what to synthesize; :meth:`request` reads them."""

    def __init__(self, viewer):
        self._viewer = viewer
        self.extra: dict[str, GeneratorEntry] = {}  # checkpoints picked with the file dialog
        self.listed: dict[str, GeneratorEntry] = {}  # the generator list's entries, by path
        self._chosen: dict[str, str] = {}  # the generator last chosen for each direction
        self._opened = None  # the scan opened last, taken as the source once napari has added it
        self.source = create_widget(annotation="napari.layers.Image", label="source")
        self.truth = ComboBox(label="ground truth", choices=self._truth_choices, nullable=True, value=None,
                              tooltip="the source's partner scan (its other contrast) when it is open; the figures "
                                      "and error maps are taken against it")
        self.mask = create_widget(annotation="napari.layers.Labels", label="mask",
                                  options={"nullable": True, "value": None,
                                           "tooltip": "a labels layer on the source's grid (non-zero: inside) for "
                                                      "the 'head' figures; none: the automatic head mask"})
        self.direction = ComboBox(label="direction", choices=[(d.label, d.value) for d in Direction])
        self._listed_direction = self.direction.value
        self.generator = ComboBox(label="generator", choices=self.generator_choices, nullable=True)
        self.other = FileEdit(label="other file", mode="r", filter="*.pt *.ts *.onnx",
                              tooltip="add a generator from a file: a checkpoint (.pt) or an export (.ts, .onnx)")
        self.runs = FileEdit(label="runs folder", mode="d", value=RUNS.folder)
        self.options = {f.name: field_widget(f) for f in option_fields(gui=True)}
        self.preview_first = CheckBox(text="preview first, then refine", value=True,
                                      tooltip="one pass of the generator first (on the native grid the best quality "
                                              "per second: docs/performance.md), then the patch average replaces it")
        self.side_by_side = CheckBox(text="side by side (grid)", value=False,
                                     tooltip="source | synthesis | ground truth | maps in napari's grid")
        self._spread_wanted = self.options["spread"].value  # what the user ticked, while a stride allows none
        self.source.changed.connect(self.follow_source)
        self.options["stride"].changed.connect(self._stride_changed)

    def widgets(self) -> list:
        """In the order the dock shows them."""
        return [self.source, self.truth, self.mask, self.direction, self.generator, self.other, self.runs,
                *self.options.values(), self.preview_first, self.side_by_side]

    def remembered(self) -> dict:
        """The choices that persist, by settings key."""
        return {"direction": self.direction, **self.options}

    @property
    def writes_maps(self) -> bool:
        """Whether Save writes the maps too (:attr:`SynthesisOptions.maps`; read alone, so that another
        option the form shows cannot refuse a Save)."""
        return bool(self.options[_MAPS].value)

    def synthesis_options(self) -> SynthesisOptions:
        """The options the form shows (validated)."""
        return options_from({name: widget.value for name, widget in self.options.items()})

    def set_options(self, options: SynthesisOptions) -> None:
        """Show ``options`` (those the form has)."""
        record = options.record()
        for name, widget in self.options.items():
            if widget.enabled:  # the spread box while the stride allows none stays off...
                widget.value = record[name]
        if not self.options["spread"].enabled:
            self._spread_wanted = record["spread"]  # ...and takes the value when the stride allows one again

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
        subject, notes, truth_subject = _subject(source_layer, self._viewer.layers), [], None
        if truth is not None:
            try:
                check_pair(source, truth)
            except MedSynthError as error:  # scored on no grid at all: the synthesis goes on without figures
                notes.append(f"no figures: the ground truth {truth_layer.name!r} is not on the source's grid ({error})")
                truth = None
            else:
                if not same_scan(source_layer, truth_layer):
                    truth_subject = _subject(truth_layer, self._viewer.layers)
                    notes.append(f"the ground truth {truth_layer.name!r} is not {subject}'s scan: its figures "
                                 f"compare {subject}'s synthesis with {truth_subject}")
        return SynthesisRequest(
            source=source, checkpoint=self.generator.value, direction=self.direction.value,
            options=self.synthesis_options(), truth=truth, mask=mask, preview_first=self.preview_first.value,
            source_layer=source_layer.name, truth_layer=truth_layer.name if truth is not None else None,
            subject=subject, truth_subject=truth_subject if truth is not None else None, notes=tuple(notes),
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
        """List the direction's generators again, keeping the choice (the one last chosen for this
        direction, else the default one)."""
        if self.generator.value:
            self._chosen[self._listed_direction] = self.generator.value
        self._listed_direction = self.direction.value
        previous = self._chosen.get(self.direction.value, self.generator.value)
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
        """After a change of direction: a source of its source contrast (the current source's partner
        first), and that source's partner as the truth."""
        wanted = Direction(self.direction.value).contrasts[0]
        source = self.source.value
        if source is not None and LayerMetadata.of(source).contrast == wanted:
            self.follow_source()
            return
        inputs = [layer for layer in self._inputs() if LayerMetadata.of(layer).contrast == wanted]
        partner = partner_of(source, self._viewer.layers) if source is not None else None
        chosen = partner if partner is not None else (inputs[0] if inputs else None)
        if chosen is not None:
            self.source.value = chosen  # follow_source picks its truth
        else:
            self.follow_source()

    def opened(self, layer, idle) -> None:
        """``layer`` was added: a T2 or PD scan becomes the source (the direction follows its contrast,
        the truth its partner) once napari has added it, if ``idle()`` still: Synthesize runs what was
        opened last. A file and its partner come together: the file, the last one, is taken."""
        from napari.layers import Image
        from qtpy.QtCore import QTimer

        record = LayerMetadata.of(layer)
        if not isinstance(layer, Image) or not record.is_input or record.contrast not in CONTRASTS:
            return
        self._opened = layer
        QTimer.singleShot(0, lambda: self._take_opened(idle))

    def _take_opened(self, idle) -> None:
        layer, self._opened = self._opened, None
        if layer is not None and layer in self._viewer.layers and idle():
            self.source.reset_choices()
            self.source.value = layer
            self.follow_source()

    def follow_source(self, *_) -> None:
        """The direction follows the source's contrast (T2 or PD); the truth is the source's partner
        scan when it is open, else none: never a scan of another subject unless the user picks it."""
        source = self.source.value
        contrast = LayerMetadata.of(source).contrast if source is not None else None
        if contrast in CONTRASTS and Direction(self.direction.value).contrasts[0] != contrast:
            self.direction.value = next(d.value for d in Direction if d.contrasts[0] == contrast)
            return  # the direction's change picks the layers again
        self.truth.reset_choices()
        self.truth.value = partner_of(source, self._viewer.layers) if source is not None else None

    def _truth_choices(self, _widget=None) -> list[tuple[str, object]]:
        """Every image layer but the source (a volume is no ground truth of itself)."""
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, Image) and layer is not self.source.value]

    def _inputs(self) -> list:
        from napari.layers import Image

        return [layer for layer in self._viewer.layers if isinstance(layer, Image) and LayerMetadata.of(layer).is_input]

    def _stride_changed(self, stride) -> None:
        """No spread map where the patches do not overlap: the box is off and greyed out, then back."""
        spread = self.options["spread"]
        overlapping = SynthesisOptions(stride=stride).overlapping
        if spread.enabled:
            self._spread_wanted = spread.value
        spread.enabled = overlapping
        spread.value = self._spread_wanted if overlapping else False
        spread.tooltip = (_SPREAD_HELP if overlapping else
                          f"no spread map at stride {stride}: its patches do not overlap, so they never disagree")


_SPREAD_HELP = next(f.metadata["help"] for f in option_fields() if f.name == "spread")
_MAPS = next(f.name for f in option_fields() if f.name == "maps")  # (a renamed field fails here, at import)


def same_scan(first, second) -> bool:
    """Whether two input layers are scans of one subject (and session): partners by their files'
    names (IXI, BIDS or any name), else by the identity their layers were opened with."""
    a, b = LayerMetadata.of(first), LayerMetadata.of(second)
    if a.source_path and b.source_path:
        found = partner_path(a.source_path)
        if found is not None and found.resolve() == Path(b.source_path).resolve():
            return True
        return a.subject == b.subject and Path(a.source_path).parent == Path(b.source_path).parent
    return a.subject is not None and a.subject == b.subject


def partner_of(layer, layers):
    """The open scan of ``layer``'s subject in the other of T2 and PD, or None."""
    from napari.layers import Image

    record = LayerMetadata.of(layer)
    if record.contrast not in CONTRASTS:
        return None
    other = next(c for c in CONTRASTS if c != record.contrast)
    return next((candidate for candidate in layers if isinstance(candidate, Image) and candidate is not layer
                 and LayerMetadata.of(candidate).is_input and LayerMetadata.of(candidate).contrast == other
                 and same_scan(layer, candidate)), None)


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
