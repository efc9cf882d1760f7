"""Exported generators (TorchScript, ONNX, a MONAI bundle) give the module's synthesis, load back into the
pipeline, and broken or foreign files are refused in one line."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from napari_medsynth.cli import main
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks import export as export_module
from napari_medsynth.core.networks.checkpoint import load_checkpoint, save_checkpoint
from napari_medsynth.core.networks.export import ONNX_OPSET, export_generator, plain_generator
from napari_medsynth.core.networks.exported import ExportedGenerator, sidecar_path
from napari_medsynth.core.networks.fftconv import set_conv_engine
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import synthesize
from napari_medsynth.core.synthesis.reconstruct import preview_volume, reconstruct_volume

BUNDLED = BUNDLED_DIR / "pd-t2-G4+RL.pt"  # the default demo generator: residual, width 1/4
TORCHSCRIPT_TOLERANCE, ONNX_TOLERANCE = 1e-5, 1e-4


def calibrated_checkpoint(path, width, direction, residual=False):
    """A checkpoint of a generator with non-trivial BatchNorm statistics whose layers' output has about unit
    standard deviation, as a trained generator's standardized synthesis."""
    torch.manual_seed(0)
    generator = Generator(width=width, residual=residual)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        generator.eval()
        generator.layers[-1].weight /= generator.layers(torch.randn(1, 1, 16, 16, 16)).std()
    return save_checkpoint(path, generator, direction=direction, variant="G3",
                           target_intensity={"mean": 400.0, "std": 150.0})


@pytest.fixture(scope="module")
def full_width(tmp_path_factory):
    """A full-width (3.6 M parameters) T2->PD checkpoint."""
    return calibrated_checkpoint(tmp_path_factory.mktemp("full") / "full.pt", 1.0, "t2-pd")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, full_width):
    """``{name: (checkpoint, {format: exported path})}`` for the full-width and the bundled generator."""
    folder = tmp_path_factory.mktemp("exported")
    formats = {"torchscript": ".ts", **({"onnx": ".onnx"} if importlib.util.find_spec("onnx") else {})}
    return {name: (checkpoint, {f: export_generator(checkpoint, f, folder / f"{name}{suffix}")
                                for f, suffix in formats.items()})
            for name, checkpoint in (("full-width", full_width), ("bundled", BUNDLED))}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return export_generator(BUNDLED, "monai-bundle", tmp_path_factory.mktemp("bundle") / "pd-t2-G4+RL")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """One 64 x 64 x 33 phantom subject: (T2 path, PD path)."""
    folder = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", str(folder), "--subjects", "1", "--seed", "0", "--shape", "64", "64", "33"]) == 0
    return next(folder.glob("*-T2.nii.gz")), next(folder.glob("*-PD.nii.gz"))


def tolerance(model_format: str, expected) -> float:
    """1e-4 for ONNX; 1e-5 for TorchScript, in units of the output's peak where that exceeds 1: at full width
    the float32 module itself is about 1e-5 from its float64 value for outputs up to ~5 (measured: 1.07e-5, and
    the TorchScript file 0.95e-5), so no float32 export can be held to an absolute 1e-5 there."""
    if model_format == "onnx":
        return ONNX_TOLERANCE
    return TORCHSCRIPT_TOLERANCE * max(1.0, float(np.abs(np.asarray(expected)).max()))


@pytest.fixture(scope="module")
def module_outputs(exported):
    """``{name: (patches, the module's output, volume, patch, the module's reconstruction)}``: a random batch of
    two 32^3 patches, and a volume of two overlapping patches at stride 8 (16^3 patches for the slow
    full-width generator)."""
    outputs = {}
    for name, (checkpoint, _) in exported.items():
        module, _ = load_checkpoint(checkpoint)
        rng = np.random.default_rng(1)
        patches = torch.from_numpy(rng.normal(size=(2, 1, 32, 32, 32)).astype(np.float32))
        patch = 16 if name == "full-width" else 32
        volume = rng.normal(size=(patch, patch, patch + 1)).astype(np.float32)
        with torch.inference_mode():
            expected = module(patches)
        outputs[name] = (patches, expected, volume, patch, reconstruct_volume(module, volume, patch, device="cpu"))
    return outputs


@pytest.mark.parametrize("name", ["full-width", "bundled"])
@pytest.mark.parametrize("model_format", ["torchscript", "onnx"])
def test_an_export_gives_the_modules_patches_and_volume(exported, module_outputs, name, model_format):
    if model_format == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    checkpoint, files = exported[name]
    runner, info = load_checkpoint(files[model_format])
    assert isinstance(runner, ExportedGenerator) and info == load_checkpoint(checkpoint).info
    patches, expected, volume, patch, expected_volume = module_outputs[name]
    with torch.inference_mode():
        got = runner(patches)
    assert got.shape == expected.shape and expected.std() > 0.5
    difference = (got - expected).abs().max().item()
    assert difference <= tolerance(model_format, expected), difference
    got_volume = reconstruct_volume(runner, volume, patch, device="cpu")
    assert np.abs(got_volume - expected_volume).max() <= tolerance(model_format, expected_volume)


def test_the_export_is_plain_convolutions_with_batchnorm_folded(exported):
    generator, _ = load_checkpoint(BUNDLED)
    set_conv_engine(generator, "fft")
    plain = plain_generator(generator)
    convolutions = [m for m in plain.modules() if isinstance(m, nn.Conv3d)]
    assert len(convolutions) == 9 and all(type(m) is nn.Conv3d for m in convolutions)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in plain.modules()) and not plain.training
    assert sum(isinstance(m, nn.BatchNorm3d) for m in generator.modules()) == 8  # the original is untouched
    patches = torch.randn(2, 1, 32, 32, 32)
    with torch.inference_mode():
        assert (plain(patches) - set_conv_engine(generator, "direct")(patches)).abs().max() <= TORCHSCRIPT_TOLERANCE
    graph = str(torch.jit.load(str(exported["bundled"][1]["torchscript"])).inlined_graph)
    assert "aten::_convolution" in graph and "batch_norm" not in graph


def test_the_onnx_file_has_its_opset_and_dynamic_batch_and_spatial_axes(exported):
    onnx = pytest.importorskip("onnx")
    path = exported["bundled"][1]["onnx"]
    model = onnx.load(str(path))
    assert model.opset_import[0].version == ONNX_OPSET
    (source,) = model.graph.input
    dims = source.type.tensor_type.shape.dim
    assert source.name == "source" and [d.dim_param for d in dims] == ["batch", "", "z", "y", "x"]
    assert dims[1].dim_value == 1
    assert "BatchNormalization" not in {node.op_type for node in model.graph.node}
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["model"]["opset"] == ONNX_OPSET
    assert sidecar["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_sidecar_carries_what_the_checkpoint_says(exported):
    _, info = load_checkpoint(BUNDLED)
    path = exported["bundled"][1]["torchscript"]
    assert sidecar_path(path).name == "bundled.ts.json"
    _, loaded = load_checkpoint(path, direction="pd-t2")
    assert loaded == info and loaded.target_intensity == info.target_intensity and loaded.label == "G4+RL"
    with pytest.raises(MedSynthError, match="a PD->T2 generator, but T2->PD was asked for"):
        load_checkpoint(path, direction="t2-pd")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A width-1/16 residual PD->T2 checkpoint (as the demo generator, 1/16 of its cost) and its MONAI bundle."""
    folder = tmp_path_factory.mktemp("tiny")
    checkpoint = calibrated_checkpoint(folder / "tiny.pt", 0.0625, "pd-t2", residual=True)
    return checkpoint, export_generator(checkpoint, "monai-bundle", folder / "tiny-bundle")


@pytest.fixture(scope="module")
def report_synthesis(phantom, tiny):
    """The tiny generator's synthesis of the phantom's PD on the report grid at stride 32 (49 patches), as
    ``medsynth synthesize --grid report --stride 32`` makes it."""
    return synthesize(load_volume(phantom[1]), tiny[0], SynthesisOptions(grid="report", stride=32, device="cpu"))


def test_synthesize_runs_an_exported_file_as_the_checkpoint(tiny, phantom, report_synthesis, tmp_path, capsys):
    """``medsynth synthesize --checkpoint X.ts|X.onnx`` writes the checkpoint's synthesis (a width-1/16
    generator, for time: the formats' fidelity at the study's widths is the tests' above)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    checkpoint, expected = tiny[0], report_synthesis.synthesis
    scale = load_checkpoint(checkpoint).info.target_intensity.std  # the output is in the target's intensities
    for model_format, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        model = export_generator(checkpoint, model_format, tmp_path / f"tiny{suffix}")
        out = tmp_path / f"{model_format}.nii.gz"
        assert main(["synthesize", str(phantom[1]), "--checkpoint", str(model), "--out", str(out),
                     "--grid", "report", "--stride", "32"]) == 0
        got = nib.load(out).get_fdata(dtype=np.float32)
        assert np.abs(got - expected).max() <= tolerance(model_format, expected / scale) * scale, model_format
        assert json.loads(out.with_name(f"{model_format}.json").read_text())["checkpoint"] == str(model.resolve())
    assert capsys.readouterr().out.count("wrote") == 4  # each synthesis and its sidecar


def test_the_monai_bundle_reproduces_the_report_grid_synthesis(tiny, phantom, report_synthesis):
    """MONAI's ConfigParser parses the bundle and instantiates its inferer and network; on the preprocessed
    phantom that inferer gives ``medsynth synthesize --grid report`` (at stride 32 here, for time), and as
    configured it is the report's stride-8 patch average."""
    bundle_config = pytest.importorskip("monai.bundle")
    from monai.inferers import SlidingWindowInferer

    bundle = tiny[1]
    parser = bundle_config.ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    inferer, network = parser.get_parsed_content("inferer"), parser.get_parsed_content("network")
    assert isinstance(inferer, SlidingWindowInferer) and isinstance(network, torch.jit.ScriptModule)
    assert tuple(inferer.roi_size) == (32, 32, 32) and inferer.overlap == 0.75 and inferer.mode == "constant"

    small = np.random.default_rng(3).normal(size=(40, 40, 33)).astype(np.float32)  # 8 patches at stride 8
    with torch.inference_mode():
        theirs = inferer(torch.from_numpy(small)[None, None], network)[0, 0].numpy()
    ours = reconstruct_volume(lambda patches: network(patches), small, stride=8, device="cpu")  # run as it is
    assert np.abs(theirs - ours).max() <= 1e-5

    parser["inferer#overlap"] = 0.0  # roi 32, overlap 0: stride 32
    with torch.inference_mode():
        prepared = torch.from_numpy(preprocess_volume(load_volume(phantom[1]), "report").data)[None, None]
        theirs = parser.get_parsed_content("inferer", lazy=False)(prepared, network)[0, 0].numpy()
    assert np.abs(theirs - report_synthesis.standardized).max() <= ONNX_TOLERANCE


def test_the_bundle_states_its_generator_data_and_limits(bundle):
    _, info = load_checkpoint(BUNDLED)
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert metadata["direction"] == "pd-t2" and metadata["target_contrast"] == "T2"
    assert metadata["target_intensity"] == {"mean": info.target_intensity.mean, "std": info.target_intensity.std}
    assert metadata["preprocessing"]["resampled_shape"] == [224, 224, 96]
    assert metadata["preprocessing"]["sliding_window"] == {"roi": [32, 32, 32], "overlap": 0.75,
                                                           "mode": "constant", "stride": 8}
    readme = (bundle / "docs" / "README.md").read_text()
    assert "synthetic phantom" in readme and "not for real MRI" in readme and "Research use only" in readme
    assert (bundle / "models" / "model.ts").is_file()
    _, loaded = load_checkpoint(bundle / "models" / "model.ts")  # its sidecar comes with it
    assert loaded == info


def test_the_bundle_runs_as_a_monai_workflow(tiny, phantom, report_synthesis, tmp_path):
    """``python -m monai.bundle run`` (without its ``fire`` command line): MONAI's own preprocessing, the
    patch average (at stride 32 for time) and the target's intensities, written on the 224 x 224 x 32 grid."""
    bundle_config = pytest.importorskip("monai.bundle")
    bundle = tiny[1]
    workflow = bundle_config.ConfigWorkflow(
        config_file=str(bundle / "configs" / "inference.json"), logging_file=False, workflow_type=None,
        bundle_root=str(bundle), input_file=str(phantom[1]), output_dir=str(tmp_path), **{"inferer#overlap": 0.0})
    workflow.initialize()
    workflow.run()
    (written,) = tmp_path.glob("*-PD_T2_synth.nii.gz")
    theirs = nib.load(written).get_fdata(dtype=np.float32)
    assert theirs.shape == (224, 224, 32)
    # MONAI resamples with torch, napari-medsynth with SciPy: close on the phantom, not identical
    standardized = load_checkpoint(tiny[0]).info.target_intensity.apply(theirs)
    assert np.abs(standardized - report_synthesis.standardized).max() <= 1e-2


def test_broken_or_foreign_files_are_one_line_and_write_nothing(exported, phantom, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    _, pd = phantom
    files = exported["bundled"][1]
    foreign = tmp_path / "linear.ts"
    torch.jit.script(nn.Linear(3, 3)).save(str(foreign))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(files["onnx"].read_bytes()[: files["onnx"].stat().st_size // 2])

    def refused(model, *sidecar_from):
        if sidecar_from:  # a real export's sidecar, as found beside the file or made to match it
            sidecar = json.loads(sidecar_path(sidecar_from[0]).read_text())
            if len(sidecar_from) > 1:
                sidecar["model"]["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
            sidecar_path(model).write_text(json.dumps(sidecar))
        out = tmp_path / "out" / "synth.nii.gz"
        assert main(["synthesize", str(pd), "--checkpoint", str(model), "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("medsynth: error: ") and "\n" not in err and "Traceback" not in err
        assert not out.exists() and not any((tmp_path / "out").glob("*"))
        return err

    assert "no sidecar linear.ts.json" in refused(foreign)
    assert "SHA-256 differs" in refused(foreign, files["torchscript"])
    assert "does not run as a generator" in refused(foreign, files["torchscript"], "matching")
    assert "SHA-256 differs" in refused(truncated, files["onnx"])
    assert "not a loadable ONNX model" in refused(truncated, files["onnx"], "matching")
    sidecar_path(foreign).write_text("{not json")
    assert "not a readable sidecar" in refused(foreign)


def test_export_refuses_bad_requests_in_one_line_and_writes_nothing(exported, tmp_path, capsys):
    cases = [
        (BUNDLED, "torchscript", tmp_path / "model.onnx", "must end in .ts"),
        (BUNDLED, "zip", tmp_path / "model.zip", "unknown export format 'zip'"),
        (exported["bundled"][1]["torchscript"], "onnx", tmp_path / "again.onnx", "already exported"),
        (tmp_path / "missing.pt", "onnx", tmp_path / "model.onnx", "no such checkpoint file"),
    ]
    for checkpoint, model_format, out, message in cases:
        assert main(["export", str(checkpoint), "--format", model_format, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("medsynth: error: ") and message in err and "\n" not in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    assert main(["export", str(BUNDLED), "--format", "monai-bundle", "--out", str(tmp_path / "taken")]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_failing_bundle_export_leaves_no_folder(tmp_path, monkeypatch):
    def broken(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "_bundle_readme", broken)
    with pytest.raises(MedSynthError, match="cannot write"):
        export_generator(BUNDLED, "monai-bundle", tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_exports_each_format(tmp_path, capsys):
    pytest.importorskip("onnx")
    for model_format, name in (("torchscript", "g.ts"), ("onnx", "g.onnx"), ("monai-bundle", "bundle")):
        assert main(["export", str(BUNDLED), "--format", model_format, "--out", str(tmp_path / name)]) == 0
    assert capsys.readouterr().out.count("wrote") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "g.onnx", "g.onnx.json", "g.ts", "g.ts.json"]
    assert sorted(str(p.relative_to(tmp_path / "bundle")) for p in (tmp_path / "bundle").rglob("*.*")) == [
        "configs/inference.json", "configs/metadata.json", "docs/README.md", "models/model.ts",
        "models/model.ts.json"]


def test_the_synthesis_widget_exports_the_chosen_generator(make_napari_viewer, qtbot, tmp_path):
    from conftest import laid_out

    from napari_medsynth._widgets._shared import RUNS
    from napari_medsynth._widgets.synthesis import SynthesisWidget

    previous = RUNS.folder
    RUNS.set(tmp_path / "runs")
    try:
        viewer = make_napari_viewer(show=True)
        viewer.window._qt_window.resize(1600, 1000)
        widget = SynthesisWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.configure("pd-t2", BUNDLED)
        qtbot.waitUntil(lambda: laid_out(viewer.window._qt_window))  # the export fields leave the canvas its share
        assert viewer.window._qt_viewer.canvas.native.width() >= 0.5 * viewer.window._qt_window.width()
        assert Path(widget.exporting.path.value) == tmp_path / "runs" / "exports" / "pd-t2-G4+RL.ts"
        widget.exporting.format.value = "onnx"
        assert Path(widget.exporting.path.value).name == "pd-t2-G4+RL.onnx"
        widget.exporting.format.value = "torchscript"
        widget.export()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
        out = tmp_path / "runs" / "exports" / "pd-t2-G4+RL.ts"
        assert widget.status == f"exported to {out}" and sidecar_path(out).is_file()
        widget.export(tmp_path / "elsewhere.onnx")
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
        assert widget.status == "elsewhere.onnx: the name of a torchscript export must end in .ts"
    finally:
        RUNS.set(previous)


def test_an_exported_file_copied_elsewhere_keeps_working(exported, tmp_path):
    """The model and its sidecar are all a user needs to carry."""
    source = exported["bundled"][1]["torchscript"]
    shutil.copy(source, tmp_path / "copy.ts")
    shutil.copy(sidecar_path(source), tmp_path / "copy.ts.json")
    runner, info = load_checkpoint(tmp_path / "copy.ts")
    assert info.direction == "pd-t2" and runner(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)


def test_a_tiled_preview_of_an_exported_file_uses_its_receptive_radius(exported):
    """A preview tiled for a small GPU (here forced by ``tile``) gives the untiled result: the exported
    generator brings its receptive radius (29) for the halo, as a module does."""
    runner, _ = load_checkpoint(exported["bundled"][1]["torchscript"])
    assert runner.receptive_radius == 29
    volume = np.random.default_rng(2).normal(size=(24, 20, 18)).astype(np.float32)
    whole = preview_volume(runner, volume, device="cpu")
    np.testing.assert_allclose(preview_volume(runner, volume, device="cpu", tile=8), whole, atol=1e-5)

