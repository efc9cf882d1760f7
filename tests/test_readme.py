"""The README's Python example runs as written (on a coarser phantom, for time)."""

from __future__ import annotations

import re
from pathlib import Path

from napari_medsynth.cli import main
from napari_medsynth.core.files.nifti import load_volume

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"<!-- python-example -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    assert main(["phantom", "data", "--subjects", "1", "--shape", "96", "96", "48"]) == 0
    capsys.readouterr()
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.startswith("MAE ")
    written = [Path(p).name for p in namespace["written"]]
    assert written == ["IXI001-PD_synth.nii.gz", "IXI001-PD_synth.json", "IXI001-PD_synth_squared_error.nii.gz",
                       "IXI001-PD_synth_gradient_difference.nii.gz"]
    synthesis = load_volume(tmp_path / "out" / "IXI001-PD_synth.nii.gz")
    assert synthesis.data.shape == load_volume(tmp_path / "data" / "IXI001-Phantom-0001-T2.nii.gz").data.shape
