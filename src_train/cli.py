"""``medsynth-train`` (also ``python -m src_train``): train, evaluate, reproduce."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_medsynth.core.choices import Grid
from napari_medsynth.core.console import CommandParser, add_debug_argument, run_command
from napari_medsynth.core.synthesis.options import add_synthesis_arguments, options_from_args
from napari_medsynth.core.training.config import add_train_arguments, config_from_args

from .plan import ReproduceConfig

PROG = "medsynth-train"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``medsynth-train`` subcommand."""
    parser = CommandParser(prog=PROG, description="Train and evaluate napari-medsynth generators.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train one generator variant (G1-G4)",
        description="Train a generator on a folder of IXI-named T2/PD pairs. Writes RUN_DIR/last.pt (every "
                    "epoch), RUN_DIR/best.pt (highest mean validation PSNR), metrics.csv, val_subjects.csv, "
                    "events.jsonl, curves.png and split.json. Ctrl-C or SIGTERM saves last.pt and exits; "
                    "--resume continues exactly. Under torchrun it trains with DistributedDataParallel.",
    )
    add_train_arguments(train)
    train.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", help="test-set table (MAE, PSNR, SSIM) of one or more checkpoints",
        description="Synthesize each test subject with each checkpoint and write a Markdown table of mean +- std "
                    "MAE/PSNR/SSIM on the source grid (whole volume, head mask) and on the report grid, and a "
                    "per-subject CSV. Test subjects come from the split.json beside each "
                    "checkpoint (or --split); without one, every pair in DATA is used.",
    )
    evaluate.add_argument("--data", type=Path, required=True, metavar="DIR")
    evaluate.add_argument("--checkpoint", nargs="+", required=True, metavar="CKPT",
                          help="generator checkpoints (.pt), or bundled generators' names (t2-pd-G4+RL, or a "
                               "variant label of one direction, as G3)")
    evaluate.add_argument("--split", type=Path, metavar="SPLIT_JSON", help="split file to take the test subjects from")
    evaluate.add_argument("--out", type=Path, metavar="DIR",
                          help="where to write the tables (default: beside the first checkpoint, unless it is "
                               "a bundled one)")
    add_synthesis_arguments(evaluate, maps=False)
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
    reproduce.add_argument("--batch-size", type=int, default=None, metavar="B",
                           help="default: the report's 7 for T2->PD and 49 for PD->T2")
    reproduce.add_argument("--grid", choices=[grid.value for grid in Grid], default=Grid.NATIVE.value,
                           help="synthesize the test subjects on every slice (native, default) or one in three "
                                "(report); the figures are given on the source grid and on the report grid either way")
    add_train_arguments(reproduce, only=ReproduceConfig.shared_options())
    reproduce.set_defaults(handler=_reproduce)
    add_debug_argument(parser, commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``medsynth-train`` and ``python -m src_train``."""
    args = build_parser().parse_args(argv)
    return run_command(PROG, lambda: args.handler(args), debug=args.debug)


def _train(args) -> int:
    from napari_medsynth.core.synthesis.catalog import resolve_generator

    from .run import run_training

    config = config_from_args(args)
    if config.init:  # a file, or a bundled generator's name (a label: of --direction)
        config.init = str(resolve_generator(config.init, config.direction))
    return run_training(config, resume=args.resume)


def _evaluate(args) -> int:
    from napari_medsynth.core.errors import MedSynthError
    from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR, resolve_generator

    from .evaluate import evaluate_checkpoints

    options = options_from_args(args)
    checkpoints = [resolve_generator(text) for text in args.checkpoint]
    if args.out is None and checkpoints[0].resolve().parent == BUNDLED_DIR:
        raise MedSynthError(f"{args.checkpoint[0]} is a bundled generator, in the package's folder: "
                            "give --out DIR for the tables")
    evaluate_checkpoints(args.data, checkpoints, options, split=args.split, out=args.out)
    return 0


def _reproduce(args) -> int:
    from .reproduce import reproduce

    reproduce(ReproduceConfig.from_args(args))
    return 0
