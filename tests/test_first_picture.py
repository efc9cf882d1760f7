"""The first picture comes before anything else: in the dock, in core's stages, on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_widgets import open_phantom_subject, runs, synthesis_widget, tiny_checkpoint  # noqa: F401 (fixtures)

from napari_medsynth.cli import main
from napari_medsynth.core.choices import Stage
from napari_medsynth.core.evaluation import metrics
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.synthesis.job import SynthesisJob
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import synthesize


def _stages(job, **kwargs):
    """``job``'s stages, and a copy of each one's synthesis taken as it is yielded: before the next stage (its
    scoring among them) runs, so that an assertion that scoring changes no voxel compares two arrays."""
    stages, pictures = [], []
    for result in job.stages(**kwargs):
        stages.append(result)
        pictures.append(result.synthesis.copy())
    return stages, pictures


def test_the_stages_come_picture_first_and_end_with_the_synthesis_itself(phantom_dir, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "g.pt")
    t2 = load_volume(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz")
    pd = load_volume(phantom_dir / "IXI001-Phantom-0001-PD.nii.gz")
    options = SynthesisOptions(grid="native", stride=24, device="cpu")
    stages, pictures = _stages(SynthesisJob.load(t2, load_checkpoint(checkpoint), options, target=pd))
    assert [(r.stage, r.metrics is not None) for r in stages] == [
        (Stage.FIRST_PICTURE, False),  # one pass on the report grid: a third of the work, no figures
        (Stage.PREVIEW, False), (Stage.PREVIEW, True),  # the native grid's pass, then its figures
        (Stage.REFINED, False), (Stage.REFINED, True)]  # the patch average, then its figures
    assert [r.final for r in stages] == [False, False, False, False, True]  # the last is the finished one
    assert stages[0].options.grid == "report" and stages[1].options.grid == "native"
    assert all(r.synthesis.shape == t2.data.shape for r in stages)
    np.testing.assert_array_equal(stages[2].synthesis, pictures[1])  # figures change no voxel
    np.testing.assert_array_equal(stages[4].synthesis, pictures[3])
    for result, picture in zip(stages, pictures):  # nor does a later stage change an earlier picture
        np.testing.assert_array_equal(result.synthesis, picture)
    # at a stride without overlap the patch average would only add seams: the preview is the finished result
    seamless, seamless_pictures = _stages(SynthesisJob.load(t2, checkpoint, options.replace(stride=32), target=pd))
    assert [(r.stage, r.final) for r in seamless] == [
        (Stage.FIRST_PICTURE, False), (Stage.PREVIEW, False), (Stage.PREVIEW, True)]
    np.testing.assert_array_equal(seamless[-1].synthesis, seamless_pictures[1])
    np.testing.assert_allclose(seamless[-1].synthesis, pictures[1])  # the preview of the first run, before scoring
    report = options.replace(grid="report", stride=32)
    staged = list(SynthesisJob.load(t2, checkpoint, report, target=pd).stages(preview_first=False))
    assert [r.stage for r in staged] == [Stage.REFINED, Stage.REFINED]
    single = synthesize(t2, checkpoint, report, target=pd)  # the last stage is the synthesis itself
    np.testing.assert_allclose(staged[-1].synthesis, single.synthesis, atol=1e-5)
    assert abs(staged[-1].metrics.source.psnr - single.metrics.source.psnr) < 1e-4


def test_the_command_line_preview_writes_the_picture_before_its_figures(phantom_dir, tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "g.pt")  # untrained: this tests the plumbing, not the figures' level
    out = tmp_path / "out" / "synth.nii.gz"
    assert main(["synthesize", str(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz"), "--checkpoint", str(checkpoint),
                 "--target", str(phantom_dir / "IXI001-Phantom-0001-PD.nii.gz"), "--out", str(out), "--preview",
                 "--device", "cpu", "--maps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {out} (the one-pass preview; its figures follow)"
    assert any(line.startswith("whole volume") or "MAE" in line for line in lines[1:])
    sidecar = json.loads(out.with_name("synth.json").read_text())
    assert sidecar["options"]["preview"] is True
    # the sidecar's figure is the written picture's (back in standardized units) against the truth's
    truth = load_volume(phantom_dir / "IXI001-Phantom-0001-PD.nii.gz")
    standardized_truth = preprocess_volume(truth, "report").standardization.apply(truth.data)
    written = load_checkpoint(checkpoint)[1].target_intensity.apply(load_volume(out).data)
    assert sidecar["metrics"]["source"]["psnr"] == pytest.approx(metrics.psnr(written, standardized_truth), abs=0.01)
    assert (out.parent / "synth_squared_error.nii.gz").is_file()


def test_the_first_picture_is_on_screen_before_the_figures_and_stays_when_cancelled(make_napari_viewer, qtbot,
                                                                                      runs, phantom_dir):  # noqa: F811
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer()
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot, stride=32, grid="native")
    widget.configure(generator=checkpoint, preview_first=True)
    seen = []  # ("layer", name) and ("status", line), in the order the user sees them
    viewer.layers.events.inserted.connect(lambda event: seen.append(("layer", event.value.name)))
    widget.status_changed.connect(lambda line: seen.append(("status", line)))
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    first = seen.index(("layer", "IXI001 PD synth [G3 preview]"))
    figures = next(i for i, (kind, text) in enumerate(seen) if kind == "status" and "MAE" in text)
    assert first < figures
    assert seen[first + 1][1].startswith("IXI001 PD synth [G3 preview]: first picture (one pass on the report grid)")
    assert "MAE" in widget.status and "IXI001 PD synth [G3 preview]" not in viewer.layers  # refined replaced it



def test_cancelling_during_the_first_picture_keeps_it_on_screen(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                 phantom_dir):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer()
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot, stride=32, grid="native")
    widget.configure(generator=checkpoint, preview_first=True)
    cancel_once = []

    def cancel_at_first_picture(event):
        if event.value.name == "IXI001 PD synth [G3 preview]" and not cancel_once:
            cancel_once.append(True)
            widget.cancel()

    viewer.layers.events.inserted.connect(cancel_at_first_picture)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert cancel_once and "IXI001 PD synth [G3 preview]" in viewer.layers
    assert viewer.layers["IXI001 PD synth [G3 preview]"].data.shape == viewer.layers["IXI001 T2"].data.shape
    assert "only the one-pass preview is left" in widget.status


def test_the_demo_starts_once_its_window_has_painted(make_napari_viewer, qtbot):
    from napari_medsynth.demo import open_demo_viewer

    viewer = make_napari_viewer(show=True)
    options = SynthesisOptions(grid="report", stride=32, device="cpu")
    _, widget = open_demo_viewer(viewer, options=options, when_shown=True)
    assert widget.worker is None  # nothing competes with napari for the window's first paint
    qtbot.waitUntil(lambda: widget.worker is not None, timeout=30_000)  # once it has painted
    widget.cancel()  # (what follows is the dock's, tested on its own)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
