"""One definition of the training options and of the training events, shared by the trainer, both
CLIs' parsers, the training widget and ``reproduce``: a field added to TrainConfig shows in ``train --help``
and in the training dock."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import pytest

from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.fields import option
from napari_medsynth.core.training import config as config_module
from napari_medsynth.core.training.config import TrainConfig, config_from_args, train_argv
from napari_medsynth.core.training.events import EventLog, StartEvent, StepEvent, ValidationEvent
from src_train.cli import build_parser
from src_train.plan import PLAN, ReproduceConfig, plan_configs


def test_a_default_changed_in_the_one_definition_shows_in_the_cli_the_widget_and_reproduce(
        make_napari_viewer, monkeypatch, tmp_path):
    options = {f.name: f for f in fields(TrainConfig)}
    monkeypatch.setattr(options["lr"], "default", 5e-4)
    monkeypatch.setattr(options["batch_size"], "default", 5)  # (without a GPU the widget sizes width and epochs)
    monkeypatch.setattr(options["workers"], "default", 0)
    monkeypatch.setattr(options["lr_schedule"], "default", "cosine")

    train = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert (train.lr, train.lr_schedule, train.batch_size, train.workers) == (5e-4, "cosine", 5, 0)
    assert config_from_args(train).lr == 5e-4

    widget = TrainingWidget(make_napari_viewer())
    assert [widget.fields[name].value for name in ("lr", "batch_size", "workers")] == [5e-4, 5, 0]
    assert widget.options()["lr"] == "0.0005" and widget.options()["lr_schedule"] == "cosine"

    reproduce = build_parser().parse_args(["reproduce", "--data", "d", "--out", str(tmp_path)])
    configs = plan_configs(ReproduceConfig.from_args(reproduce))
    assert [c.out for c in configs] == [str(tmp_path / run.name) for run in PLAN]
    assert {(c.lr, c.lr_schedule, c.workers) for c in configs} == {(5e-4, "cosine", 0)}
    assert [c.epochs for c in configs] == [run.epochs for run in PLAN]  # the plan's own lengths


def test_an_added_field_shows_in_the_train_help_and_the_dock(make_napari_viewer, monkeypatch, capsys):
    @dataclass
    class Extended(TrainConfig):  # one more field, as a developer would add it
        label_smoothing: float = option(0.1, "soft targets for the discriminator", type=float,
                                        label="label smoothing", widget={"min": 0.0, "max": 0.5, "step": 0.05})

    monkeypatch.setattr(config_module, "TrainConfig", Extended)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "--label-smoothing LABEL_SMOOTHING soft targets for the discriminator (default 0.1)" in " ".join(
        capsys.readouterr().out.split())
    assert config_from_args(build_parser().parse_args(["train", "--data", "d", "--out", "o",
                                                       "--label-smoothing", "0.2"])).label_smoothing == 0.2

    widget = TrainingWidget(make_napari_viewer())
    field = widget.fields["label_smoothing"]
    assert (field.label, field.value, field.max) == ("label smoothing", 0.1, 0.5)
    assert list(widget.fields)[-1] == "label_smoothing"  # after the fields before it
    field.value = 0.25
    assert widget.options()["label_smoothing"] == "0.25"
    assert "--label-smoothing 0.25" in widget.command_line.value


def test_train_argv_is_the_command_the_cli_parses_back(tmp_path):
    argv = train_argv(data=tmp_path / "data", out=tmp_path / "run", direction="pd-t2", variant="G4",
                      residual=True, init=None, epochs=3, lr="0.001", workers=0, resume=False)
    assert argv == ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--direction", "pd-t2",
                    "--variant", "G4", "--residual", "--epochs", "3", "--lr", "0.001", "--workers", "0"]
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.direction, config.variant, config.residual, config.epochs) == ("pd-t2", "G4", True, 3)
    assert config.lr == 1e-3
    assert config.data == str(tmp_path / "data")
    with pytest.raises(MedSynthError, match="no option --bogus"):
        train_argv(data="d", out="o", bogus=1)
    with pytest.raises(MedSynthError, match="invalid choice: 'G9'"):
        train_argv(data="d", out="o", variant="G9")
    with pytest.raises(MedSynthError, match="required: --out"):
        train_argv(data="d")
    with pytest.raises(MedSynthError, match="use --batch-size 2 or more"):
        train_argv(data="d", out="o", variant="G2", batch_size=1)


def test_train_argv_round_trips_every_option_the_command_line_has(tmp_path):
    """Each field away from its default (a bool on by default as --no-NAME) comes back the same."""
    from dataclasses import MISSING, asdict, fields

    changed = {"data": str(tmp_path / "d"), "out": str(tmp_path / "o"), "direction": "pd-t2", "variant": "G4",
               "init": "g3.pt", "lr_schedule": "cosine", "width": 0.25, "discriminator_width": 0.5, "val_stride": 16,
               "device": "cpu", "reduction": "mean", "cache": str(tmp_path / "c"), "engine": "fft",
               "randomize_only": "bias_field", "lr": 0.003}
    for field in fields(TrainConfig):
        if field.name in changed or not field.metadata["cli"]:
            continue
        default = field.default
        assert default is not MISSING, field.name
        changed[field.name] = (not default if isinstance(default, bool) else
                               default + 1 if isinstance(default, int) else default * 0.5)
    expected = TrainConfig(**changed)
    cli = {f.name for f in fields(TrainConfig) if f.metadata["cli"]}
    argv = train_argv(**{k: v for k, v in asdict(expected).items() if k in cli})
    assert "--no-amp" in argv and "--randomize" in argv and "--all-stacks" in argv
    back = config_from_args(build_parser().parse_args(argv))
    back, expected = ({k: v for k, v in asdict(c).items() if k in cli} for c in (back, expected))
    assert back == expected


def test_event_log_round_trips_typed_events_and_waits_for_complete_lines(tmp_path):
    log, reader = EventLog(tmp_path), EventLog(tmp_path)
    assert reader.read_new() == []
    start = StartEvent(epochs=2, steps=7, epoch=0, train_subjects=1, validation_subjects=1, world_size=1,
                       device="cpu", variant="G3", direction="t2-pd")
    log.append(start)
    step = StepEvent(epoch=1, step=10, steps=7, loss_g=0.5, loss_d=1.3, loss_rec=0.4, loss_adv=0.7, loss_gdl=0.1)
    line = json.dumps({"kind": "step", "time": 0.0, **vars(step)})
    with open(log.path, "a") as handle:  # a line still being written
        handle.write(line[:20])
    assert reader.read_new() == [start]
    with open(log.path, "a") as handle:
        handle.write(line[20:] + "\nnot json\n" + json.dumps({"kind": "from-a-newer-version"}) + "\n")
    assert reader.read_new() == [step]
    validation = ValidationEvent(epoch=1, mae=0.1, psnr=25.0, ssim=0.8, mae_std=0.0, psnr_std=0.0, ssim_std=0.0,
                                 best=True, best_epoch=1, seconds=3.0, losses={"loss_g": 0.5},
                                 throughput={"patches": 49})
    log.append(validation)
    assert reader.read_new() == [validation] and reader.read_new() == []
