"""Qt-free glue behind the widgets: the generator catalog, the events tail and the train command."""

from __future__ import annotations

import json

import pytest

from napari_medsynth.core.catalog import describe, find_generators
from napari_medsynth.core.checkpoint import save_checkpoint
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.models import Generator
from src_train.cli import build_parser, config_from_args, train_argv
from src_train.events import EventLog


def test_find_generators_lists_readable_best_checkpoints_of_one_direction(tmp_path):
    for name, direction, variant, residual in [("a-G4", "t2-pd", "G4", False), ("b-G1", "t2-pd", "G1", False),
                                               ("c-G4+RL", "pd-t2", "G4", True)]:
        save_checkpoint(tmp_path / name / "best.pt", Generator(residual=residual, width=0.0625),
                        direction=direction, variant=variant, best_epoch=3, val_psnr=31.234)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "best.pt").write_bytes(b"\x00 truncated")
    save_checkpoint(tmp_path / "a-G4" / "last.pt", Generator(width=0.0625), direction="t2-pd", variant="G4")

    t2_pd = find_generators(tmp_path, "T2->PD")
    assert [(e.path.parent.name, e.info.label) for e in t2_pd] == [("b-G1", "G1"), ("a-G4", "G4")]
    assert t2_pd[1].title == "G4  a-G4/best.pt" and t2_pd[1].origin == "run"
    (pd_t2,) = find_generators(tmp_path, "pd-t2")
    assert pd_t2.info.label == "G4+RL"
    assert describe(pd_t2).startswith("PD->T2 G4+RL, width 0.0625, best epoch 3, validation PSNR 31.23 dB")
    assert find_generators(tmp_path / "missing") == [] and find_generators(None) == []


def test_event_log_returns_complete_new_lines_only(tmp_path):
    log = EventLog(tmp_path)
    assert log.read_new() == []
    path = tmp_path / "events.jsonl"
    first = json.dumps({"event": "start", "epochs": 2})
    path.write_text(first + "\n" + '{"event": "st')
    assert log.read_new() == [{"event": "start", "epochs": 2}]
    with open(path, "a") as handle:
        handle.write('ep", "step": 10}\nnot json\n')
    assert log.read_new() == [{"event": "step", "step": 10}]
    assert log.read_new() == []


def test_train_argv_is_the_command_the_cli_parses_back(tmp_path):
    argv = train_argv(data=tmp_path / "data", out=tmp_path / "run", direction="pd-t2", variant="G4",
                      residual=True, init=None, epochs=3, lr="0.001", workers=0, resume=False)
    assert argv == ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--direction", "pd-t2",
                    "--variant", "G4", "--residual", "--epochs", "3", "--lr", "0.001", "--workers", "0"]
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.direction, config.variant, config.residual, config.epochs, config.lr) == ("pd-t2", "G4", True, 3, 1e-3)
    with pytest.raises(MedSynthError, match="no option --bogus"):
        train_argv(data="d", out="o", bogus=1)
    with pytest.raises(MedSynthError, match="invalid choice: 'G9'"):
        train_argv(data="d", out="o", variant="G9")
    with pytest.raises(MedSynthError, match="required: --out"):
        train_argv(data="d")
