"""Layer metadata is one typed record, read and written in one module: what the reader and a
synthesis put on their layers round-trips, and a layer's dict from another version or plugin reads."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from napari_medsynth._layer_metadata import VERSION, VERSION_KEY, LayerMetadata
from napari_medsynth._layers import map_layers, synthesis_layer, volume_layer
from napari_medsynth.core.files.nifti import Volume

ROOT = Path(__file__).resolve().parents[1]


def volume(path=None) -> Volume:
    affine = np.diag([-2.0, 2.0, 3.0, 1.0])
    return Volume(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), affine, None, path)


def test_a_layers_record_round_trips_through_its_dict(tmp_path):
    _, kwargs, _ = volume_layer(volume(tmp_path / "sub-01_ses-1_T2w.nii.gz"))
    metadata = kwargs["metadata"]
    assert metadata[VERSION_KEY] == VERSION
    record = LayerMetadata.from_dict(metadata)
    assert record.subject == "sub-01_ses-1" and record.contrast == "T2" and record.axcodes == "LAS"
    assert record.source_path == str(tmp_path / "sub-01_ses-1_T2w.nii.gz") and record.is_input
    np.testing.assert_array_equal(record.affine, np.diag([-2.0, 2.0, 3.0, 1.0]))
    again = LayerMetadata.from_dict(record.to_dict())
    assert again.subject == record.subject and again.source_path == record.source_path


def test_a_result_and_its_maps_are_marked_as_results_of_their_source(tmp_path):
    source = volume(tmp_path / "IXI002-Guys-0828-T2.nii.gz")
    mark = LayerMetadata(provenance={"direction": "t2-pd", "variant": "G3"}, run="IXI002 PD [G3]", preview=True,
                         synthesized_from="IXI002 T2")
    _, kwargs, _ = synthesis_layer(source.data, source, name="IXI002 PD synth [G3]", subject="IXI002", target="PD",
                                   mark=mark)
    record = LayerMetadata.from_dict(kwargs["metadata"])
    assert record.is_result and not record.is_input and record.preview and record.map is None
    assert record.source_path is None and record.synthesized_from_path == str(source.path)
    (_, map_kwargs, _), = map_layers({"squared_error": source.data}, source, subject="IXI002", label="G3",
                                     target="PD", mark=mark)
    assert LayerMetadata.from_dict(map_kwargs["metadata"]).map == "squared_error"
    assert map_kwargs["name"] == "IXI002 PD squared error [G3]"


def test_a_dict_from_another_version_or_another_plugin_reads():
    record = LayerMetadata.from_dict({"medsynth_run": "x [G1]", "contrast": "PD", "from_the_future": 1})
    assert record.run == "x [G1]" and record.contrast == "PD" and not record.is_input
    assert LayerMetadata.from_dict(None) == LayerMetadata() and LayerMetadata().is_input


# Metadata keys that are also ordinary words of other records; where each occurs, it is not a layer's metadata
OTHER_RECORDS = {
    "affine": "napari's own layer state (_writer.napari_affine) and the phantom's asset file",
    "contrast": "the group of the IXI file-name pattern (core/files/scans.py)",
    "metrics": "the folder run's JSON lines and the demo's summary",
    "preview": "the value of the Stage and job-state enums, and the preview layers' label suffix",
    "provenance": "the checkpoint file's own record (core/networks/checkpoint.py, export.py)",
    "subject": "the phantom command's progress unit, the demo's summary and the IXI file-name pattern",
}


def test_no_other_module_names_a_metadata_key():
    keys = set(LayerMetadata().to_dict())
    assert set(OTHER_RECORDS) <= keys  # (an exemption of a key that is gone goes too)
    offenders = []
    for path in (ROOT / "napari_medsynth").rglob("*.py"):
        if path.name == "_layer_metadata.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in keys - set(OTHER_RECORDS):
                offenders.append(f"{path.name}: {node.value!r}")
    assert offenders == []
