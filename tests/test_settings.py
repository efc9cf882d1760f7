"""Choices that outlive napari: the settings file, MEDSYNTH_RUNS_DIR, a corrupt file, Restore defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_medsynth._widgets._settings import DEFAULTS, defaults, load_settings, settings_path
from napari_medsynth._widgets._shared import RUNS
from napari_medsynth._widgets.synthesis import SynthesisWidget
from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.core.synthesis.options import SynthesisOptions


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("MEDSYNTH_SETTINGS", str(path))
    monkeypatch.delenv("MEDSYNTH_RUNS_DIR", raising=False)
    previous = RUNS.folder
    yield path
    RUNS.folder = previous


def _runs_folder_in_a_new_process(**env) -> str:
    code = "from napari_medsynth._widgets._shared import RUNS; print(RUNS.folder)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return done.stdout.strip()


def test_choices_persist_when_napari_is_opened_again(make_napari_viewer, settings_file, tmp_path):
    viewer = make_napari_viewer()
    synthesis, training = SynthesisWidget(viewer), TrainingWidget(viewer)
    chosen = SynthesisOptions(grid="report", stride=16, engine="fft", device="cpu", masked_maps=True)
    synthesis.configure("pd-t2", options=chosen, remember=True)  # as a user's choices in the form
    RUNS.set(tmp_path / "my-runs")
    training.fields["data"].value = tmp_path
    viewer.close()
    assert settings_path() == settings_file and settings_file.is_file()

    viewer = make_napari_viewer()
    synthesis, training = SynthesisWidget(viewer), TrainingWidget(viewer)
    assert synthesis.form.direction.value == "pd-t2" and synthesis.options() == chosen
    assert str(training.fields["data"].value) == str(tmp_path)
    assert _runs_folder_in_a_new_process() == str(tmp_path / "my-runs")
    assert _runs_folder_in_a_new_process(MEDSYNTH_RUNS_DIR=str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere")

    synthesis.restore_defaults()
    assert synthesis.form.direction.value == "t2-pd" and synthesis.options() == SynthesisOptions()
    assert RUNS.folder == Path(DEFAULTS["runs_folder"]) and not settings_file.exists()
    assert synthesis.status == "defaults restored"


def test_a_corrupt_settings_file_falls_back_to_the_defaults_with_a_warning(settings_file):
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text('{"stride": 16, "grid": ')
    with pytest.warns(UserWarning, match="unreadable settings"):
        assert load_settings() == defaults()
    settings_file.write_text('{"stride": "sixteen", "grid": "report"}')  # a wrong type is ignored, the rest kept
    assert load_settings() == {**defaults(), "grid": "report"}
