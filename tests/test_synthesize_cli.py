"""``medsynth synthesize`` end to end on a phantom pair with a bundled trained generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_medsynth.cli import main
from napari_medsynth.core.choices import MetricScope
from napari_medsynth.core.evaluation import metrics
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume, stacks
from napari_medsynth.core.synthesis.pipeline import score_voxelwise
from napari_medsynth.core.synthesis.reconstruct import preview_volume


def printed_metrics(printed: str) -> dict:
    """``{scope: (mae, psnr, ssim)}`` from ``medsynth synthesize``'s metric lines."""
    found = {}
    for scope in MetricScope:
        title = scope.description
        line = next(text for text in printed.splitlines() if text.startswith(title))
        words = line[len(title):].split()
        found[scope] = tuple(float(words[i]) for i in (1, 3, 6))
    return found


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", str(folder), "--subjects", "1", "--seed", "3", "--shape", "128", "128", "65"]) == 0
    (t2,) = folder.glob("*-T2.nii.gz")
    (pd,) = folder.glob("*-PD.nii.gz")
    return t2, pd


@pytest.fixture(scope="module")
def checkpoint(trained):
    """The bundled T2->PD G3 (width 1/4, trained on phantoms of another seed): no training here. Only the first
    test's quality assertion needs it trained; the others test the plumbing and would do with any generator."""
    return trained("t2-pd-G3")


def test_synthesize_writes_on_the_source_grid_with_metrics_and_maps(phantom, checkpoint, tmp_path, capsys):
    t2, pd = phantom
    out = tmp_path / "synth.nii.gz"
    maps = tmp_path / "maps"
    code = main(["synthesize", str(t2), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--target", str(pd), "--stride", "24", "--device", "cpu", "--maps", str(maps)])
    assert code == 0
    printed = capsys.readouterr().out
    source, synth, truth = load_volume(t2), load_volume(out), load_volume(pd)
    assert synth.data.shape == source.data.shape and synth.data.min() >= 0  # a magnitude image
    np.testing.assert_allclose(synth.affine, source.affine)
    figures = printed_metrics(printed)
    # The printed figure is the written file's: the synthesis back in standardized units against the truth's
    scale = load_checkpoint(checkpoint)[1].target_intensity
    standardized_truth = preprocess_volume(truth, "report").standardization.apply(truth.data)
    assert figures[MetricScope.SOURCE][1] == pytest.approx(
        metrics.psnr(scale.apply(synth.data), standardized_truth), abs=0.01)
    # and better on every scope than the standardized source taken as the synthesis (G3: by 4.9-8.4 dB; an
    # untrained generator of its shape: 6.4 dB below it, MEDSYNTH_TEST_UNTRAINED=1)
    baseline = score_voxelwise(lambda x: x, source, truth)
    for scope, (mae, psnr, ssim) in figures.items():
        base = baseline[scope]
        assert psnr > base.psnr + 2 and mae < base.mae and ssim > base.ssim, (scope, figures[scope], base)
    # In the target's intensity scale: close to the truth's mean, not the source's standardized 0.
    assert abs(float(synth.data.mean()) - float(truth.data.mean())) < 0.25 * float(truth.data.std())
    names = sorted(p.name for p in maps.iterdir())
    assert names == ["synth_gradient_difference.nii.gz", "synth_spread.nii.gz", "synth_squared_error.nii.gz"]
    for name in names:
        written = load_volume(maps / name)
        assert written.data.shape == source.data.shape and written.data.min() >= 0
        np.testing.assert_allclose(written.affine, source.affine)


def test_wrong_direction_and_wrong_contrast(phantom, checkpoint, tmp_path, capsys):
    _, pd = phantom
    out = tmp_path / "x.nii.gz"
    assert main(["synthesize", str(pd), "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"medsynth: error: {pd.name} is a PD image, but the source of this generator must be T2"
    assert not out.exists()


@pytest.mark.parametrize(("name", "which", "looks"), [
    ("IXI012-HH-1211-T1.nii.gz", 0, "a T1 image (its name)"),
    ("subject_a.nii.gz", 1, "a PD image (its intensities)"),  # a PD given as the T2 source
    ("subject_b.nii.gz", 0, None),  # a T2 under a name that says nothing: no warning
])
def test_a_source_that_looks_like_another_contrast_is_a_one_line_warning(phantom, checkpoint, tmp_path, capsys,
                                                                          name, which, looks):
    source = tmp_path / name
    source.write_bytes(phantom[which].read_bytes())
    assert main(["synthesize", str(source), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o.nii.gz"),
                 "--grid", "report", "--stride", "32", "--device", "cpu"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ([f"medsynth: warning: {name} looks like {looks}, but the source of this generator is T2: "
                         "the synthesis goes on, check its input"] if looks else [])


@pytest.mark.parametrize("which", ["checkpoint", "source", "out-is-input", "maps-folder", "cuda"])
def test_bad_inputs_write_nothing(phantom, checkpoint, tmp_path, capsys, which):
    t2, _ = phantom
    args = {"source": str(t2), "checkpoint": str(checkpoint), "out": str(tmp_path / "o.nii.gz"), "device": "cpu"}
    if which == "checkpoint":
        broken = tmp_path / "broken.pt"
        broken.write_bytes(checkpoint.read_bytes()[:1000])
        args["checkpoint"], expected = str(broken), "broken.pt: not a readable checkpoint"
    elif which == "source":
        bad = tmp_path / "IXI009-HH-0001-T2.nii.gz"
        bad.write_bytes(t2.read_bytes()[:5000])
        args["source"], expected = str(bad), "IXI009-HH-0001-T2.nii.gz: the file is truncated or corrupt"
    elif which == "out-is-input":
        args["out"], expected = str(t2), "refusing to overwrite an input file"
    elif which == "maps-folder":
        (tmp_path / "a-file").write_text("x")
        args["maps"], expected = str(tmp_path / "a-file" / "maps"), "cannot write there"
    else:
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        args["device"], expected = "cuda", "sees no GPU"
    before = sorted(p.name for p in tmp_path.iterdir())
    maps = ["--maps", args["maps"]] if "maps" in args else []
    code = main(["synthesize", args["source"], "--checkpoint", args["checkpoint"], "--out", args["out"],
                 "--device", args["device"], *maps])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines() == [f"medsynth: error: {err.split('error: ', 1)[1].strip()}"]
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_preview_is_one_pass_of_the_generator_and_writes_no_spread(phantom, checkpoint, tmp_path, capsys):
    t2, pd = phantom
    out, maps = tmp_path / "preview.nii.gz", tmp_path / "maps"
    assert main(["synthesize", str(t2), "--checkpoint", str(checkpoint), "--out", str(out), "--target", str(pd),
                 "--preview", "--device", "cpu", "--maps", str(maps)]) == 0
    assert sorted(p.name for p in maps.iterdir()) == ["preview_gradient_difference.nii.gz",
                                                      "preview_squared_error.nii.gz"]
    generator, info = load_checkpoint(checkpoint)
    prepared = preprocess_volume(load_volume(t2), "native")
    expected = preview_volume(generator, prepared.data, device="cpu", stacks=3)
    assert expected.shape == (224, 224, 96)
    printed = printed_metrics(capsys.readouterr().out)["report"][1]
    truth = preprocess_volume(load_volume(pd), "report").data
    floor = info.target_intensity.apply(np.zeros(()))  # clipped at the target's 0 before the figures are taken
    assert printed == pytest.approx(metrics.psnr(np.maximum(stacks(expected)[1], floor), truth), abs=0.01)
