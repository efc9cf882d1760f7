"""Self-describing checkpoints: round trip, and every way a file can be wrong."""

from __future__ import annotations

import pytest
import torch

from napari_medsynth import Discriminator, Generator, load_checkpoint, save_checkpoint
from napari_medsynth.core.choices import parse_direction
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.networks.checkpoint import checkpoint_payload, write_atomically


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    generator = Generator(residual=True, width=0.125)
    generator.layers[1].running_mean.fill_(0.3)
    path = save_checkpoint(
        tmp_path / "g4.pt", generator, direction="PD->T2", variant="g4",
        data_set="phantom x4", epochs=3, best_epoch=2, val_mae=0.12, val_psnr=27.5,
        target_intensity={"mean": 410.0, "std": 305.0},
    )
    return path, generator


def test_round_trip_keeps_weights_and_description(saved):
    path, generator = saved
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert (info.direction, info.variant, info.width, info.residual, info.patch) == ("pd-t2", "G4", 0.125, True, 32)
    assert (info.source_contrast, info.target_contrast, info.label) == ("PD", "T2", "G4+RL")
    assert info.provenance["best_epoch"] == 2 and info.provenance["data_set"] == "phantom x4"
    assert info.target_intensity.mean == 410.0 and info.target_intensity.std == 305.0
    assert info.preprocessing["resampled_shape"] == [224, 224, 96]
    assert info.format_version == 1
    # Nothing but plain data in the file: it loads with weights_only=True.
    assert torch.load(path, weights_only=True)["variant"] == "G4"


def test_the_other_direction_is_refused(saved):
    path, _ = saved
    load_checkpoint(path, direction="pd-t2")
    with pytest.raises(MedSynthError, match="g4.pt: a PD->T2 generator, but T2->PD was asked for"):
        load_checkpoint(path, direction="t2-pd")


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MedSynthError, match="g4.pt: not a readable checkpoint, truncated or not a torch file"):
        load_checkpoint(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(MedSynthError, match="notes.pt: not a readable checkpoint"):
        load_checkpoint(path)


def test_a_plain_state_dict_of_another_model(tmp_path):
    path = tmp_path / "discriminator.pt"
    torch.save(Discriminator().state_dict(), path)
    with pytest.raises(MedSynthError, match="discriminator.pt: not a napari-medsynth generator checkpoint"):
        load_checkpoint(path)


def test_weights_of_another_architecture(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["architecture"]["width"] = 0.25
    torch.save(payload, path)
    with pytest.raises(MedSynthError,
                       match=r"g4.pt: the weights do not fit the width-0.25 generator it describes \(.*size mismatch"):
        load_checkpoint(path)
    payload["architecture"] = {"name": "unet", "width": 1.0, "residual": False}
    torch.save(payload, path)
    with pytest.raises(MedSynthError, match="holds a 'unet' model"):
        load_checkpoint(path)


def test_a_pickled_object_is_never_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-medsynth-generator", "payload": Generator(width=0.0625)}, path)
    with pytest.raises(MedSynthError, match="evil.pt: refused: it holds Python objects that would run code"):
        load_checkpoint(path)


def test_newer_format_is_refused(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(MedSynthError, match="format 99 is newer"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(MedSynthError, match="nope.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_bad_descriptions_are_refused():
    generator = Generator(width=0.0625)
    with pytest.raises(MedSynthError, match="unknown direction 'T1->T2'"):
        checkpoint_payload(generator, direction="T1->T2", variant="G1")
    with pytest.raises(MedSynthError, match="unknown variant 'G9'"):
        checkpoint_payload(generator, direction="t2-pd", variant="G9")
    with pytest.raises(TypeError, match="plain values"):
        checkpoint_payload(generator, direction="t2-pd", variant="G1", config=object())
    assert parse_direction("T2_PD") == parse_direction("t2->pd") == "t2-pd"


def test_unwritable_folder_and_no_partial_file(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MedSynthError, match="cannot write there"):
        save_checkpoint(blocker / "g.pt", Generator(width=0.0625), direction="t2-pd", variant="G1")

    def interrupted(payload, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "out" / "g.pt", {"a": 1})
    assert list((tmp_path / "out").iterdir()) == []


def test_the_training_record_reads_old_and_new_provenance_the_same_way():
    from napari_medsynth.core.networks.checkpoint import RECORD_VERSION, TrainingRecord

    old = {"data_set": "phantom10", "best_epoch": 7, "val_psnr": 29.5, "target_intensity": {"mean": 1.0, "std": 2.0},
           "recipe_note": "kept"}  # a file written before the record had a version
    record = TrainingRecord.from_dict(old)
    assert (record.best_epoch, record.val_psnr, record.origin, record.other) == (7, 29.5, "phantom10",
                                                                                  {"recipe_note": "kept"})
    written = record.as_dict()
    assert written["record_version"] == RECORD_VERSION and written["recipe_note"] == "kept"
    assert TrainingRecord.from_dict(written) == record
    assert TrainingRecord.from_dict(None).origin == "not recorded"
