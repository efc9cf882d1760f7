"""``medsynth-train`` (also ``python -m src_train``): train, evaluate, reproduce."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from napari_medsynth.core.console import EXIT_INTERRUPTED, run_command
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.choices import ENGINES, GRIDS

PROG = "medsynth-train"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``medsynth-train`` subcommand."""
    parser = argparse.ArgumentParser(prog=PROG, description="Train and evaluate napari-medsynth generators.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train one generator variant (G1-G4)",
        description="Train a generator on a folder of IXI-named T2/PD pairs. Writes RUN_DIR/last.pt (every "
                    "epoch), RUN_DIR/best.pt (highest mean validation PSNR), metrics.csv, val_subjects.csv, "
                    "events.jsonl, curves.png and split.json. Ctrl-C or SIGTERM saves last.pt and exits; "
                    "--resume continues exactly. Under torchrun it trains with DistributedDataParallel.",
    )
    add_train_arguments(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", help="test-set table (MAE, PSNR, SSIM) of one or more checkpoints",
        description="Synthesize each test subject with each checkpoint and write a Markdown table of mean +- std "
                    "MAE/PSNR/SSIM on the source grid (whole volume, head mask) and on the report grid, and a "
                    "per-subject CSV. Test subjects come from the split.json beside each "
                    "checkpoint (or --split); without one, every pair in DATA is used.",
    )
    evaluate.add_argument("--data", type=Path, required=True, metavar="DIR")
    evaluate.add_argument("--checkpoint", type=Path, nargs="+", required=True, metavar="CKPT")
    evaluate.add_argument("--split", type=Path, metavar="SPLIT_JSON", help="split file to take the test subjects from")
    evaluate.add_argument("--out", type=Path, metavar="DIR", help="where to write the tables (default: beside the first checkpoint)")
    evaluate.add_argument("--stride", type=int, default=8, help="reconstruction stride (default 8)")
    evaluate.add_argument("--grid", choices=GRIDS, default="native",
                          help="synthesize every slice (native, default) or one in three (report); the figures "
                               "are given on the source grid and on the report grid either way")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(handler=_evaluate)

    reproduce = commands.add_parser(
        "reproduce", help="run the report's plan end to end and write its tables",
        description="T2->PD G1, G2, G3, G4 (from G3's best) and PD->T2 G4 with and without residual learning, "
                    "then the test-set tables beside the report's published figures and two baselines.",
    )
    reproduce.add_argument("--data", type=Path, required=True, metavar="DIR")
    reproduce.add_argument("--out", type=Path, required=True, metavar="DIR")
    reproduce.add_argument("--epochs", type=int, default=None, metavar="N",
                           help="epochs per run (default: the report's 34, 32, 76, 4 and 24)")
    reproduce.add_argument("--width", type=float, default=1.0)
    reproduce.add_argument("--batch-size", type=int, default=None, metavar="B",
                           help="default: the report's 7 for T2->PD and 49 for PD->T2")
    reproduce.add_argument("--lr", type=float, default=2e-4)
    reproduce.add_argument("--val-stride", type=int, default=8)
    reproduce.add_argument("--device", default="auto")
    reproduce.add_argument("--seed", type=int, default=0)
    reproduce.add_argument("--workers", type=int, default=2)
    reproduce.set_defaults(handler=_reproduce)
    return parser


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``train`` (shared with the GUI, which shows the same command)."""
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder of IXI T2/PD pairs")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    parser.add_argument("--direction", default="t2-pd", choices=["t2-pd", "pd-t2"])
    parser.add_argument("--variant", default="G1", type=str.upper, choices=["G1", "G2", "G3", "G4"],
                        help="G1: L2; G2: +adversarial; G3: +gradient difference; G4: G3 fine-tuned with L1")
    parser.add_argument("--residual", action="store_true", help="add the source to the output (residual learning)")
    parser.add_argument("--init", type=Path, metavar="CHECKPOINT", help="start from these weights (G4: G3's best.pt)")
    parser.add_argument("--epochs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=7, metavar="B")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (betas 0.5, 0.999)")
    parser.add_argument("--width", type=float, default=1.0, help="filter-count scale (1.0 = the study's model)")
    parser.add_argument("--val-stride", type=int, default=8, metavar="S", help="validation reconstruction stride")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--val-fraction", type=float, default=35 / 355)
    parser.add_argument("--test-fraction", type=float, default=70 / 355)
    parser.add_argument("--adversarial-weight", type=float, default=0.5)
    parser.add_argument("--reconstruction-weight", type=float, default=1.0)
    parser.add_argument("--gdl-weight", type=float, default=1.0)
    parser.add_argument("--gdl-exponent", type=float, default=2.0)
    parser.add_argument("--gdl-3d", action="store_true", help="3D gradient-difference loss (the paper) instead of 2D")
    parser.add_argument("--reduction", default="mean", choices=["mean", "sum"], help="loss reduction (the report: sum)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="preprocessed-volume cache (default RUN_DIR/cache)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="how the generator's convolutions run: auto (the faster per layer, default), direct, "
                             "or fft (transform domain); checkpoints are the same either way")
    parser.add_argument("--all-stacks", action="store_true",
                        help="train and validate on all three interleaved slice stacks of each subject (every "
                             "slice of the 224x224x96 resample: 3x the patches, the same geometry)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt")


def train_argv(**options) -> list[str]:
    """The ``medsynth-train`` arguments that run ``train`` with ``options`` (keys as in
    :class:`TrainConfig`, e.g. ``data``, ``out``, ``variant``, ``residual=True``, ``resume=True``).

    Raises
    ------
    MedSynthError
        An option ``train`` does not have, or a value it refuses.
    """
    argv = ["train"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        argv += [flag] if value is True else [flag, str(value)]
    parser = _RaisingParser(prog=f"{PROG} train", add_help=False)
    add_train_arguments(parser)
    args, unknown = parser.parse_known_args(argv[1:])
    if unknown:
        raise MedSynthError(f"{PROG} train has no option {unknown[0]}")
    config_from_args(args)  # refuses what the trainer would (e.g. G2 with batches of 1) before anything starts
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``medsynth-train`` and ``python -m src_train``."""
    args = build_parser().parse_args(argv)
    return run_command(PROG, lambda: args.handler(args))


def config_from_args(args):
    """A :class:`TrainConfig` from parsed ``train`` arguments."""
    from .trainer import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    values.update(data=str(args.data), out=str(args.out), init=str(args.init) if args.init else None,
                  cache=str(args.cache) if args.cache else None)
    return TrainConfig(**values)


def run_training(config, resume: bool = False) -> int:
    """Train with a progress bar, stopping cleanly on SIGINT/SIGTERM (second Ctrl-C: abort)."""
    from .trainer import Trainer, TrainingStopped

    trainer = Trainer(config, resume=resume)
    bar = _EpochBar()

    def on_event(event):
        if event["event"] == "start":
            print(f"{event['variant']} {event['direction']}: {event['train_subjects']} training and "
                  f"{event['validation_subjects']} validation subjects on {event['device']} "
                  f"x{event['world_size']}, epoch {event['epoch'] + 1} of {event['epochs']}", file=sys.stderr)
        elif event["event"] == "step":
            bar.update(event)
        elif event["event"] == "validation":
            bar.close()
            print(f"epoch {event['epoch']}: validation MAE {event['mae']:.4f}  PSNR {event['psnr']:.2f} dB  "
                  f"SSIM {event['ssim']:.4f}{'  (best)' if event['best'] else ''}", file=sys.stderr)
            rate = event["throughput"]
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
        print(f"best epoch {summary['best_epoch']} (validation PSNR {summary['best_psnr']:.2f} dB): "
              f"{Path(config.out) / 'best.pt'}")
    return 0


class _RaisingParser(argparse.ArgumentParser):
    """Reports a bad argument as a :class:`MedSynthError` instead of printing usage and exiting."""

    def error(self, message):
        raise MedSynthError(f"{self.prog}: {message}")


class _EpochBar:
    """One tqdm bar per epoch, fed by step events."""

    def __init__(self):
        self.bar = None
        self.epoch = None

    def update(self, event: dict) -> None:
        from tqdm import tqdm

        if event["epoch"] != self.epoch:
            self.close()
            self.epoch = event["epoch"]
            self.bar = tqdm(total=event["steps"], initial=event["step"] - 1, desc=f"epoch {self.epoch}",
                            unit="step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(event["step"] - self.bar.n)
        self.bar.set_postfix(loss_g=f"{event['loss_g']:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _train(args) -> int:
    return run_training(config_from_args(args), resume=args.resume)


def _evaluate(args) -> int:
    from .evaluate import evaluate_checkpoints

    evaluate_checkpoints(args.data, args.checkpoint, split=args.split, out=args.out, stride=args.stride,
                         device=args.device, grid=args.grid)
    return 0


def _reproduce(args) -> int:
    from .reproduce import reproduce

    reproduce(args)
    return 0
