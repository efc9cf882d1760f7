"""The report's plan: which generators :func:`~src_train.reproduce.reproduce` trains, in which order,
with which options (:class:`ReproduceConfig`), and the report's published figures. Importable without
torch (the command line builds its parser from it)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from napari_medsynth.core.choices import Grid, run_label
from napari_medsynth.core.training.config import TrainConfig, train_defaults

__all__ = ["PLAN", "PUBLISHED", "REPORTED", "ReproduceConfig", "Run", "plan_configs"]

_TRAIN = train_defaults()


@dataclass(frozen=True)
class Run:
    """One training of the plan; ``init`` names the run whose best.pt it starts from."""

    name: str
    direction: str
    variant: str
    residual: bool
    epochs: int
    batch_size: int
    init: str | None = None

    @property
    def label(self) -> str:
        """``G4+RL`` style."""
        return run_label(self.variant, self.residual)


PLAN = (
    Run("t2-pd-G1", "t2-pd", "G1", False, 34, 7),
    Run("t2-pd-G2", "t2-pd", "G2", False, 32, 7),
    Run("t2-pd-G3", "t2-pd", "G3", False, 76, 7),
    Run("t2-pd-G4", "t2-pd", "G4", False, 4, 7, init="t2-pd-G3"),
    Run("pd-t2-G3", "pd-t2", "G3", False, 24, 49),
    Run("pd-t2-G4", "pd-t2", "G4", False, 24, 49, init="pd-t2-G3"),
    Run("pd-t2-G3+RL", "pd-t2", "G3", True, 24, 49),
    Run("pd-t2-G4+RL", "pd-t2", "G4", True, 24, 49, init="pd-t2-G3+RL"),
)
REPORTED = ("t2-pd-G1", "t2-pd-G2", "t2-pd-G3", "t2-pd-G4", "pd-t2-G4", "pd-t2-G4+RL")

# The report's figures on IXI: (validation best epoch, MAE, PSNR) and test PSNR, mean (std).
PUBLISHED = {
    "t2-pd-G1": ("20/34", "0.124 (0.017)", "26.657 (3.379)", "28.054 (3.021)"),
    "t2-pd-G2": ("22/32", "0.133 (0.018)", "26.638 (3.35)", "27.819 (3.069)"),
    "t2-pd-G3": ("22/76", "0.106 (0.017)", "27.802 (3.294)", "29.181 (2.884)"),
    "t2-pd-G4": ("G3 best + 4", "0.089 (0.016)", "29.765 (3.225)", "30.199 (2.719)"),
    "pd-t2-G4": ("12/24", "0.129 (0.031)", "29.937 (2.477)", "30.015 (1.925)"),
    "pd-t2-G4+RL": ("24/24", "0.101 (0.027)", "30.491 (2.336)", "30.64 (1.896)"),
}


@dataclass(frozen=True)
class ReproduceConfig:
    """What :func:`reproduce` runs: the data and output folders, the epochs and batch size of every
    run (None: the plan's), the grid of the test syntheses, and the training options (:class:`TrainConfig`'s
    defaults) that every run of the plan shares."""

    data: Path | str
    out: Path | str
    epochs: int | None = None
    batch_size: int | None = None
    grid: str = Grid.NATIVE.value
    # The training options every run shares (:data:`SHARED_OPTIONS`; the command line's), at TrainConfig's defaults
    width: float = _TRAIN["width"]
    discriminator_width: float = _TRAIN["discriminator_width"]
    lr: float = _TRAIN["lr"]
    lr_schedule: str = _TRAIN["lr_schedule"]
    val_stride: int = _TRAIN["val_stride"]
    device: str = _TRAIN["device"]
    seed: int = _TRAIN["seed"]
    workers: int = _TRAIN["workers"]
    engine: str = _TRAIN["engine"]
    all_stacks: bool = _TRAIN["all_stacks"]

    @classmethod
    def shared_options(cls) -> tuple[str, ...]:
        """The names of the training options that every run of the plan shares (its fields that
        :class:`TrainConfig` has, but the plan's own epochs and batch size)."""
        return tuple(f.name for f in fields(cls) if f.name in _TRAIN and f.name not in ("epochs", "batch_size"))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReproduceConfig:
        """The config of ``medsynth-train reproduce``'s parsed arguments."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def plan_configs(config: ReproduceConfig) -> list[TrainConfig]:
    """The training configuration of each run of :data:`PLAN`, in order: ``config``'s epochs and
    batch size (None: the plan's), and its training options in every run."""
    out = Path(config.out)
    shared = {name: getattr(config, name) for name in config.shared_options()}
    return [
        TrainConfig(**shared, data=str(config.data), out=str(out / run.name), direction=run.direction,
                    variant=run.variant, residual=run.residual,
                    init=str(out / run.init / "best.pt") if run.init else None,
                    epochs=config.epochs or run.epochs, batch_size=config.batch_size or run.batch_size,
                    cache=str(out / "cache"))
        for run in PLAN
    ]
