"""The one definition of a training run's options.

:class:`TrainConfig`'s fields carry their help text and choices; ``medsynth-train train``'s
parser (:func:`add_train_arguments`), the training widget's defaults
(:func:`train_defaults`), ``medsynth-train reproduce`` and :func:`train_argv` (the command
the widget runs) are all built from them. Importable without torch or Qt.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from ..choices import Direction, Engine, Variant, parse_direction
from ..errors import MedSynthError

__all__ = [
    "LR_SCHEDULES",
    "REPORT_FRACTIONS",
    "TRAIN_MODULE",
    "TrainConfig",
    "add_train_arguments",
    "config_from_args",
    "train_argv",
    "train_defaults",
]

# The report's subject split: 250 training, 35 validation and 70 test subjects of 355.
REPORT_FRACTIONS = (250 / 355, 35 / 355, 70 / 355)
# How the learning rate moves over a run's steps (see ``src_train.trainer``).
LR_SCHEDULES = ("constant", "cosine")
# What the GUI runs (``python -m src_train train ...``): training is started by module name.
TRAIN_MODULE = "src_train"


def _option(default=MISSING, help: str = "", **argparse_options):
    """A field with its command-line help (``cli=False``: not a command-line option)."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoints)."""

    data: str = _option(help="folder of IXI T2/PD pairs", metavar="DIR", required=True)
    out: str = _option(help="run folder", metavar="RUN_DIR", required=True)
    direction: str = _option("t2-pd", choices=tuple(Direction))
    variant: str = _option("G1", "G1: L2; G2: +adversarial; G3: +gradient difference; G4: G3 fine-tuned with L1",
                           choices=tuple(Variant), type=str.upper)
    residual: bool = _option(False, "add the source to the output (residual learning)")
    init: str | None = _option(None, "start from these weights (G4: G3's best.pt)", metavar="CHECKPOINT")
    epochs: int = _option(32, type=int)
    batch_size: int = _option(7, type=int, metavar="B")
    lr: float = _option(2e-4, "Adam learning rate (betas 0.5, 0.999)", type=float)
    lr_schedule: str = _option("constant", "the learning rate over the run: constant (the report's), or cosine from "
                                           "--lr down to 1/100 of it at the last step", choices=LR_SCHEDULES)
    width: float = _option(1.0, "filter-count scale (1.0 = the study's model)", type=float)
    discriminator_width: float = _option(1.0, "the discriminator's filter-count scale (G2-G4; 1.0 = the study's)",
                                         type=float)
    val_stride: int = _option(8, "validation reconstruction stride", type=int, metavar="S")
    device: str = _option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = _option(0, type=int)
    workers: int = _option(2, "DataLoader worker processes", type=int)
    val_fraction: float = _option(REPORT_FRACTIONS[1], type=float)
    test_fraction: float = _option(REPORT_FRACTIONS[2], type=float)
    reconstruction_weight: float = _option(1.0, type=float)
    adversarial_weight: float = _option(0.5, type=float)
    gdl_weight: float = _option(1.0, type=float)
    gdl_exponent: float = _option(2.0, type=float)
    gdl_3d: bool = _option(False, "3D gradient-difference loss (the paper) instead of 2D")
    reduction: str = _option("sum", "reconstruction and gradient-difference losses summed over the voxels (the "
                                    "report's) or averaged (mean: the adversarial term then weighs ~10^4x more)",
                             choices=("sum", "mean"))
    cache: str | None = _option(None, "preprocessed-volume cache (default RUN_DIR/cache)", metavar="DIR")
    amp: bool = _option(True, "mixed precision on CUDA")
    log_every: int = _option(1, cli=False)  # steps between step events: every step, so that a small run moves live
    all_stacks: bool = _option(False, "train and validate on all three interleaved slice stacks of each subject "
                                      "(every slice of the 224x224x96 resample: 3x the patches, the same geometry)")
    engine: str = _option("auto", "how the generator's convolutions run: auto (the faster per layer), direct, or "
                                  "fft (transform domain); checkpoints are the same either way", choices=tuple(Engine))

    def __post_init__(self):
        self.direction = parse_direction(self.direction).value
        self.variant = Variant.parse(self.variant.upper(), "variant").value
        if self.epochs < 1 or self.batch_size < 1 or self.val_stride < 1 or not self.lr > 0:
            raise MedSynthError("epochs, batch size, validation stride and learning rate must be positive")
        if not (self.width > 0 and self.discriminator_width > 0):
            raise MedSynthError("--width and --discriminator-width must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise MedSynthError(f"unknown learning-rate schedule {self.lr_schedule!r}; use {', '.join(LR_SCHEDULES)}")
        self.engine = Engine.parse(self.engine, "engine").value
        if self.variant != "G1" and self.batch_size < 2:
            raise MedSynthError(f"{self.variant} splits each batch into real and generated halves: "
                                "use --batch-size 2 or more")


def train_defaults() -> dict:
    """Each option's default value, by field name."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def add_train_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add the command-line options of :class:`TrainConfig` (those in ``only``, if given) to ``parser``."""
    for option in fields(TrainConfig):
        meta = dict(option.metadata)
        if not meta.pop("cli", True) or (only is not None and option.name not in only):
            continue
        flag = "--" + option.name.replace("_", "-")
        if isinstance(option.default, bool):
            if option.default:  # an option on by default is turned off by --no-NAME
                parser.add_argument(f"--no-{option.name.replace('_', '-')}", dest=option.name, action="store_false",
                                    help=f"no {meta['help']}")
            else:
                parser.add_argument(flag, action="store_true", help=meta["help"])
            continue
        if option.default is not MISSING and option.default is not None:
            meta["help"] = f"{meta['help']} (default {option.default:g})" if isinstance(option.default, float) \
                else f"{meta['help']} (default {option.default})"
        parser.add_argument(flag, default=None if option.default is MISSING else option.default,
                            **{k: v for k, v in meta.items() if v != ""})


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed arguments (options the namespace lacks keep their defaults)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k in names})


def train_argv(**options) -> list[str]:
    """The ``medsynth-train`` arguments that run ``train`` with ``options`` (:class:`TrainConfig`'s
    field names, e.g. ``data``, ``out``, ``variant``, ``residual=True``; and ``resume=True``).

    Raises
    ------
    MedSynthError
        An option ``train`` does not have, or a value it refuses.
    """
    argv = ["train"]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    parser = _RaisingParser(prog="medsynth-train train", add_help=False)
    add_train_arguments(parser)
    parser.add_argument("--resume", action="store_true")
    args, unknown = parser.parse_known_args(argv[1:])
    if unknown:
        raise MedSynthError(f"medsynth-train train has no option {unknown[0]}")
    config_from_args(args)  # refuses what the trainer would (e.g. G2 with batches of 1) before anything starts
    return argv


class _RaisingParser(argparse.ArgumentParser):
    """Reports a bad argument as a :class:`MedSynthError` instead of printing usage and exiting."""

    def error(self, message):
        raise MedSynthError(f"{self.prog}: {message}")
