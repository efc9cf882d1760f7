"""The ``medsynth`` command: ``medsynth phantom``, ``medsynth check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.console import progress_bar, run_command

PROG = "medsynth"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``medsynth`` subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="MRI contrast synthesis (T2 <-> PD) with a 3D conditional GAN."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    phantom = commands.add_parser(
        "phantom",
        help="write simulated IXI-named T2/PD brain pairs (no download needed)",
        description="Write N simulated subjects as IXI-named T2/PD .nii.gz pairs into OUT.",
    )
    phantom.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    phantom.add_argument("--subjects", type=int, default=4, metavar="N", help="number of subjects (default 4)")
    phantom.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    phantom.set_defaults(handler=_phantom)

    check = commands.add_parser(
        "check",
        help="check a folder of IXI T2/PD pairs before training or synthesis",
        description="Find the IXI T2/PD pairs in DATA and read every volume; exit 1 on any problem.",
    )
    check.add_argument("data", type=Path, metavar="DATA", help="folder, flat or with T2/ and PD/ sub-folders")
    check.set_defaults(handler=_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medsynth`` console script."""
    args = build_parser().parse_args(argv)
    return run_command(PROG, lambda: args.handler(args))


def _phantom(args) -> int:
    from .core.phantom import write_phantom_dataset

    with progress_bar("phantom subjects", args.subjects, unit="subject") as progress:
        pairs = write_phantom_dataset(args.out, args.subjects, seed=args.seed, progress=progress)
    print(f"wrote {len(pairs)} T2/PD pairs to {args.out}")
    return 0


def _check(args) -> int:
    from .core.errors import MedSynthError
    from .core.ixi import find_ixi_pairs
    from .core.nifti import load_volume
    from .core.preprocess import Standardization, check_pair

    scan = find_ixi_pairs(args.data)
    print(scan.summary())
    for path in scan.unpaired:
        print(f"  no partner: {path.name}")
    if not scan.pairs:
        raise MedSynthError(f"{args.data}: no IXI T2/PD pairs (IXI###-Site-####-T2.nii.gz with -PD)")
    problems = 0
    with progress_bar("checking pairs", len(scan.pairs), unit="pair") as progress:
        for done, pair in enumerate(scan.pairs, start=1):
            try:
                t2, pd = load_volume(pair.t2), load_volume(pair.pd)
                check_pair(t2, pd)
                for volume in (t2, pd):
                    Standardization.of(volume.data, volume.name)
            except MedSynthError as error:
                problems += 1
                print(f"  {error}", file=sys.stderr)
            progress(done, len(scan.pairs))
    if problems:
        raise MedSynthError(f"{problems} of {len(scan.pairs)} pairs cannot be used")
    print(f"all {len(scan.pairs)} pairs are usable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
