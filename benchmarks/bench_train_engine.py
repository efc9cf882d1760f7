"""Benchmark training steps with the direct and the transform-domain (FFT) convolution engine,
and with "auto" (the default: per layer).

Three trainers, identical but for ``--engine`` (same seed, same phantom data, same batches),
each run ``--steps`` G3 steps (discriminator and generator updates, batch 7, one loader
order); it reports the median step time of each engine, their ratios to direct, and the largest
difference between the two loss curves step by step. A third run, the direct engine with
every initial weight moved by one float32 rounding (a relative 2^-24, random sign), shows how
far a rounding-sized difference carries through the same steps of adversarial training with
Adam: the yardstick for "the same curve to within float rounding".

    .venv/bin/python benchmarks/bench_train_engine.py --width 1 --steps 3
    .venv/bin/python benchmarks/bench_train_engine.py --width 0.25 --steps 20
    .venv/bin/python benchmarks/bench_train_engine.py --width 0.25 --steps 6 --bf16  # + bfloat16 autocast
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from napari_medsynth.core.simulation.phantom import write_phantom_dataset
from napari_medsynth.core.training.config import TrainConfig
from src_train.trainer import Trainer


def run_engine(data: Path, work: Path, engine: str, args, perturb: bool = False,
               bf16: bool = False) -> tuple[list[float], list[dict]]:
    """Step times and losses of ``args.steps`` steps on ``engine`` (``perturb``: initial weights
    moved by one float32 rounding; ``bf16``: under bfloat16 autocast, as AMP on CUDA)."""
    name = f"{engine}-perturbed" if perturb else f"{engine}-bf16" if bf16 else engine
    config = TrainConfig(data=str(data), out=str(work / name), variant="G3", epochs=1, width=args.width,
                         batch_size=args.batch_size, workers=0, device=args.device, engine=engine,
                         cache=str(work / "cache"), seed=0)
    trainer = Trainer(config)
    trainer.setup()
    if bf16:
        trainer.amp_dtype = torch.bfloat16
    if perturb:
        signs = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for parameter in trainer.generator.parameters():
                flips = torch.randint(0, 2, parameter.shape, generator=signs).to(parameter) * 2 - 1
                parameter.mul_(1 + flips * 2.0**-24)
    torch.manual_seed(0)
    times, losses = [], []
    batches = iter(trainer.loader)
    for _ in range(args.steps):
        try:
            source, target = next(batches)
        except StopIteration:
            batches = iter(trainer.loader)
            source, target = next(batches)
        start = time.perf_counter()
        losses.append(trainer.step(source, target))
        times.append(time.perf_counter() - start)
    return times, losses


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true",
                        help="also the auto engine under bfloat16 autocast (a CPU with AVX512-BF16 or AMX)")
    parser.add_argument("--out", type=Path, help="write JSON here, and Markdown beside it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_phantom_dataset(work / "data", 3, seed=0)
        runs = {engine: run_engine(work / "data", work, engine, args) for engine in ("direct", "fft", "auto")}
        runs["direct-perturbed"] = run_engine(work / "data", work, "direct", args, perturb=True)
        if args.bf16:
            runs["auto-bf16"] = run_engine(work / "data", work, "auto", args, bf16=True)
    medians = {engine: statistics.median(times[1:] or times) for engine, (times, _) in runs.items()
               if engine != "direct-perturbed"}
    difference = _largest_difference(runs["direct"][1], runs["fft"][1])
    rounding = _largest_difference(runs["direct"][1], runs["direct-perturbed"][1])
    summary = {"width": args.width, "batch_size": args.batch_size, "steps": args.steps, "device": args.device,
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "median_step_s": medians, "speedup": medians["direct"] / medians["fft"],
               "speedup_auto": medians["direct"] / medians["auto"],
               "max_relative_loss_difference": difference,
               "max_relative_loss_difference_one_rounding": rounding,
               "losses": {engine: losses for engine, (_, losses) in runs.items()},
               "step_s": {engine: times for engine, (times, _) in runs.items()}}
    text = (f"width {args.width:g}, batch {args.batch_size}, {args.steps} G3 steps on {args.device} "
            f"({summary['threads']} threads): median step direct {medians['direct']:.2f} s, "
            f"fft {medians['fft']:.2f} s ({summary['speedup']:.2f}x), auto {medians['auto']:.2f} s "
            f"({summary['speedup_auto']:.2f}x); largest relative difference of the losses step by step "
            f"{difference:.1e} (direct against direct with its initial weights moved by one float32 "
            f"rounding: {rounding:.1e})")
    if args.bf16:
        summary["speedup_bf16"] = medians["auto"] / medians["auto-bf16"]
        summary["max_relative_loss_difference_bf16"] = _largest_difference(runs["auto"][1], runs["auto-bf16"][1])
        text += (f"; auto under bfloat16 autocast {medians['auto-bf16']:.2f} s ({summary['speedup_bf16']:.2f}x "
                 f"auto), its losses within {summary['max_relative_loss_difference_bf16']:.1e} of auto's")
    print(text)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text + "\n")
    return summary


def _largest_difference(reference: list[dict], other: list[dict]) -> float:
    """The largest relative difference of the G, reconstruction and D losses, step by step."""
    return max(abs(a[name] - b[name]) / max(abs(a[name]), 1e-12)
               for a, b in zip(reference, other) for name in ("loss_g", "loss_rec", "loss_d"))


if __name__ == "__main__":
    main()
