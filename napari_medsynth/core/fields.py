"""The fields of the options dataclasses and the command-line options built from them.

:func:`option` makes a field of :class:`~napari_medsynth.core.synthesis.options.SynthesisOptions` or
:class:`~napari_medsynth.core.training.config.TrainConfig` that carries its help, choices and GUI
label; :func:`add_arguments` adds an argparse option per field. Importable without torch, numpy or Qt.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import MISSING, Field, field

from .choices import Choice

__all__ = ["add_arguments", "option"]


def option(default=MISSING, help: str = "", *, label: str | None = None, choices=None, gui: bool = True,
           maps: bool = False, metavar: str | None = None, cli: bool = True, type=None, widget: dict | None = None):
    """A field of an options dataclass (without a default: a required command-line option).

    ``help``: the command line's help (the synthesis form's tooltip; for a bool on by default, what it
    gives, as a noun phrase that ``--no-NAME``'s help reads after "without"); ``label``: the GUI's
    label (a check box's text); ``choices``: the values the GUI offers, or ``(label, value)`` pairs, or
    :data:`~napari_medsynth.core.choices.DEVICES` (the machine's devices); the command line takes only
    those of a text option (a number's are the GUI's presets), and an enum default's members without;
    ``gui=False``: not in the GUI's form; ``maps=True``: only where maps are written (not ``evaluate``);
    ``metavar``: the command line's name of the value; ``cli=False``: not a command-line option (or a command sets it
    with an option of its own, as ``--maps [DIR]``); ``type``: converts the command line's text;
    ``widget``: the GUI widget's options (``min``, ``max``, ``step``; ``mode``: a file or folder picker).
    """
    return field(default=default, metadata={"help": help, "label": label, "choices": choices, "gui": gui,
                                            "maps": maps, "metavar": metavar, "cli": cli, "type": type,
                                            "widget": widget or {}})


def add_arguments(parser: argparse.ArgumentParser, option_fields: Iterable[Field], *,
                  show_defaults: bool = False) -> None:
    """Add an option per field with ``cli=True`` to ``parser``: ``--batch-size B``, a flag for a bool
    (``--preview``; for one on by default ``--no-amp``, whose help is "without" the field's);
    ``show_defaults``: helps end with the default."""
    for option_field in option_fields:
        meta, default = option_field.metadata, option_field.default
        if not meta["cli"]:
            continue
        flag, help = "--" + option_field.name.replace("_", "-"), meta["help"]
        if isinstance(default, bool):
            if default:  # an option on by default is turned off by --no-NAME; its help names what it gives
                parser.add_argument(f"--no-{flag[2:]}", dest=option_field.name, action="store_false",
                                    help=f"without {help}" if help else None)
            else:
                parser.add_argument(flag, action="store_true", help=help)
            continue
        if default is MISSING or default is None:
            default = None
        elif show_defaults:
            help = " ".join(filter(None, [help, f"(default {default:g})" if isinstance(default, float)
                                          else f"(default {default})"]))
        parser.add_argument(flag, default=default.value if isinstance(default, Choice) else default, help=help,
                            metavar=meta["metavar"], choices=_cli_choices(meta["choices"], default),
                            type=meta["type"], required=option_field.default is MISSING)


def _cli_choices(choices, default) -> list[str] | None:
    """The values the command line takes: a text option's choices, or an enum default's members."""
    if choices is None and isinstance(default, Choice):
        return [member.value for member in type(default)]
    values = [c[1] if isinstance(c, tuple) else c for c in choices] if isinstance(choices, list | tuple) else []
    return values if values and all(isinstance(value, str) for value in values) else None
