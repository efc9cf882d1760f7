"""The command line's inputs: bundled generators by name, a 2D image given as a volume, a comparison
none of whose generators can run, the folder run's progress and the help texts."""

from __future__ import annotations

import csv
import json
import re
import shutil

import nibabel as nib
import pytest

from napari_medsynth.cli import main
from napari_medsynth.core.console import counted
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import Volume, load_volume
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR, bundled_generators, resolve_generator
from src_train.cli import main as train_main

FAST = ["--grid", "report", "--stride", "32", "--device", "cpu"]
BUNDLED = ("t2-pd-G1, t2-pd-G2, t2-pd-G3, t2-pd-G4, t2-pd-G4+RL, pd-t2-G4, pd-t2-G4+RL, or their variant labels")
UNKNOWN = "runs/x/best.pt"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A 64 x 64 x 40 phantom T2/PD pair (IXI names), alone in its folder: (t2, pd)."""
    folder = tmp_path_factory.mktemp("pair")
    assert main(["phantom", str(folder), "--subjects", "1", "--shape", "64", "64", "40"]) == 0
    return next(folder.glob("*-T2.nii.gz")), next(folder.glob("*-PD.nii.gz"))


def errors(err: str) -> list[str]:
    """The error lines of stderr (a progress bar's redraws left out)."""
    return [line for line in err.splitlines() if line.startswith(("medsynth: error: ", "medsynth-train: error: "))]


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_phantom_count_is_singular_or_plural(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "one"), "--subjects", "1", "--shape", "64", "64", "40"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 1 T2/PD pair to {tmp_path / 'one'}"
    assert (counted(1, "generator"), counted(2, "T2/PD pair")) == ("1 generator", "2 T2/PD pairs")


def test_resolve_generator_takes_a_file_a_bundled_stem_and_the_label_the_dock_lists(pair, tmp_path):
    t2, pd = pair
    assert resolve_generator("t2-pd-G4+RL") == resolve_generator("T2-PD-G4+RL.pt") == BUNDLED_DIR / "t2-pd-G4+RL.pt"
    for entry in bundled_generators():  # the dock's title starts with the label: the label within its direction
        assert resolve_generator(entry.title.split()[0], entry.info.direction) == entry.path
    assert resolve_generator("g1") == BUNDLED_DIR / "t2-pd-G1.pt"  # a label of one direction needs none
    assert resolve_generator("G4", source=pd) == BUNDLED_DIR / "pd-t2-G4.pt"  # PD by its IXI name
    assert resolve_generator("G4", source=load_volume(t2)) == BUNDLED_DIR / "t2-pd-G4.pt"
    own = tmp_path / "G4"  # a file of that name is the file
    own.write_bytes(b"x")
    assert resolve_generator(str(own)) == own
    refusals = [(("G4",), "G4: a bundled generator of each direction; name one: t2-pd-G4 or pd-t2-G4"),
                (("G1", "pd-t2"), "G1: no bundled PD->T2 generator of that name (the bundled PD->T2 ones: G4, G4+RL)"),
                ((UNKNOWN,), f"{UNKNOWN}: no such checkpoint file or bundled generator name (the bundled ones: "
                             f"{BUNDLED})")]
    for arguments, message in refusals:
        with pytest.raises(MedSynthError) as refused:
            resolve_generator(*arguments)
        assert str(refused.value) == message


def test_synthesize_takes_a_bundled_label_in_the_direction_of_the_sources_contrast(pair, tmp_path, capsys):
    out = tmp_path / "t2.nii.gz"
    assert main(["synthesize", str(pair[1]), "--checkpoint", "G4", "--out", str(out), "--preview", *FAST]) == 0
    sidecar = json.loads(out.with_suffix("").with_suffix(".json").read_text())  # a PD source: G4 of PD->T2
    assert (sidecar["direction"], sidecar["variant"]) == ("pd-t2", "G4")
    assert sidecar["checkpoint"] == str(BUNDLED_DIR / "pd-t2-G4.pt")
    assert capsys.readouterr().out.startswith(f"wrote {out}\n")


@pytest.mark.parametrize(("command", "argv"), [
    (main, ["synthesize", "T2", "--checkpoint", UNKNOWN, "--out", "out/o.nii.gz"]),
    (main, ["synthesize", "DATA", "--checkpoint", UNKNOWN, "--out", "out"]),
    (main, ["compare", "T2", "--checkpoint", UNKNOWN, "--out", "out"]),
    (main, ["export", UNKNOWN, "--format", "torchscript", "--out", "out/model.ts"]),
    (train_main, ["evaluate", "--data", "DATA", "--checkpoint", UNKNOWN, "--out", "out"]),
    (train_main, ["train", "--data", "DATA", "--out", "out", "--variant", "G4", "--init", UNKNOWN]),
])
def test_an_unknown_checkpoint_is_one_line_naming_it_with_its_folder(pair, tmp_path, monkeypatch, capsys, command,
                                                                     argv):
    data = tmp_path / "data"
    data.mkdir()
    for path in pair:
        shutil.copy(path, data)
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    argv = [{"T2": f"data/{pair[0].name}", "DATA": "data"}.get(a, a) for a in argv]
    assert command(argv) == 1
    prog = "medsynth" if command is main else "medsynth-train"
    assert capsys.readouterr().err.strip() == (f"{prog}: error: {UNKNOWN}: no such checkpoint file or bundled "
                                               f"generator name (the bundled ones: {BUNDLED})")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("argv", [["synthesize", "DATA", "--checkpoint", "G4", "--out", "out"],
                                  ["export", "G4+RL", "--format", "onnx", "--out", "out/model.onnx"]])
def test_a_label_of_both_directions_without_a_source_is_one_line_naming_both(pair, tmp_path, monkeypatch, capsys,
                                                                             argv):
    monkeypatch.chdir(tmp_path)
    argv = [str(pair[0].parent) if a == "DATA" else a for a in argv]
    assert main(argv) == 1
    label = argv[argv.index("--checkpoint") + 1] if "--checkpoint" in argv else argv[1]
    assert capsys.readouterr().err.strip() == (f"medsynth: error: {label}: a bundled generator of each direction; "
                                               f"name one: t2-pd-{label} or pd-t2-{label}")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(("shape", "what"), [((64, 64, 1), "one slice is a 2D image"),
                                             ((1, 64, 40), "one slice is a 2D image"),
                                             ((64, 64, 2), "2 slices are too few")])
def test_a_2d_image_as_a_volume_is_one_line_naming_it_and_nothing_written(pair, tmp_path, capsys, shape, what):
    t2, pd = (load_volume(path) for path in pair)
    index = tuple(slice(0, n) for n in shape)
    source = tmp_path / "IXI009-HH-0001-T2.nii.gz"  # with its partner: a folder, and compare, have a pair
    for path, volume in ((source, t2), (tmp_path / "IXI009-HH-0001-PD.nii.gz", pd)):
        nib.save(nib.Nifti1Image(volume.data[index], volume.affine), str(path))
    line = (f"medsynth: error: {source.name} has shape {shape}: {what}; synthesis needs a 3D volume "
            "(at least 3 voxels along each axis)")
    before = listing(tmp_path)
    checkpoint = str(BUNDLED_DIR / "t2-pd-G1.pt")
    for argv in (["synthesize", str(source), "--checkpoint", checkpoint, "--out", str(tmp_path / "o" / "s.nii.gz")],
                 ["compare", str(source), "--checkpoint", checkpoint, "--out", str(tmp_path / "o")],
                 ["synthesize", str(tmp_path), "--checkpoint", checkpoint, "--out", str(tmp_path / "o")]):
        assert main([*argv, *FAST]) == 1, argv
        assert errors(capsys.readouterr().err) == [line], argv
        assert listing(tmp_path) == before, argv
    with pytest.raises(MedSynthError, match=re.escape(f"{source.name} has shape {shape}: {what}")):
        preprocess_volume(Volume(t2.data[index], t2.affine, path=source))  # every synthesis path's preprocessing


def test_compare_none_of_whose_generators_can_run_writes_nothing(pair, tmp_path, capsys):
    t2, _ = pair
    out = tmp_path / "out"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    cases = [
        (["--checkpoint", "pd-t2-G4", "pd-t2-G4+RL"],  # the direction the first says: the T2 source cannot go
         [f"pd-t2-G4: {t2.name} is a T2 image, but the source of this generator must be PD",
          f"pd-t2-G4+RL: {t2.name} is a T2 image, but the source of this generator must be PD",
          "none of the 2 generators can run: nothing written"]),
        (["--direction", "pd-t2"],  # every bundled PD->T2 generator, by its file's name
         [f"pd-t2-G4.pt: {t2.name} is a T2 image, but the source of this generator must be PD",
          f"pd-t2-G4+RL.pt: {t2.name} is a T2 image, but the source of this generator must be PD",
          "none of the 2 generators can run: nothing written"]),
        (["--direction", "t2-pd", "--checkpoint", "pd-t2-G4"],
         ["pd-t2-G4.pt: a PD->T2 generator, but T2->PD was asked for"]),
        (["--checkpoint", str(broken), "nope"],
         ["broken.pt: not a readable checkpoint, truncated or not a torch file",
          f"nope: no such checkpoint file or bundled generator name (the bundled ones: {BUNDLED})",
          "none of the 2 generators can run: nothing written"]),
    ]
    for argv, lines in cases:
        assert main(["compare", str(t2), "--out", str(out), *argv, *FAST]) == 1, argv
        captured = capsys.readouterr()
        assert errors(captured.err) == [f"medsynth: error: {line}" for line in lines], argv
        assert captured.out == "" and not out.exists(), argv


def test_compare_with_one_generator_that_cannot_run_names_it_and_writes_the_others(pair, tmp_path, capsys):
    t2, _ = pair
    out = tmp_path / "out"
    assert main(["compare", str(t2), "--out", str(out), "--checkpoint", "G1", "nope", "--preview", *FAST]) == 1
    missing = f"nope: no such checkpoint file or bundled generator name (the bundled ones: {BUNDLED})"
    assert errors(capsys.readouterr().err) == [f"medsynth: error: {missing}",
                                               "medsynth: error: 1 of 2 generators could not run"]
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["generator"], row["error"]) for row in rows][:2] == [("G1", ""), ("nope", missing)]
    assert rows[0]["checkpoint"] == str(BUNDLED_DIR / "t2-pd-G1.pt")  # G1: T2->PD, the only direction it has
    assert sorted(p.name for p in out.iterdir()) == ["G1.json", "G1.nii.gz", "compare.png", "metrics.csv"]


def test_a_folder_run_takes_a_bundled_name_and_its_bar_shows_each_files_patches(pair, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synthesize", str(pair[0].parent), "--checkpoint", "t2-pd-G1", "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"0/1 \[[^]]*, {re.escape(pair[0].name)} \d+%\]", err), err  # moving within the file
    assert (out / pair[1].name.replace("-PD.nii.gz", "-PD_synth.nii.gz")).is_file()


@pytest.mark.parametrize(("command", "argv"), [(main, ["synthesize"]), (main, ["compare"]), (main, ["demo"]),
                                               (train_main, ["train"]), (train_main, ["evaluate"]),
                                               (train_main, ["reproduce"])])
def test_every_no_flags_help_reads_as_english(command, argv, capsys):
    with pytest.raises(SystemExit):
        command([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    helps = dict(re.findall(r"(--no-[a-z-]+) (\S+ \S+)", text.split("options:")[1]))
    assert all(words.startswith("without ") for words in helps.values()), helps
    assert " no the " not in text
    expected = {"synthesize": "--no-spread", "demo": "--no-spread", "train": "--no-amp"}  # (compare writes no maps)
    assert argv[0] not in expected or expected[argv[0]] in helps
