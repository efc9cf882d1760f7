"""Scan identity from any file name, and the T2/PD pairs of IXI folders and BIDS datasets."""

from __future__ import annotations

import pytest

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.scans import find_pairs, partner_path, scan_name


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_flat_ixi_folder(tmp_path):
    for name in [
        "IXI002-Guys-0828-T2.nii.gz",
        "IXI002-Guys-0828-PD.nii.gz",
        "IXI012-HH-1211-T2.nii.gz",
        "IXI013-IOP-0878-PD.nii.gz",
        "IXI014-HH-1236-T1.nii.gz",
        "notes.txt",
    ]:
        _touch(tmp_path / name)
    scan = find_pairs(tmp_path)
    assert scan.scheme == "ixi" and not scan.dataset
    assert [p.subject for p in scan.pairs] == ["IXI002-Guys-0828"]
    assert scan.pairs[0].t2.name == "IXI002-Guys-0828-T2.nii.gz"
    assert scan.pairs[0].path("PD").name == "IXI002-Guys-0828-PD.nii.gz"
    assert sorted(p.name for p in scan.unpaired) == [
        "IXI012-HH-1211-T2.nii.gz",
        "IXI013-IOP-0878-PD.nii.gz",
    ]
    assert [p.name for p in scan.sources("T2")] == ["IXI002-Guys-0828-T2.nii.gz", "IXI012-HH-1211-T2.nii.gz"]
    assert scan.summary().startswith("1 T2/PD pairs in the folder ")
    assert "2 files without a partner" in scan.summary()


def test_ixi_subfolders(tmp_path):
    for n in (2, 12, 13):
        _touch(tmp_path / "T2" / f"IXI{n:03d}-HH-{1000 + n}-T2.nii.gz")
        _touch(tmp_path / "PD" / f"IXI{n:03d}-HH-{1000 + n}-PD.nii.gz")
    scan = find_pairs(tmp_path)
    assert len(scan.pairs) == 3 and not scan.unpaired
    assert scan.pairs[1].t2.parent.name == "T2"
    assert partner_path(scan.pairs[1].t2) == scan.pairs[1].pd
    assert partner_path(scan.pairs[1].pd) == scan.pairs[1].t2


def test_duplicates_are_reported(tmp_path):
    _touch(tmp_path / "IXI002-Guys-0828-T2.nii.gz")
    _touch(tmp_path / "IXI002-Guys-0828-PD.nii.gz")
    _touch(tmp_path / "copy" / "IXI002-Guys-0828-T2.nii.gz")
    scan = find_pairs(tmp_path)
    assert len(scan.pairs) == 1 and len(scan.duplicates) == 1


@pytest.mark.parametrize(("name", "scheme", "subject", "contrast", "label"), [
    ("x/IXI002-Guys-0828-T2.nii.gz", "ixi", "IXI002-Guys-0828", "T2", "IXI002"),
    ("IXI002-Guys-0828-pd.nii", "ixi", "IXI002-Guys-0828", "PD", "IXI002"),
    ("IXI002-Guys-0828-T1.nii.gz", "ixi", "IXI002-Guys-0828", "T1", "IXI002"),
    ("sub-01_T2w.nii.gz", "bids", "sub-01", "T2", "sub-01"),
    ("sub-01_ses-pre_acq-tse_run-2_PDw.nii.gz", "bids", "sub-01_ses-pre_acq-tse_run-2", "PD",
     "sub-01_ses-pre_acq-tse_run-2"),
    ("sub-01_PD.nii", "bids", "sub-01", "PD", "sub-01"),
    ("sub-A_ses-1_T1w.nii.gz", "bids", "sub-A_ses-1", "T1", "sub-A_ses-1"),
    ("sub-01_FLAIR.nii.gz", "bids", "sub-01", "FLAIR", "sub-01"),
    ("sub-01_bold.nii.gz", "bids", "sub-01", None, "sub-01"),
    ("case7_t2.nii.gz", "other", "case7", "T2", "case7"),
    ("Case7-PD-weighted.nii", "other", "Case7", "PD", "Case7"),
    ("patient 3 T2W axial.nii.gz", "other", "patient_3_axial", "T2", "patient_3_axial"),
    ("brain.nii.gz", "other", "brain", None, "brain"),
    ("t1_t2_ratio.nii.gz", "other", "t1_t2_ratio", None, "t1_t2_ratio"),
])
def test_every_name_has_an_identity(name, scheme, subject, contrast, label):
    parsed = scan_name(name)
    assert (parsed.scheme, parsed.subject, parsed.contrast, parsed.label) == (scheme, subject, contrast, label)


def test_two_bids_subjects_have_two_identities():
    first, second = scan_name("sub-01_T2w.nii.gz"), scan_name("sub-02_T2w.nii.gz")
    assert first.label != second.label
    assert scan_name("sub-01_ses-2_T2w.nii.gz").participant == "sub-01"
    assert scan_name("sub-01_ses-2_T2w.nii.gz").entity("ses") == "2"


def test_partner_missing(tmp_path):
    assert partner_path(_touch(tmp_path / "IXI002-Guys-0828-T2.nii.gz")) is None


def test_partners_beside_bids_and_other_names(tmp_path):
    t2 = _touch(tmp_path / "anat" / "sub-01_ses-1_T2w.nii.gz")
    pd = _touch(tmp_path / "anat" / "sub-01_ses-1_PDw.nii.gz")
    _touch(tmp_path / "anat" / "sub-02_ses-1_PDw.nii.gz")
    assert partner_path(t2) == pd and partner_path(pd) == t2
    acq = _touch(tmp_path / "acq" / "sub-03_acq-fse_T2w.nii.gz")
    acq_pd = _touch(tmp_path / "acq" / "sub-03_acq-dual_PD.nii.gz")  # another acq-, the older suffix
    assert partner_path(acq) == acq_pd
    case = _touch(tmp_path / "other" / "case7_t2.nii.gz")
    assert partner_path(case) is None
    case_pd = _touch(tmp_path / "other" / "case7_pd.nii.gz")
    assert partner_path(case) == case_pd


def _bids(root, *names):
    _touch(root / "dataset_description.json")
    for name in names:
        entities = dict(part.split("-", 1) for part in name.split("_")[:-1])
        folder = root / f"sub-{entities['sub']}"
        if "ses" in entities:
            folder = folder / f"ses-{entities['ses']}"
        _touch(folder / "anat" / f"{name}.nii.gz")


def test_a_bids_dataset_pairs_by_entities_and_skips_derivatives(tmp_path):
    _bids(tmp_path, "sub-01_T2w", "sub-01_PDw", "sub-02_ses-1_T2w", "sub-02_ses-1_PDw",
          "sub-02_ses-2_run-1_T2w", "sub-02_ses-2_run-1_PDw", "sub-02_ses-2_run-2_T2w", "sub-02_ses-2_run-2_PDw",
          "sub-03_T1w", "sub-04_T2w")
    _touch(tmp_path / "derivatives" / "sub-05" / "anat" / "sub-05_T2w.nii.gz")
    _touch(tmp_path / "sourcedata" / "sub-06" / "anat" / "sub-06_T2w.nii.gz")
    _touch(tmp_path / ".git" / "sub-07_T2w.nii.gz")
    scan = find_pairs(tmp_path)
    assert scan.scheme == "bids" and scan.dataset
    assert [p.subject for p in scan.pairs] == ["sub-01", "sub-02_ses-1", "sub-02_ses-2_run-1", "sub-02_ses-2_run-2"]
    assert [p.participant for p in scan.pairs] == ["sub-01", "sub-02", "sub-02", "sub-02"]
    assert [p.name for p in scan.unpaired] == ["sub-04_T2w.nii.gz"]
    assert scan.summary().startswith("4 T2/PD pairs in the BIDS dataset ")


def test_bids_files_whose_acq_differs_pair_when_it_is_clear(tmp_path):
    _bids(tmp_path, "sub-01_acq-fse_T2w", "sub-01_acq-dual_PDw")
    scan = find_pairs(tmp_path)
    assert [(p.subject, p.t2.name, p.pd.name) for p in scan.pairs] == [
        ("sub-01", "sub-01_acq-fse_T2w.nii.gz", "sub-01_acq-dual_PDw.nii.gz")]


def test_two_runs_of_one_subject_that_pair_two_ways_are_one_line(tmp_path):
    _bids(tmp_path, "sub-01_run-1_T2w", "sub-01_run-2_T2w", "sub-01_PDw")
    scan = find_pairs(tmp_path)
    assert not scan.pairs and len(scan.unpaired) == 3
    assert scan.ambiguous == ["sub-01: 2 T2w and 1 PDw files whose entities differ: name each pair with the same "
                              "run-/acq- entities"]


def test_a_bids_dataset_without_anat_is_one_line(tmp_path):
    _touch(tmp_path / "dataset_description.json")
    _touch(tmp_path / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz")
    with pytest.raises(MedSynthError, match=r"a BIDS dataset without anat/ folders"):
        find_pairs(tmp_path)


def test_ixi_and_bids_names_in_one_folder_are_one_line(tmp_path):
    _touch(tmp_path / "IXI002-Guys-0828-T2.nii.gz")
    _touch(tmp_path / "sub-01_T2w.nii.gz")
    with pytest.raises(MedSynthError, match=r"mixes IXI names \(IXI002-Guys-0828-T2.nii.gz\) and BIDS names "
                                            r"\(sub-01_T2w.nii.gz\): keep one naming per folder"):
        find_pairs(tmp_path)


def test_a_folder_of_other_names_pairs_by_the_contrast_token(tmp_path):
    for name in ("case1_T2.nii.gz", "case1_PD.nii.gz", "case2_t2.nii", "case2_pd.nii", "case3_T2.nii.gz",
                 "readme.nii.gz"):
        _touch(tmp_path / name)
    scan = find_pairs(tmp_path)
    assert scan.scheme == "other"
    assert [p.subject for p in scan.pairs] == ["case1", "case2"]
    assert [p.name for p in scan.unpaired] == ["case3_T2.nii.gz"]


def test_missing_folder(tmp_path):
    with pytest.raises(MedSynthError, match="no such folder"):
        find_pairs(tmp_path / "nope")
