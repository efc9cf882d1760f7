"""Training from a terminal: a progress bar per epoch, a line per validation, a clean stop on
SIGINT/SIGTERM (``medsynth-train train`` and ``reproduce``)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from napari_medsynth.core.console import EXIT_INTERRUPTED
from napari_medsynth.core.training.config import TrainConfig
from napari_medsynth.core.training.events import StartEvent, StepEvent, TrainingEvent, ValidationEvent

from .trainer import Trainer, TrainingStopped

__all__ = ["run_training"]

PROG = "medsynth-train"


def run_training(config: TrainConfig, resume: bool = False) -> int:
    """Train with a progress bar, stopping cleanly on SIGINT/SIGTERM (second Ctrl-C: abort); the exit code."""
    trainer = Trainer(config, resume=resume)
    bar = _EpochBar()

    def on_event(event: TrainingEvent):
        if isinstance(event, StartEvent):
            where = (f"epoch {event.epoch + 1} of {event.epochs}" if event.epoch < event.epochs
                     else f"{event.epochs} of {event.epochs} epochs already done")
            print(f"{event.variant} {event.direction}: {event.train_subjects} training and "
                  f"{event.validation_subjects} validation subjects on {event.device} "
                  f"x{event.world_size}, {where}", file=sys.stderr)
        elif isinstance(event, StepEvent):
            bar.update(event)
        elif isinstance(event, ValidationEvent):
            bar.close()
            print(f"epoch {event.epoch}: validation MAE {event.mae:.4f}  PSNR {event.psnr:.2f} dB  "
                  f"SSIM {event.ssim:.4f}{'  (best)' if event.best else ''}", file=sys.stderr)
            rate = event.throughput
            print(f"  training {rate['patches_per_s']:.1f} patches/s, "
                  f"{100 * rate['loader_wait_fraction']:.1f}% of it waiting for data", file=sys.stderr)

    trainer.on_event = on_event
    previous = {}

    def request_stop(signum, frame):
        if trainer.stop_requested.is_set():
            raise KeyboardInterrupt
        print(f"\n{PROG}: stopping after this step and saving last.pt (again to abort)", file=sys.stderr)
        trainer.stop_requested.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, request_stop)
    try:
        summary = trainer.run()
    except TrainingStopped as stopped:
        print(f"{PROG}: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if trainer.dist.main:
        print(f"best epoch {summary.best_epoch} (validation PSNR {summary.best_psnr:.2f} dB): "
              f"{Path(config.out) / 'best.pt'}")
    return 0


class _EpochBar:
    """One tqdm bar per epoch, fed by step events."""

    def __init__(self):
        self.bar = None
        self.epoch = None

    def update(self, event: StepEvent) -> None:
        from tqdm import tqdm

        if event.epoch != self.epoch:
            self.close()
            self.epoch = event.epoch
            self.bar = tqdm(total=event.steps, initial=event.step - 1, desc=f"epoch {self.epoch}",
                            unit="step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(event.step - self.bar.n)
        self.bar.set_postfix(loss_g=f"{event.loss_g:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
