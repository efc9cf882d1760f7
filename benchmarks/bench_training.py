"""Training throughput: patches/s of the generator and discriminator updates, and the loader's share.

Each case trains a G3 (L2 + adversarial + gradient difference: both networks update every
step) for one epoch on phantom subjects with ``src_train``'s own Trainer, and reports the
``throughput`` its validation event carries (see ``src_train.trainer.StepTiming``): patches
per second over the epoch, of the D update alone and of the G update alone (the forward pass
that feeds D counts as G's), and the fraction of the epoch spent waiting for the DataLoader.

    .venv/bin/python benchmarks/bench_training.py --widths 0.125 0.25 --workers 0 2 --out results/training.json

Without ``--data`` it writes 3 phantom subjects to a temporary folder (1 training subject:
49 patches per epoch); with ``--data DIR`` it uses those pairs (split as training does).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from napari_medsynth.core.networks.devices import resolve_device
from napari_medsynth.core.simulation.phantom import write_phantom_dataset
from napari_medsynth.core.training.config import TrainConfig
from napari_medsynth.core.training.events import ValidationEvent
from src_train.trainer import Trainer


def run_case(data: Path, work: Path, width: float, batch_size: int, workers: int, device: str) -> dict:
    """One epoch of G3 training; its throughput summary."""
    out = work / f"w{width:g}-b{batch_size}-j{workers}-{device}"
    config = TrainConfig(data=str(data), out=str(out), variant="G3", epochs=1, width=width, batch_size=batch_size,
                         workers=workers, device=device, val_stride=32, cache=str(work / "cache"))
    events = []
    Trainer(config, on_event=events.append).run()
    validation = next(e for e in events if isinstance(e, ValidationEvent))
    return {"width": width, "batch_size": batch_size, "workers": workers, "device": device,
            **validation.throughput}


def markdown(rows: list[dict]) -> str:
    lines = ["| width | batch | loader workers | device | patches | patches/s (epoch) | D update patches/s "
             "| G update patches/s | waiting for data |", "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['width']:g} | {r['batch_size']} | {r['workers']} | {r['device']} | {r['patches']} | "
                     f"{r['patches_per_s']:.2f} | {r.get('discriminator_patches_per_s', 0):.2f} | "
                     f"{r['generator_patches_per_s']:.2f} | {100 * r['loader_wait_fraction']:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="IXI-named T2/PD pairs (default: 3 phantom subjects)")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125, 0.25])
    parser.add_argument("--batch-size", type=int, default=7)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here and the table beside it (.md)")
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            data = work / "phantom"
            write_phantom_dataset(data, 3, seed=0)
        rows = [run_case(data, work, width, args.batch_size, workers, device)
                for width in args.widths for workers in args.workers]
    machine = (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads")
    if device.startswith("cuda"):
        machine += f", {torch.cuda.get_device_name()}"
    table = markdown(rows)
    print(f"{machine}\n\n{table}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
        args.out.with_suffix(".md").write_text(f"{machine}\n\n{table}\n")


if __name__ == "__main__":
    main()
