"""The ``medsynth`` command: ``phantom``, ``check``, ``synthesize``, ``compare``, ``export``, ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.console import CommandParser, add_debug_argument, counted, progress_bar, run_command
from .core.synthesis.options import add_synthesis_arguments, options_from_args

PROG = "medsynth"
DEMO_OUTPUT = "demo-output"  # where `medsynth demo` writes when there is no display
BUNDLED_NAMES = "or a bundled generator's name: its file's stem (t2-pd-G4+RL) or its variant label (G4+RL)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``medsynth`` subcommand."""
    parser = CommandParser(
        prog=PROG, description="MRI contrast synthesis (T2 <-> PD) with a 3D conditional GAN."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    phantom = commands.add_parser(
        "phantom",
        help="write simulated T2/PD brain pairs, IXI-named or as a BIDS dataset (no download needed)",
        description="Write N simulated subjects as IXI-named T2/PD .nii.gz pairs (or a BIDS dataset) into OUT.",
    )
    phantom.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    phantom.add_argument("--subjects", type=int, default=4, metavar="N", help="number of subjects (default 4)")
    phantom.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    phantom.add_argument("--shape", type=int, nargs=3, default=None, metavar=("NX", "NY", "NZ"),
                         help="grid size (default 256 256 130, IXI's); the field of view stays, so fewer "
                              "voxels are coarser (a quick try: 128 128 65)")
    phantom.add_argument("--bids", action="store_true",
                         help="write a BIDS dataset (sub-001/anat/sub-001_T2w.nii.gz and _PDw) instead of IXI names")
    phantom.add_argument("--varied-sequences", action="store_true",
                         help="acquire each subject with its own TR and echo times, drawn from clinical PD/T2 "
                              "protocols' span (TR 2500-6000 ms, TE 8-30 and 80-120 ms) and written to a .json "
                              "sidecar beside each image (default: IXI's, TR 5725 ms, TE 8 and 100 ms)")
    phantom.set_defaults(handler=_phantom)

    check = commands.add_parser(
        "check",
        help="check a folder of T2/PD pairs (IXI or BIDS) before training or synthesis",
        description="Find the T2/PD pairs in DATA (a BIDS dataset, or IXI- or BIDS-named files) and read "
                    "every volume; exit 1 on any problem.",
    )
    check.add_argument("data", type=Path, metavar="DATA",
                       help="a BIDS dataset, or a folder of IXI files (flat, or with T2/ and PD/ sub-folders)")
    check.set_defaults(handler=_check)

    synth = commands.add_parser(
        "synthesize",
        help="synthesize the other contrast of a volume with a trained generator",
        description=(
            "Preprocess SOURCE as in training, reconstruct it from overlapping patches (every slice of "
            "the 224x224x96 resample, as three interleaved stacks; --grid report: one slice in three, "
            "as the report), map the result back onto SOURCE's grid and the target contrast's intensity "
            "scale, and write it with SOURCE's affine. With --target, print MAE, PSNR and SSIM on "
            "SOURCE's grid (whole volume and head mask) and on the report's grid (standardized volumes), "
            "and write the error maps."
        ),
    )
    synth.add_argument("source", type=Path, metavar="SOURCE",
                       help="T2 or PD volume (.nii or .nii.gz), or a folder: a BIDS dataset, or IXI- or BIDS-named "
                            "files (flat, or T2/ and PD/): every file of the generator's source contrast, each "
                            "scored against its partner when there is one; under torchrun each process takes its "
                            "share of the files")
    synth.add_argument("--checkpoint", required=True, metavar="CKPT",
                       help="generator checkpoint (.pt), a .ts/.onnx from `medsynth export` with its sidecar .json, "
                            f"{BUNDLED_NAMES}; a label of both directions (G4) is taken in SOURCE's contrast's")
    synth.add_argument("--out", type=Path, required=True, metavar="OUT",
                       help="output .nii.gz (a folder for a folder SOURCE: <subject>-<contrast>_synth.nii.gz, a "
                            "JSON sidecar each and metrics.csv; for BIDS input a BIDS-derivatives dataset)")
    synth.add_argument("--skip-existing", action="store_true",
                       help="folder SOURCE: leave files whose synthesis and sidecar exist untouched")
    synth.add_argument("--target", type=Path, metavar="GT", help="ground truth of the target contrast")
    synth.add_argument("--mask", type=Path, metavar="MASK",
                       help="mask file on SOURCE's grid (non-zero: inside) for the 'head' figures, instead of "
                            "the automatic head mask (Otsu, closing, holes filled, largest component)")
    synth.add_argument(
        "--maps", type=Path, nargs="?", const=True, metavar="DIR",
        help="write the patch-spread map, and with a ground truth the squared-error and gradient-difference "
             "maps, into DIR (default: beside the synthesis)",
    )
    add_synthesis_arguments(synth)
    synth.set_defaults(handler=_synthesize)

    compare = commands.add_parser(
        "compare",
        help="compare several generators (and the intensity mapping) on one subject",
        description=(
            "Synthesize SOURCE with each generator on one preprocessing and the same options, score each "
            "against GT beside the bundled per-voxel intensity mapping, and write each synthesis (with its "
            "sidecar), OUT/metrics.csv (one row per generator and baseline: MAE, PSNR and SSIM on each "
            "scope) and OUT/compare.png (one row per generator: the synthesis and its squared error). "
            "A generator that cannot run is one line and the others go on (exit 1 at the end); when none "
            "can, nothing is written."
        ),
    )
    compare.add_argument("source", type=Path, metavar="SOURCE", help="T2 or PD volume (.nii or .nii.gz)")
    compare.add_argument("--target", type=Path, metavar="GT",
                         help="ground truth of the target contrast (default: SOURCE's partner beside it, found by "
                              "its IXI or BIDS name)")
    compare.add_argument("--checkpoint", nargs="+", metavar="CKPT",
                         help=f"generator checkpoints, each a file {BUNDLED_NAMES}, a label taken in the direction "
                              "compared (default: every bundled generator of the direction)")
    compare.add_argument("--direction", metavar="t2-pd|pd-t2",
                         help="the direction compared (default: the first checkpoint's that tells it, else the "
                              "contrast SOURCE's name says (IXI, BIDS, a T2/PD token), else its intensities)")
    compare.add_argument("--out", type=Path, required=True, metavar="OUT", help="output folder (created if missing)")
    compare.add_argument("--mask", type=Path, metavar="MASK",
                         help="mask file on SOURCE's grid for the 'head' figures, instead of the automatic head mask")
    add_synthesis_arguments(compare, maps=False)
    compare.set_defaults(handler=_compare)

    export = commands.add_parser(
        "export",
        help="write a generator as TorchScript, ONNX or a MONAI bundle, for use without this package",
        description=(
            "Write the generator of CKPT as it runs at inference (eval mode, BatchNorm folded into the "
            "convolutions): a TorchScript .ts, an ONNX .onnx (dynamic batch and spatial axes) or a MONAI "
            "bundle folder. A .ts or .onnx gets a sidecar PATH.json (model.ts.json) with the direction, "
            "preprocessing and intensities, so that `medsynth synthesize --checkpoint PATH` runs it."
        ),
    )
    export.add_argument("checkpoint", metavar="CKPT", help=f"generator checkpoint (.pt), {BUNDLED_NAMES}")
    export.add_argument("--format", required=True, dest="model_format", metavar="torchscript|onnx|monai-bundle",
                        help="torchscript (PATH ends in .ts), onnx (.onnx) or monai-bundle (PATH: a new folder)")
    export.add_argument("--out", type=Path, required=True, metavar="PATH", help="the file or the bundle's folder")
    export.set_defaults(handler=_export)

    demo = commands.add_parser(
        "demo",
        help="open napari on the phantom pair and synthesize it with the bundled demo generator",
        description=(
            "Open napari on the built-in phantom T2/PD pair and run the default demo generator "
            "(PD->T2 G4+RL, trained on the phantom) through the synthesis widget: source, synthesis, "
            "ground truth and maps side by side. With --headless, do the same work without a window "
            "and write the NIfTI files, metrics.json (beside two baselines) and demo.png to OUT_DIR."
        ),
    )
    demo.add_argument("--headless", type=Path, metavar="OUT_DIR",
                      help=f"no window: write the results to OUT_DIR (without a display: {DEMO_OUTPUT}/)")
    add_synthesis_arguments(demo)
    demo.set_defaults(handler=_demo)
    add_debug_argument(parser, commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medsynth`` console script."""
    args = build_parser().parse_args(argv)
    return run_command(PROG, lambda: args.handler(args), debug=args.debug)


def _phantom(args) -> int:
    from .core.simulation.phantom import DEFAULT_SHAPE, write_phantom_dataset

    with progress_bar("phantom subjects", args.subjects, unit="subject") as progress:
        pairs = write_phantom_dataset(args.out, args.subjects, seed=args.seed, progress=progress,
                                      shape=args.shape or DEFAULT_SHAPE, bids=args.bids,
                                      varied_sequences=args.varied_sequences)
    print(f"wrote {counted(len(pairs), 'T2/PD pair')} to {args.out}")
    return 0


def _check(args) -> int:
    from .core.errors import MedSynthError
    from .core.files.nifti import load_volume
    from .core.files.scans import find_pairs
    from .core.preprocessing.preprocess import Standardization, check_pair, check_volume_shape

    scan = find_pairs(args.data)
    print(scan.summary())
    for path in scan.unpaired:
        print(f"  no partner: {path.relative_to(scan.folder)}")
    for line in scan.ambiguous:
        print(f"  {line}")
    if not scan.pairs:
        raise MedSynthError(scan.none_found())
    problems = 0
    with progress_bar("checking pairs", len(scan.pairs), unit="pair") as progress:
        for done, pair in enumerate(scan.pairs, start=1):
            try:
                t2, pd = load_volume(pair.t2), load_volume(pair.pd)
                check_pair(t2, pd)
                for volume in (t2, pd):
                    check_volume_shape(volume)
                    Standardization.of(volume.data, volume.name)
            except MedSynthError as error:
                problems += 1
                print(f"  {error}", file=sys.stderr)
            progress(done, len(scan.pairs))
    if problems:
        raise MedSynthError(f"{problems} of {len(scan.pairs)} pairs cannot be used")
    print(f"all {len(scan.pairs)} pairs are usable")
    return 0


def _synthesize(args) -> int:
    from .core.errors import MedSynthError
    from .core.files.atomic import make_folder
    from .core.files.nifti import is_nifti_path, load_volume
    from .core.preprocessing.preprocess import check_volume_shape
    from .core.synthesis.catalog import resolve_generator
    from .core.synthesis.job import SynthesisJob

    options = options_from_args(args)
    if args.source.is_dir():
        return _synthesize_folder(args, options)
    if args.skip_existing:
        raise MedSynthError("--skip-existing is for a folder SOURCE")
    maps_dir = args.maps if options.maps and args.maps is not True else None  # None: beside the synthesis
    if not is_nifti_path(args.out):
        raise MedSynthError(f"{args.out.name}: output must end in .nii or .nii.gz")
    checkpoint = resolve_generator(args.checkpoint, source=args.source)
    inputs = [p for p in (args.source, args.target, checkpoint, args.mask) if p is not None]
    if args.out.resolve() in {p.resolve() for p in inputs}:
        raise MedSynthError(f"{args.out}: refusing to overwrite an input file")
    job = SynthesisJob.load(args.source, checkpoint, options, target=args.target,
                            mask=load_volume(args.mask).data if args.mask else None, to_files=True)
    info = job.info
    check_volume_shape(job.source)  # (synthesis checks it too: here, before any folder is made)
    for folder in {args.out.parent, maps_dir if options.maps else None} - {None}:  # fail before the work, not after
        make_folder(folder)
    protect = [args.mask] if args.mask else []
    with progress_bar(f"{info.label} {info.source_contrast}->{info.target_contrast}", unit="patch") as progress:
        result = job.run(progress=progress, figures=not options.preview)
    if result.scorable and job.target is not None:  # --preview: the picture first, its figures after
        print(f"wrote {job.save(result, args.out, protect=protect, with_maps=False)[0]} "
              "(the one-pass preview; its figures follow)", flush=True)
        result = result.scored(job.target)
        written = job.save(result, args.out, maps_folder=maps_dir, protect=protect, volume=False)
    else:
        written = job.save(result, args.out, maps_folder=maps_dir, protect=protect)
        print(f"wrote {written[0]}")
    if result.metrics is not None:
        print("\n".join(result.metrics.table()))
        print("(standardized volumes; PSNR peak = range of the standardized ground truth)")
    for path in written[1:]:
        print(f"wrote {path}")
    return 0


def compare_plan(args, source) -> tuple[str, list[str | Path]]:
    """``medsynth compare``'s direction and checkpoints: ``--direction``, else the first checkpoint's
    that tells it (a file, a bundled generator's file name), else the source's contrast (its name,
    else its intensities); ``--checkpoint`` as given (:func:`_runnable` resolves each), else every
    bundled generator of that direction."""
    from .core.choices import parse_direction
    from .core.synthesis.catalog import bundled_generators, source_direction

    if args.direction:
        direction = parse_direction(args.direction).value
    else:
        direction = _first_direction(args.checkpoint or []) or source_direction(source) or "t2-pd"
    return direction, list(args.checkpoint or [entry.path for entry in bundled_generators(direction)])


def _compare(args) -> int:
    from dataclasses import replace

    from .core.errors import MedSynthError
    from .core.files.atomic import make_folder
    from .core.files.nifti import load_volume
    from .core.files.scans import partner_path
    from .core.networks.devices import resolve_device
    from .core.preprocessing.preprocess import check_volume_shape
    from .core.synthesis.compare import compare_generators, metrics_csv, write_comparison

    options = options_from_args(args)
    options = options.replace(device=resolve_device(options.device))
    if args.target is None:
        args.target = partner_path(args.source)
        if args.target is None:
            raise MedSynthError(f"{args.source}: no --target given and no T2/PD partner of it beside it "
                                "(IXI -T2/-PD, BIDS _T2w/_PDw of the same entities, NAME_T2/NAME_PD)")
    source, target = load_volume(args.source), load_volume(args.target)
    check_volume_shape(source)  # (the synthesis checks it too: here, before the output folder is made)
    direction, given = compare_plan(args, source)
    names = args.checkpoint or [path.name for path in given]  # each as given; a bundled one by its file's name
    checkpoints, problems = _runnable(given, names, direction, source, target)
    if len(problems) == len(given):
        _refuse_all(list(problems.values()))
    new_folder = not args.out.exists()
    make_folder(args.out)  # an unwritable folder fails before the work, not after it
    try:
        inputs = [args.source, args.target, *checkpoints, *([args.mask] if args.mask else [])]
        mask = load_volume(args.mask).data if args.mask else None
        with progress_bar(counted(len(checkpoints), "generator"), unit="patch") as progress:
            rows = compare_generators(source, checkpoints, direction, options, target=target, mask=mask,
                                      progress=progress)
        rows = [replace(row, error=problems.get(index) or _naming(names[index], checkpoints[index], row.error))
                if row.error else row for index, row in enumerate(rows)]
        failed = [row.error for row in rows if row.error]
        if len(failed) == len(checkpoints):  # none ran after all (a failure on this volume)
            _refuse_all(failed)
        written = write_comparison(rows, source, target, args.out, protect=inputs)
    finally:
        if new_folder and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # a comparison that wrote nothing leaves no folder behind
    print(metrics_csv(rows), end="")
    for path in written:
        print(f"wrote {path}")
    for line in failed:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    if failed:
        raise MedSynthError(f"{len(failed)} of {len(checkpoints)} generators could not run")
    return 0


def _runnable(given, names: list[str], direction: str, source, target) -> tuple[list[Path], dict[int, str]]:
    """Each of ``compare``'s generators as a file (a bundled name resolved; one that is not, as given)
    and, by index, the one line naming it (by ``names``) that says why it cannot run: not a checkpoint
    or bundled name, unreadable, of another direction, or SOURCE or GT of the wrong contrast for it (as
    the synthesis would refuse it, here before any work)."""
    import warnings

    from .core.errors import MedSynthError
    from .core.networks.checkpoint import load_checkpoint
    from .core.synthesis.catalog import resolve_generator
    from .core.synthesis.pipeline import check_contrast

    checkpoints, problems = [], {}
    for index, (text, name) in enumerate(zip(given, names)):
        path = Path(text)
        try:
            path = resolve_generator(text, direction)
            info = load_checkpoint(path, direction).info
            with warnings.catch_warnings():  # (a warning is said once, by the synthesis itself)
                warnings.simplefilter("ignore")
                check_contrast(source, info.source_contrast, "source")
                check_contrast(target, info.target_contrast, "ground truth")
        except MedSynthError as error:
            problems[index] = _naming(name, path, str(error))
        checkpoints.append(path)
    return checkpoints, problems


def _naming(name: str, path: Path, message: str) -> str:
    """``message`` about the generator given as ``name`` (the file ``path``), led by ``name`` unless it
    names the generator already."""
    return message if message.startswith((f"{name}: ", f"{path.name}: ")) else f"{name}: {message}"


def _refuse_all(lines: list[str]) -> None:
    """No generator of a comparison can run: its line, or one line each (naming it) and a last one."""
    from .core.errors import MedSynthError

    if len(lines) == 1:
        raise MedSynthError(lines[0])
    for line in lines:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    raise MedSynthError(f"none of the {len(lines)} generators can run: nothing written")


def _first_direction(checkpoints) -> str | None:
    """The direction of the first of ``checkpoints`` that is a readable file or a bundled name that says it
    (a variant label of both directions does not), else None."""
    from .core.errors import MedSynthError
    from .core.synthesis.catalog import read_generator_entry, resolve_generator

    for text in checkpoints:
        try:
            return read_generator_entry(resolve_generator(text)).info.direction
        except (MedSynthError, OSError):
            continue
    return None


def _export(args) -> int:
    from .core.networks.export import export_generator
    from .core.networks.exported import sidecar_path
    from .core.synthesis.catalog import resolve_generator

    out = export_generator(resolve_generator(args.checkpoint), args.model_format, args.out)
    if out.is_dir():
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"wrote the MONAI bundle {out} ({size / 1e6:.2f} MB)")
    else:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {sidecar_path(out).name}")
    return 0


def _synthesize_folder(args, options) -> int:
    """``medsynth synthesize DIR``: every file, one line per failure, exit 1 if any failed; under
    torchrun each rank takes its share of the files and rank 0 writes metrics.csv at the end
    (:func:`~napari_medsynth.core.synthesis.folder.run_folder`)."""
    from .core.errors import MedSynthError
    from .core.files.nifti import is_nifti_path
    from .core.networks.devices import TorchrunRank
    from .core.synthesis.catalog import resolve_generator
    from .core.synthesis.folder import run_folder

    if args.target is not None or options.preview or args.mask is not None:
        raise MedSynthError("a folder SOURCE finds each file's ground truth itself (and masks it automatically) "
                            "and has no --preview: drop --target / --mask / --preview")
    if (args.out.exists() and not args.out.is_dir()) or is_nifti_path(args.out):
        raise MedSynthError(f"{args.out}: for a folder SOURCE, --out is a folder")
    checkpoint = resolve_generator(args.checkpoint)  # (a label of both directions: refused, naming both)
    place = TorchrunRank.from_env()
    label = f"files (rank {place.rank} of {place.world_size})" if place.world_size > 1 else "files"
    current = [0, 0, ""]  # the file being synthesized: done, total, name

    def on_file(done: int, total: int, name: str) -> None:
        current[:] = done, total, name
        progress(done, total, name)

    def on_patches(done: int, total: int) -> None:  # the bar moves during each file: its patches, in percent
        progress(current[0], current[1], f"{current[2]} {100 * done // max(total, 1)}%")

    with progress_bar(label, unit="file") as progress:
        outcome = run_folder(args.source, checkpoint, args.out, options, skip_existing=args.skip_existing,
                             maps_dir=None if args.maps is True else args.maps, on_file=on_file, progress=on_patches)
        progress(len(outcome.files), len(outcome.files), "")
    for line in outcome.report.failed:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    untruthed = outcome.report.untruthed_line(_target_of(checkpoint))
    if untruthed:
        print(f"{PROG}: {untruthed}", file=sys.stderr)
    if outcome.rank == 0:
        for path in outcome.report.written:
            print(f"wrote {path}")
        print(outcome.summary())
        if outcome.metrics is not None:
            print(f"metrics of the files with a ground truth: {outcome.metrics}")
    return 1 if outcome.failed else 0


def _target_of(checkpoint) -> str:
    from .core.synthesis.catalog import read_generator_entry

    return read_generator_entry(checkpoint).info.target_contrast


def _demo(args) -> int:
    import os

    from .core.evaluation.figures import Figures
    from .demo import run_headless_demo

    options = options_from_args(args)
    if args.headless is None:
        headless_linux = sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM") in {"offscreen", "minimal"}
        )
        if headless_linux:
            print(f"{PROG}: no display to open napari on: running headless into {DEMO_OUTPUT}/ "
                  "(or choose a folder with --headless OUT_DIR)", file=sys.stderr)
            args.headless = Path(DEMO_OUTPUT)
    if args.headless is None:
        import threading
        import warnings

        from .core.simulation.phantom import sample_pair

        # the sample is read (or, the first time, simulated) while napari starts: its window comes first
        threading.Thread(target=sample_pair, daemon=True).start()
        import napari

        from .demo import open_demo_viewer

        # napari's own notices about its Qt backend are not the user's business here
        warnings.filterwarnings("ignore", message="System theme detection requires a Qt6 backend")

        open_demo_viewer(options=options, when_shown=True)
        napari.run()
        return 0
    with progress_bar("demo synthesis", unit="patch") as progress:
        summary = run_headless_demo(args.headless, options, progress=progress)
    print(f"{summary['direction']} {summary['generator']} on the {summary['subject']}, "
          f"stride {options.stride}, {options.grid} grid:")
    for name, scopes in summary["metrics"].items():
        for scope, quality in Figures.from_dict(scopes).items():
            print(f"  {name:38s} {scope:6s} {quality.text()}")
    for path in summary["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
