"""The widgets' choices that outlive napari: a JSON file in the user's config folder.

``MEDSYNTH_SETTINGS`` names another file (several profiles, tests); ``MEDSYNTH_RUNS_DIR`` sets the
runs folder whatever the file says. A file that cannot be read falls back to the defaults with a
warning, and is replaced at the next change.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..core.files.atomic import write_json

__all__ = ["DEFAULTS", "RUNS_ENV", "SETTINGS_ENV", "defaults", "load_settings", "restore_defaults", "save_settings",
           "settings_path"]

SETTINGS_ENV = "MEDSYNTH_SETTINGS"
RUNS_ENV = "MEDSYNTH_RUNS_DIR"
DEFAULTS = {
    "runs_folder": str(Path.home() / "medsynth-runs"),
    "data_folder": "",
    "direction": "t2-pd",
}  # and each synthesis option of the dock's form (:func:`defaults`)


def defaults() -> dict:
    """:data:`DEFAULTS` and the default of each :class:`SynthesisOptions` field the dock's form shows."""
    from ..core.synthesis.options import SynthesisOptions, option_fields

    options = SynthesisOptions().record()
    return {**DEFAULTS, **{f.name: options[f.name] for f in option_fields(gui=True)}}


def settings_path() -> Path:
    """``$MEDSYNTH_SETTINGS``, else ``settings.json`` in the user's config folder (platformdirs)."""
    if os.environ.get(SETTINGS_ENV):
        return Path(os.environ[SETTINGS_ENV]).expanduser()
    from platformdirs import user_config_path

    return user_config_path("napari-medsynth") / "settings.json"


def load_settings() -> dict:
    """The saved choices over the defaults (the runs folder from ``$MEDSYNTH_RUNS_DIR`` when set)."""
    settings = defaults()
    path = settings_path()
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
            settings.update({k: v for k, v in saved.items() if k in settings and type(v) is type(settings[k])})
        except (OSError, ValueError) as error:
            warnings.warn(f"{path}: unreadable settings ({error}); using the defaults", stacklevel=2)
    if os.environ.get(RUNS_ENV):
        settings["runs_folder"] = os.environ[RUNS_ENV]
    return settings


def save_settings(**changes) -> None:
    """Remember ``changes`` (keys of :func:`defaults`); a folder that cannot be written only warns."""
    path = settings_path()
    try:
        saved = json.loads(path.read_text()) if path.is_file() else {}
        saved = saved if isinstance(saved, dict) else {}
    except (OSError, ValueError):
        saved = {}
    known = defaults()
    saved.update({k: str(v) if isinstance(v, Path) else v for k, v in changes.items() if k in known})
    try:
        write_json(path, saved)
    except Exception as error:
        warnings.warn(f"{path}: cannot save the settings ({error})", stacklevel=2)


def restore_defaults() -> dict:
    """Forget every saved choice; the defaults (``$MEDSYNTH_RUNS_DIR`` still applies)."""
    path = settings_path()
    if path.is_file():
        path.unlink()
    return load_settings()
