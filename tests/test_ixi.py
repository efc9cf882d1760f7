"""Finding IXI T2/PD pairs."""

from __future__ import annotations

import pytest

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.ixi import find_ixi_pairs, ixi_name, partner_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_flat_folder(tmp_path):
    for name in [
        "IXI002-Guys-0828-T2.nii.gz",
        "IXI002-Guys-0828-PD.nii.gz",
        "IXI012-HH-1211-T2.nii.gz",
        "IXI013-IOP-0878-PD.nii.gz",
        "IXI014-HH-1236-T1.nii.gz",
        "notes.txt",
    ]:
        _touch(tmp_path / name)
    scan = find_ixi_pairs(tmp_path)
    assert [p.subject for p in scan.pairs] == ["IXI002-Guys-0828"]
    assert scan.pairs[0].t2.name == "IXI002-Guys-0828-T2.nii.gz"
    assert scan.pairs[0].path("PD").name == "IXI002-Guys-0828-PD.nii.gz"
    assert sorted(p.name for p in scan.unpaired) == [
        "IXI012-HH-1211-T2.nii.gz",
        "IXI013-IOP-0878-PD.nii.gz",
    ]
    assert scan.summary().startswith("1 T2/PD pairs in ")
    assert "2 files without a partner" in scan.summary()


def test_ixi_subfolders(tmp_path):
    for n in (2, 12, 13):
        _touch(tmp_path / "T2" / f"IXI{n:03d}-HH-{1000 + n}-T2.nii.gz")
        _touch(tmp_path / "PD" / f"IXI{n:03d}-HH-{1000 + n}-PD.nii.gz")
    scan = find_ixi_pairs(tmp_path)
    assert len(scan.pairs) == 3 and not scan.unpaired
    assert scan.pairs[1].t2.parent.name == "T2"
    assert partner_path(scan.pairs[1].t2) == scan.pairs[1].pd
    assert partner_path(scan.pairs[1].pd) == scan.pairs[1].t2


def test_duplicates_are_reported(tmp_path):
    _touch(tmp_path / "IXI002-Guys-0828-T2.nii.gz")
    _touch(tmp_path / "IXI002-Guys-0828-PD.nii.gz")
    _touch(tmp_path / "copy" / "IXI002-Guys-0828-T2.nii.gz")
    scan = find_ixi_pairs(tmp_path)
    assert len(scan.pairs) == 1 and len(scan.duplicates) == 1


def test_names():
    assert ixi_name("x/IXI002-Guys-0828-T2.nii.gz") == ("IXI002-Guys-0828", "T2")
    assert ixi_name("IXI002-Guys-0828-pd.nii") == ("IXI002-Guys-0828", "PD")
    assert ixi_name("IXI002-Guys-0828-T1.nii.gz") is None
    assert ixi_name("brain.nii.gz") is None


def test_partner_missing(tmp_path):
    assert partner_path(_touch(tmp_path / "IXI002-Guys-0828-T2.nii.gz")) is None


def test_missing_folder(tmp_path):
    with pytest.raises(MedSynthError, match="no such folder"):
        find_ixi_pairs(tmp_path / "nope")
