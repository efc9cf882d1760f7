"""Native-resolution synthesis: every slice synthesized, figures and maps on the source's grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_medsynth import Generator, save_checkpoint
from napari_medsynth.cli import main
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.evaluation.baselines import QuantileIntensityMapping
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume, to_source_grid
from napari_medsynth.core.simulation.phantom import make_phantom_pair
from napari_medsynth.core.synthesis.catalog import bundled_generators
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import score_voxelwise, synthesize
from napari_medsynth.core.synthesis.reconstruct import reconstruct_volume


def _zscore(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    return (data - data.mean()) / data.std()


def _identity_checkpoint(path, direction: str):
    """A residual generator whose last convolution is zero: its output is its input."""
    generator = Generator(residual=True, width=0.0625)
    with torch.no_grad():
        generator.layers[-1].weight.zero_()
    return save_checkpoint(path, generator, direction=direction, variant="G1",
                           target_intensity={"mean": 100.0, "std": 40.0})


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    folder = tmp_path_factory.mktemp("identity")
    return {contrast: _identity_checkpoint(folder / f"{contrast}.pt", direction)
            for contrast, direction in (("T2", "t2-pd"), ("PD", "pd-t2"))}


def _round_trip(source, checkpoint, out, grid) -> np.ndarray:
    """The z-scored difference between the synthesis of ``checkpoint`` and ``source`` itself."""
    assert main(["synthesize", str(source), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--stride", "32", "--device", "cpu", "--grid", grid]) == 0
    written, original = load_volume(out), load_volume(source)
    np.testing.assert_allclose(written.affine, original.affine)
    return _zscore(written.data) - _zscore(original.data)


def test_an_identity_residual_generator_gives_the_source_back_on_its_own_grid(phantom_dir, identities, tmp_path):
    """A residual generator's native-grid synthesis is the source plus its resampled residual: with a zero
    residual, the source itself, without the 224 x 224 x 96 round trip's smoothing. The report grid keeps the
    report's pipeline, round trip and all (the ceiling it puts on a plain generator: tests/test_preprocess.py)."""
    for contrast, checkpoint in identities.items():
        source = sorted(phantom_dir.glob(f"*-{contrast}.nii.gz"))[0]
        assert np.abs(_round_trip(source, checkpoint, tmp_path / f"{contrast}.nii", "native")).max() < 1e-3
        report = _round_trip(source, checkpoint, tmp_path / "r.nii", "report")
        assert np.sqrt(np.mean(report**2)) > 0.05  # in the source's standard deviations


def test_report_grid_is_the_report_pipeline_unchanged(phantom_dir, identities, tmp_path):
    """``--grid report``: preprocess one slice in three, patch average, linear back: exactly."""
    source = sorted(phantom_dir.glob("*-T2.nii.gz"))[0]
    generator = Generator(width=0.0625).eval()
    torch.manual_seed(3)
    for parameter in generator.parameters():
        parameter.data.normal_(0, 0.1)
    checkpoint = save_checkpoint(tmp_path / "g.pt", generator, direction="t2-pd", variant="G1",
                                 target_intensity={"mean": 100.0, "std": 40.0})
    out = tmp_path / "report.nii.gz"
    assert main(["synthesize", str(source), "--checkpoint", str(checkpoint), "--out", str(out), "--stride", "32",
                 "--device", "cpu", "--grid", "report"]) == 0
    generator, info = load_checkpoint(checkpoint)
    prepared = preprocess_volume(load_volume(source))
    expected = info.target_intensity.invert(
        to_source_grid(reconstruct_volume(generator, prepared.data, stride=32, device="cpu"), prepared)
    )
    np.testing.assert_array_equal(load_volume(out).data, expected)


def test_figures_and_maps_lie_on_the_source_grid(phantom_dir, identities):
    source = load_volume(sorted(phantom_dir.glob("*-T2.nii.gz"))[0])
    truth = load_volume(sorted(phantom_dir.glob("*-PD.nii.gz"))[0])
    generator, info = load_checkpoint(identities["T2"])
    result = synthesize(source, (generator, info), SynthesisOptions(stride=32, spread=True, device="cpu"), target=truth)
    assert result.options.grid == "native" and result.standardized.shape == (224, 224, 96)
    assert set(result.metrics.as_dict()) == {"source", "head", "report"}
    for name in ("squared_error", "gradient_difference"):
        assert result.maps[name].shape == source.data.shape
    assert result.spread is None  # 32^3 patches at stride 32 do not overlap: no spread map, not a zero one
    # identity: the figures equal the standardized-source baseline's
    baseline = score_voxelwise(lambda x: x, source, truth)
    # (up to the native grid's standardization over all 96 slices instead of the report's 32)
    assert result.metrics["report"].psnr == pytest.approx(baseline["report"].psnr, abs=0.03)
    # on the source grid the identity differs from the source only by the resampling round trip (on this
    # coarse 128 x 128 x 65 grid its smoothing of the noise even gains about 1 dB against the other contrast)
    assert result.metrics["source"].psnr == pytest.approx(baseline["source"].psnr, abs=1.5)
    # an all-ones mask gives the whole-volume figures
    ones = synthesize(source, (generator, info), SynthesisOptions(stride=32, device="cpu"), target=truth,
                      mask=np.ones(source.data.shape, bool))
    assert ones.metrics["head"].mae == pytest.approx(ones.metrics["source"].mae)
    assert ones.metrics["head"].psnr == pytest.approx(ones.metrics["source"].psnr)
    with pytest.raises(MedSynthError, match="must lie on the volume's grid"):
        synthesize(source, (generator, info), SynthesisOptions(preview=True, device="cpu"), target=truth,
                   mask=np.ones((4, 4, 4)))


def test_bundled_t2_pd_g4_rl_beats_the_intensity_mapping_on_the_source_grid():
    """Held-out phantom subject (seed 0, no training run used it); mapping fitted on another subject.
    G4+RL: the bundled T2->PD generator furthest above the mapping on held-out subjects (docs/demo_generators.md)."""
    source, truth = make_phantom_pair(seed=0)
    other_t2, other_pd = make_phantom_pair(seed=7)
    mapping = QuantileIntensityMapping().fit(preprocess_volume(other_t2).data, preprocess_volume(other_pd).data)
    (entry,) = [e for e in bundled_generators("t2-pd") if e.info.label == "G4+RL"]
    generator, info = load_checkpoint(entry.path)
    # stride 32 (patches side by side, no averaging): the harder case, and half the time of stride 16
    ours = synthesize(source, (generator, info), SynthesisOptions(stride=32, device="cpu"), target=truth).metrics
    lookup = score_voxelwise(mapping.predict, source, truth)
    for scope in ("source", "head"):
        assert ours[scope].psnr > lookup[scope].psnr, (scope, ours[scope], lookup[scope])
