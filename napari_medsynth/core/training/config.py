"""The one definition of a training run's options.

:class:`TrainConfig`'s fields (:func:`~napari_medsynth.core.fields.option`) carry their help text,
choices and GUI labels; ``medsynth-train train``'s parser (:func:`add_train_arguments`), the training
dock's form (:func:`train_fields`, :func:`train_defaults`), ``medsynth-train reproduce`` and
:func:`train_argv` (the command the dock runs) are all built from them. The builders read
:data:`TrainConfig` when they run, so a field added to it shows everywhere. What a data folder needs for a
run (:func:`training_problem`) is said here too, for the trainer and the dock. Importable without torch or Qt.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, Field, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import DEVICES, Direction, Engine, Variant, parse_direction, run_label
from ..errors import MedSynthError
from ..fields import add_arguments, option

if TYPE_CHECKING:
    from ..files.scans import PairScan

__all__ = [
    "LR_SCHEDULES",
    "MIN_SUBJECTS",
    "REPORT_FRACTIONS",
    "TRAIN_MODULE",
    "VARIANT_OPTIONS",
    "TrainConfig",
    "add_train_arguments",
    "config_from_args",
    "data_folder_check",
    "pairing_problem",
    "starts_from",
    "too_few_subjects",
    "train_argv",
    "train_defaults",
    "train_fields",
    "training_problem",
    "uses_option",
]

# The report's subject split: 250 training, 35 validation and 70 test subjects of 355.
REPORT_FRACTIONS = (250 / 355, 35 / 355, 70 / 355)
# train, validation and test each need a subject (a participant: its sessions stay on one side)
MIN_SUBJECTS = 3
_CHOOSE_DATA = "choose a folder of T2/PD pairs (IXI, or a BIDS dataset)"
# How the learning rate moves over a run's steps (see ``src_train.trainer``).
LR_SCHEDULES = ("constant", "cosine")
# What the GUI runs (``python -m src_train train ...``): training is started by module name.
TRAIN_MODULE = "src_train"
# filter-count scales: the report's generator and narrower ones for CPUs and quick tries
WIDTHS = [("1 (the report)", 1.0), ("1/2", 0.5), ("1/4", 0.25), ("1/8", 0.125), ("1/16", 0.0625)]


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoints)."""

    data: str = option(help="folder of IXI T2/PD pairs", metavar="DIR", label="data folder", widget={"mode": "d"})
    out: str = option(help="run folder", metavar="RUN_DIR", gui=False)  # the dock's runs folder / run name
    direction: str = option("t2-pd", choices=[(d.label, d.value) for d in Direction])
    variant: str = option("G1", "G1: L2; G2: +adversarial; G3: +gradient difference; G4: G3 fine-tuned with L1",
                          choices=[v.value for v in Variant], type=str.upper)
    residual: bool = option(False, "add the source to the output (residual learning)", label="residual learning (+RL)")
    init: str | None = option(None, "start from these weights (G4: G3's best.pt)", metavar="CHECKPOINT",
                              label="start from (G4)", widget={"mode": "r", "filter": "*.pt"})
    epochs: int = option(32, type=int, widget={"min": 1, "max": 1000})
    batch_size: int = option(7, type=int, metavar="B", widget={"min": 1, "max": 512})
    lr: float = option(2e-4, "Adam learning rate (betas 0.5, 0.999)", type=float, label="learning rate",
                       widget={"min": 1e-6, "max": 1.0, "step": 1e-4})
    lr_schedule: str = option("constant", "the learning rate over the run: constant (the report's), or cosine from "
                                          "--lr down to 1/100 of it at the last step", choices=LR_SCHEDULES,
                              label="rate schedule")
    width: float = option(1.0, "filter-count scale (1.0 = the study's model)", type=float, choices=WIDTHS)
    discriminator_width: float = option(1.0, "the discriminator's filter-count scale (G2-G4; 1.0 = the study's)",
                                        type=float, choices=WIDTHS)
    val_stride: int = option(8, "validation reconstruction stride", type=int, metavar="S", choices=[8, 16, 32],
                             label="validation stride")
    device: str = option("auto", "auto, cpu, cuda or cuda:N", choices=DEVICES)
    seed: int = option(0, type=int, gui=False)
    workers: int = option(2, "DataLoader worker processes", type=int, label="loader workers",
                          widget={"min": 0, "max": 64})
    val_fraction: float = option(REPORT_FRACTIONS[1], type=float, gui=False)
    test_fraction: float = option(REPORT_FRACTIONS[2], type=float, gui=False)
    reconstruction_weight: float = option(1.0, type=float, gui=False)
    adversarial_weight: float = option(0.5, type=float, gui=False)
    gdl_weight: float = option(1.0, type=float, gui=False)
    gdl_exponent: float = option(2.0, type=float, gui=False)
    gdl_3d: bool = option(False, "3D gradient-difference loss (the paper) instead of 2D", gui=False)
    reduction: str = option("sum", "reconstruction and gradient-difference losses summed over the voxels (the "
                                   "report's) or averaged (mean: the adversarial term then weighs ~10^4x more)",
                            choices=("sum", "mean"), gui=False)
    cache: str | None = option(None, "preprocessed-volume cache (default RUN_DIR/cache)", metavar="DIR", gui=False)
    amp: bool = option(True, "mixed precision on CUDA", gui=False)
    log_every: int = option(1, cli=False, gui=False)  # steps between step events: every step, so a small run moves live
    all_stacks: bool = option(False, "train and validate on all three interleaved slice stacks of each subject "
                                     "(every slice of the 224x224x96 resample: 3x the patches, the same geometry)",
                              gui=False)
    randomize: bool = option(False, "acquire each training pair again as real scanners differ, on the volumes before "
                                    "the preprocessing: field of view, slice thickness and voxel size, blur, bias "
                                    "field, 8-bit storage and lesion-like blobs change source and target alike; an "
                                    "intensity curve and Rician noise change the source alone: generators for real "
                                    "scans (off: the report's recipe)",
                             label="randomize the acquisitions (for real scans)")
    randomize_only: str | None = option(None, "with --randomize: only these transforms (comma-separated, each "
                                              "NAME or NAME=PROBABILITY, for ablations; default all)",
                                        metavar="NAMES", gui=False)
    randomize_variants: int = option(8, "with --randomize: randomized acquisitions per training subject (a patch comes "
                                        "from one of them or from the subject's own pair)", type=int, gui=False)
    engine: str = option("auto", "how the generator's convolutions run: auto (the faster per layer), direct, or "
                                 "fft (transform domain); checkpoints are the same either way",
                         choices=[e.value for e in Engine], gui=False)

    def __post_init__(self):
        self.direction = parse_direction(self.direction).value
        self.variant = Variant.parse(self.variant.upper(), "variant").value
        if self.epochs < 1 or self.batch_size < 1 or self.val_stride < 1 or not self.lr > 0:
            raise MedSynthError("epochs, batch size, validation stride and learning rate must be positive")
        if self.randomize_variants < 1:
            raise MedSynthError("--randomize-variants must be at least 1")
        if not (self.width > 0 and self.discriminator_width > 0):
            raise MedSynthError("--width and --discriminator-width must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise MedSynthError(f"unknown learning-rate schedule {self.lr_schedule!r}; use {', '.join(LR_SCHEDULES)}")
        self.engine = Engine.parse(self.engine, "engine").value
        if self.variant != "G1" and self.batch_size < 2:
            raise MedSynthError(f"{self.variant} splits each batch into real and generated halves: "
                                "use --batch-size 2 or more")


# The options only some variants use: the discriminator's (G1 trains none) and the starting weights
# (G4 fine-tunes G3's best)
VARIANT_OPTIONS = {"discriminator_width": ("G2", "G3", "G4"), "init": ("G4",)}


def uses_option(variant: str, name: str) -> bool:
    """Whether ``variant`` uses the option ``name`` (:data:`VARIANT_OPTIONS`; every other option, always)."""
    return variant in VARIANT_OPTIONS.get(name, (variant,))


def starts_from(direction: str, variant: str, residual: bool) -> str | None:
    """The run whose ``best.pt`` a variant starts from by the report's plan (G4: the G3 of its
    direction and kind), else None."""
    return f"{direction}-{run_label('G3', residual)}" if variant == "G4" else None


def train_fields(*, gui: bool | None = None) -> list[Field]:
    """The fields of :data:`TrainConfig` (as it is now): only those in the training dock with ``gui=True``."""
    return [f for f in fields(TrainConfig) if gui is None or f.metadata["gui"] == gui]


def train_defaults() -> dict:
    """Each option's default value, by field name."""
    return {f.name: f.default for f in train_fields() if f.default is not MISSING}


def add_train_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add the command-line options of :data:`TrainConfig` (those in ``only``, if given) to ``parser``."""
    add_arguments(parser, [f for f in train_fields() if only is None or f.name in only], show_defaults=True)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed arguments (options the namespace lacks keep their defaults)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k in names})


def train_argv(**options) -> list[str]:
    """The ``medsynth-train`` arguments that run ``train`` with ``options`` (:class:`TrainConfig`'s
    field names, e.g. ``data``, ``out``, ``variant``, ``residual=True``, ``amp=False``; and
    ``resume=True``), built from the fields: parsed back, they give the same config.

    Raises
    ------
    MedSynthError
        An option ``train`` does not have, or a value it refuses.
    """
    by_name = {f.name: f for f in train_fields()}
    argv = ["train", *(["--resume"] if options.pop("resume", False) else [])]
    for key, value in options.items():
        known = by_name.get(key)
        flag = "--" + key.replace("_", "-")
        if known is not None and isinstance(known.default, bool):  # a flag, or --no-NAME for one on by default
            if bool(value) != known.default:
                argv.append(flag if value else f"--no-{flag[2:]}")
        elif value is not None:
            argv += [flag, str(value)]
    parser = _RaisingParser(prog="medsynth-train train", add_help=False)
    add_train_arguments(parser)
    parser.add_argument("--resume", action="store_true")
    args, unknown = parser.parse_known_args(argv[1:])
    if unknown:
        raise MedSynthError(f"medsynth-train train has no option {unknown[0]}")
    config_from_args(args)  # refuses what the trainer would (e.g. G2 with batches of 1) before anything starts
    return argv


def pairing_problem(scan: PairScan) -> str | None:
    """Why the pairs of ``scan``'s folder cannot be used (none, a file without its partner, files that
    pair in more than one way), in one line; None when every file is paired."""
    if not scan.pairs:
        return scan.none_found()
    if scan.ambiguous:
        return f"{scan.folder}: {scan.ambiguous[0]}"
    if scan.unpaired:
        return (f"{scan.unpaired[0]} has no T2/PD partner: training needs whole pairs (add its partner or move "
                "the file out of the folder)")
    return None


def too_few_subjects(subjects: int, pairs: int | None = None) -> str | None:
    """Why ``subjects`` participants (with ``pairs`` T2/PD pairs among them) cannot be split into train,
    validation and test, in one line; None when they can."""
    if subjects >= MIN_SUBJECTS:
        return None
    if pairs is None or pairs == subjects:
        return (f"{subjects} T2/PD pair{'s' * (subjects != 1)} found; training needs at least {MIN_SUBJECTS} "
                "(train, validation, test)")
    return (f"{pairs} T2/PD pairs of {subjects} participant{'s' * (subjects != 1)} found; training needs at "
            f"least {MIN_SUBJECTS} participants (train, validation, test: a participant's sessions stay together)")


def training_problem(scan: PairScan) -> str | None:
    """Why a run cannot train on ``scan``'s folder, in one line (:func:`pairing_problem`,
    :func:`too_few_subjects`); None when it can."""
    return pairing_problem(scan) or too_few_subjects(len({pair.participant for pair in scan.pairs}), len(scan.pairs))


def data_folder_check(folder: str | os.PathLike) -> tuple[str, str | None]:
    """What the data folder ``folder`` holds and why a run cannot train on it (None: it can), a line each.
    Lists file names only (:func:`~napari_medsynth.core.files.scans.find_pairs`): cheap enough for a GUI thread."""
    from ..files.scans import find_pairs  # reads NIfTI too: imported when needed, this module stays light

    folder = Path(folder)
    if not folder.is_dir() or str(folder) in ("", "."):
        return _CHOOSE_DATA, _CHOOSE_DATA
    try:
        scan = find_pairs(folder)
    except MedSynthError as error:  # e.g. an unreadable folder, or IXI and BIDS names mixed
        return str(error), str(error)
    if not scan.pairs:
        none = f"no T2/PD pairs (IXI or BIDS) in {folder}"
        return none, f"{none}: choose the data folder"
    return scan.summary(), training_problem(scan)


class _RaisingParser(argparse.ArgumentParser):
    """Reports a bad argument as a :class:`MedSynthError` instead of printing usage and exiting."""

    def error(self, message):
        raise MedSynthError(f"{self.prog}: {message}")
