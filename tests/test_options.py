"""One definition of a synthesis' options: a field added to SynthesisOptions shows in every command's
help, in the dock's form and in the sidecar; a bad value is refused in one line."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from test_widgets import tiny_checkpoint

from napari_medsynth.cli import main
from napari_medsynth.core.choices import Engine, Grid
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.synthesis import options as options_module
from napari_medsynth.core.synthesis.options import SynthesisOptions, option
from src_train.cli import main as train_main


@pytest.fixture
def extended(monkeypatch):
    """SynthesisOptions with one more field, as a developer would add it."""

    @dataclass(frozen=True)
    class Extended(SynthesisOptions):
        sharpen: float = option(0.25, "unsharp-mask amount applied to the synthesis", label="sharpening")

    monkeypatch.setattr(options_module, "SynthesisOptions", Extended)
    return Extended


def help_of(command, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        command([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_an_added_field_shows_in_every_help_the_form_and_the_sidecar(extended, make_napari_viewer, capsys,
                                                                       tmp_path, ixi_pair):
    for command, argv in ((main, ["synthesize"]), (main, ["demo"]), (main, ["compare"]), (train_main, ["evaluate"])):
        text = " ".join(help_of(command, argv, capsys).split())
        assert "--sharpen SHARPEN unsharp-mask amount applied to the synthesis" in text, (argv, text)

    from napari_medsynth._widgets.synthesis import SynthesisWidget

    widget = SynthesisWidget(make_napari_viewer())
    field = widget.form.options["sharpen"]
    assert field.label == "sharpening" and field.value == 0.25 and "unsharp-mask" in field.tooltip
    field.value = 0.5
    assert widget.options().sharpen == 0.5

    t2, _ = ixi_pair
    checkpoint = tiny_checkpoint(tmp_path / "g.pt")
    out = tmp_path / "out" / "synth.nii.gz"
    assert main(["synthesize", str(t2), "--checkpoint", str(checkpoint), "--out", str(out), "--grid", "report",
                 "--stride", "32", "--sharpen", "0.75"]) == 0
    sidecar = json.loads(out.with_name("synth.json").read_text())
    assert sidecar["options"]["sharpen"] == 0.75
    assert sidecar["options"]["grid"] == "report" and sidecar["options"]["stride"] == 32


def test_options_are_validated_and_round_trip_through_json():
    options = SynthesisOptions(grid="report", stride="16", engine="fft", device="CUDA:1", batch_size=4)
    assert options.grid is Grid.REPORT and options.stride == 16 and options.engine is Engine.FFT
    assert options.device == "cuda:1"
    record = json.loads(json.dumps(options.record()))
    assert record["grid"] == "report" and SynthesisOptions.from_record(record) == options
    for bad, message in (({"stride": 0}, "the stride must be a whole number of at least 1, got 0"),
                         ({"grid": "fine"}, "unknown grid 'fine'; use native, report"),
                         ({"engine": "gpu"}, "unknown engine 'gpu'; use auto, direct, fft"),
                         ({"batch_size": -2}, "the batch size must be a whole number of at least 1, got -2"),
                         ({"spread": "yes"}, "spread must be true or false, got 'yes'")):
        with pytest.raises(MedSynthError) as error:
            SynthesisOptions(**bad)
        assert str(error.value) == message


def test_the_maps_are_one_field_with_one_default_on_the_command_line_and_in_the_dock(make_napari_viewer):
    from napari_medsynth._widgets.synthesis import SynthesisWidget
    from napari_medsynth.cli import build_parser
    from napari_medsynth.core.synthesis.options import options_from_args

    assert SynthesisOptions().maps is False
    assert SynthesisWidget(make_napari_viewer()).options().maps is False
    base = ["synthesize", "t2.nii.gz", "--checkpoint", "g.pt", "--out", "o.nii.gz"]
    assert [options_from_args(build_parser().parse_args(base + extra)).maps
            for extra in ([], ["--maps"], ["--maps", "maps_dir"])] == [False, True, True]
    # a synthesis written to files computes no spread map it does not write
    assert SynthesisOptions().for_files().spread is False
    assert SynthesisOptions(maps=True).for_files().spread is True
