"""The generator catalog behind the synthesis widget, the demo and the CLI."""

from __future__ import annotations

from pathlib import Path

import napari_medsynth
from napari_medsynth.core.networks.checkpoint import save_checkpoint
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.synthesis.catalog import bundled_generators, describe, find_generators


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


def test_the_installed_package_with_its_seven_generators_stays_under_50_mb():
    """Issue 13: the demo generators must not make the plugin slow to install (the wheel: 8.4 MB)."""
    package = Path(napari_medsynth.__file__).parent
    size = sum(p.stat().st_size for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert len(bundled_generators()) == 7
    assert sum(e.path.stat().st_size for e in bundled_generators()) > 1e6  # real weights, not pointers
    assert size < 50e6
