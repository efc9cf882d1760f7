"""Benchmark whole-volume reconstruction: ours against MONAI and TorchIO, and the preview.

All methods run in one process on the same generator weights (seeded, BatchNorm statistics
set to non-trivial values) and the same source, a phantom subject preprocessed as for
synthesis (224 x 224 x 32, standardized; resampled when ``--shape`` differs). Methods:

- ``ours``: :func:`reconstruct_volume` (BatchNorm folded, float32, ``--engine``: by default
  ``"auto"``, the transform domain for the layers where it is faster);
- ``direct``: the same with ``engine="direct"`` (every convolution as ``nn.Conv3d``, each in
  its faster memory layout);
- ``plain``: the same averaging with the eval-mode model called as it is (BatchNorm not
  folded); its output is the reference for the "max |diff|" column, computed untimed
  when ``plain`` is not asked for;
- ``monai``: ``sliding_window_inference`` with ``mode="constant"``, the same batch size;
- ``torchio``: ``GridSampler``/``GridAggregator(overlap_mode="average")`` with a
  ``DataLoader`` of the same batch size;
- ``preview``: :func:`preview_volume`, one pass over the whole volume (no stride).

The peers get the eval-mode model as a user would hand it over (``--peers-channels-last``
gives them the channels-last copy too). Times are the best of ``--repeat`` runs; the first
run of each method includes one-off costs (kernel selection, allocator warm-up).

Quick check::

    .venv/bin/python benchmarks/bench_reconstruct.py --widths 0.0625 --strides 32 --shape 64 64 32 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from napari_medsynth import Generator, load_checkpoint, reconstruct_volume
from napari_medsynth.core.evaluation.metrics import psnr
from napari_medsynth.core.files.nifti import Volume, load_volume, save_volume
from napari_medsynth.core.networks.devices import resolve_device
from napari_medsynth.core.preprocessing.patches import patch_grid
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume, to_source_grid
from napari_medsynth.core.simulation.phantom import make_phantom_pair
from napari_medsynth.core.synthesis.reconstruct import default_batch_size, preview_volume

PATCH = 32
METHODS = ("ours", "direct", "plain", "monai", "torchio", "preview")
PEERS = ("monai", "torchio")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25], help="generator widths")
    parser.add_argument("--checkpoint", help="time this trained generator instead of --widths")
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--shape", type=int, nargs=3, default=[224, 224, 32], help="source shape (Z Y X)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["ours", "monai", "torchio", "preview"])
    parser.add_argument("--engine", choices=("auto", "direct", "fft"), default="auto", help="ours' engine")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best counts")
    parser.add_argument("--batch-size", type=int, help="patches per pass for all methods (default: ours')")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--peers-channels-last", action="store_true",
                        help="give MONAI and TorchIO the channels-last model too")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, to report the fraction achieved")
    parser.add_argument("--memory-case", action="store_true",
                        help="peak RSS of one 256x256x130 synthesis (first width and stride) in a fresh process")
    parser.add_argument("--out", type=Path, help="write JSON here and the Markdown table next to it (.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- inputs


def make_generator(width: float, seed: int = 0) -> Generator:
    """A seeded eval-mode generator with BatchNorm statistics and affine terms away from identity."""
    torch.manual_seed(seed)
    model = Generator(width=width)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


def models(args) -> list[tuple[str, Generator]]:
    if args.checkpoint:
        model, info = load_checkpoint(args.checkpoint)
        return [(f"{Path(args.checkpoint).name} (w {info.width:g})", model)]
    return [(f"{width:g}", make_generator(width, args.seed)) for width in args.widths]


def standardized_pair(source: Volume, target: Volume, shape) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed source and target, resampled to ``shape`` when it is not 224x224x32."""
    from scipy import ndimage

    source, target = preprocess_volume(source).data, preprocess_volume(target).data
    if source.shape != tuple(shape):
        zoom = [n / m for n, m in zip(shape, source.shape)]
        source, target = (ndimage.zoom(a, zoom, order=1, grid_mode=True, mode="nearest") for a in (source, target))
    return source.astype(np.float32), target.astype(np.float32)


def flops_per_voxel(model: torch.nn.Module) -> int:
    """Convolution FLOPs per output voxel: 2 k^3 Cin Cout summed over the layers."""
    return sum(2 * m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv3d))


# ----------------------------------------------------------------------------- methods


def method_runners(model, source, stride, batch, device, args, methods) -> dict:
    """``name -> callable() -> float32 array`` for ``methods``, and plain (the reference) always."""
    plain = copy.deepcopy(model).to(device, memory_format=torch.channels_last_3d)
    layout = torch.channels_last_3d if args.peers_channels_last else torch.contiguous_format
    peer = copy.deepcopy(model).eval().to(device, memory_format=layout)
    runners = {
        "ours": lambda: reconstruct_volume(model, source, stride=stride, batch_size=batch, device=device,
                                           engine=args.engine),
        "direct": lambda: reconstruct_volume(model, source, stride=stride, batch_size=batch, device=device,
                                             engine="direct"),
        "plain": lambda: reconstruct_volume(lambda x: plain(x), source, stride=stride, batch_size=batch, device=device),
        "monai": lambda: run_monai(peer, source, stride, batch, device),
        "torchio": lambda: run_torchio(peer, source, stride, batch, device),
        "preview": lambda: preview_volume(model, source, device=device, engine=args.engine),
    }
    return {name: run for name, run in runners.items() if name in methods or name == "plain"}


def run_monai(model, source, stride, batch, device) -> np.ndarray:
    from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy(source)[None, None].to(device)
    with torch.inference_mode():
        output = sliding_window_inference(
            inputs, roi_size=(PATCH,) * 3, sw_batch_size=batch, predictor=model,
            overlap=1 - stride / PATCH, mode="constant",
        )
    return output[0, 0].float().cpu().numpy()


def run_torchio(model, source, stride, batch, device) -> np.ndarray:
    import torchio as tio

    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(source)[None]))
    # patch_overlap is the overlap: starts every PATCH - overlap voxels, plus the border patch.
    sampler = tio.inference.GridSampler(subject, patch_size=PATCH, patch_overlap=PATCH - stride)
    aggregator = tio.inference.GridAggregator(sampler, overlap_mode="average")
    with torch.inference_mode():
        for patches in torch.utils.data.DataLoader(sampler, batch_size=batch):
            aggregator.add_batch(model(patches["image"][tio.DATA].to(device)), patches[tio.LOCATION])
    return aggregator.get_output_tensor()[0].float().numpy()


# ----------------------------------------------------------------------------- measuring


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux /proc, else psutil when installed)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc), so that each RSS peak starts low."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory in a block: CUDA's max allocated, or the RSS sampled every 2 ms above its
    level at the start (``peak`` in bytes, None where neither can be read)."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, None
        self._stop = threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            release_free_memory()
            self._base = rss_bytes()
            self._high = self._base
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self._high = max(self._high, rss_bytes())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._sampler.join()
            if self._base is not None:
                self.peak = max(self._high, rss_bytes()) - self._base


def measure(run, repeat: int, device: torch.device) -> tuple[float, float | None, np.ndarray]:
    """Best wall time of ``repeat`` runs, the largest peak memory, and the output."""
    best, peak, output = float("inf"), None, None
    for _ in range(max(1, repeat)):
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            output = run()
            best = min(best, time.perf_counter() - start)
        if memory.peak is not None:
            peak = max(peak or 0, memory.peak)
    return best, peak, output


def benchmark_case(label, model, source, target, stride, device, args, methods) -> list[dict]:
    """One width and stride: a row per method."""
    batch = args.batch_size or default_batch_size(model, PATCH, device)
    patches = len(patch_grid(source.shape, PATCH, stride))
    per_voxel = flops_per_voxel(model)
    runners = method_runners(model, source, stride, batch, device, args, methods)
    timed = [name for name in runners if name in methods]
    results = {name: measure(run, args.repeat if name in timed else 1, device) for name, run in runners.items()}
    reference = results["plain"][2]
    rows = []
    for name in timed:
        seconds, peak, output = results[name]
        voxels = source.size if name == "preview" else patches * PATCH**3
        rows.append({
            "width": label, "stride": "-" if name == "preview" else stride, "method": name,
            "batch": "-" if name == "preview" else batch,
            "patches": "-" if name == "preview" else patches,
            "seconds": seconds,
            "patches_per_s": None if name == "preview" else patches / seconds,
            "peak_mib": None if peak is None else peak / 2**20,
            "tflops": per_voxel * voxels / seconds / 1e12,
            "max_abs_diff": float(np.abs(output - reference).max()),
            "psnr": psnr(output, target),
        })
    if args.peak_tflops:
        for row in rows:
            row["peak_fraction"] = row["tflops"] / args.peak_tflops
    return rows


def summarize(rows: list[dict]) -> list[str]:
    """Speed-ups per width and stride: ours over the faster peer, the direct engine or the plain module; the preview."""
    lines = []
    previews = {r["width"]: r for r in rows if r["method"] == "preview"}
    for ours in (r for r in rows if r["method"] == "ours"):
        case = [r for r in rows if r["width"] == ours["width"] and r["stride"] == ours["stride"]]
        head = f"width {ours['width']}, stride {ours['stride']}:"
        peers = [r for r in case if r["method"] in PEERS]
        if peers:
            fastest = min(peers, key=lambda r: r["seconds"])
            lines.append(f"{head} ours {fastest['seconds'] / ours['seconds']:.2f}x faster than {fastest['method']}")
        plain = [r for r in case if r["method"] == "plain"]
        direct = [r for r in case if r["method"] == "direct"]
        if direct:
            lines.append(f"{head} ours {direct[0]['seconds'] / ours['seconds']:.2f}x faster than the direct engine, "
                         f"PSNR change {ours['psnr'] - direct[0]['psnr']:+.5f} dB")
            if plain:
                lines.append(f"{head} direct engine {plain[0]['seconds'] / direct[0]['seconds']:.2f}x "
                             "as fast as the plain module")
        elif plain:
            lines.append(f"{head} BatchNorm folding {plain[0]['seconds'] / ours['seconds']:.2f}x")
        if ours["width"] in previews:
            preview = previews[ours["width"]]
            lines.append(
                f"{head} preview speed-up {ours['seconds'] / preview['seconds']:.2f}x, "
                f"PSNR {preview['psnr'] - ours['psnr']:+.3f} dB"
            )
    return lines


# ----------------------------------------------------------------------------- memory case


def memory_case(args, source: Volume) -> dict:
    """Write ``source`` as NIfTI, synthesize it in a fresh interpreter (:func:`memory_child`) and
    return what that reports."""
    with tempfile.TemporaryDirectory() as folder:
        path = save_volume(Path(folder) / "source.nii.gz", source.data, source)
        settings = {"path": str(path), "width": args.widths[0], "stride": args.strides[0], "device": args.device,
                    "checkpoint": args.checkpoint, "seed": args.seed, "threads": args.threads,
                    "engine": args.engine}
        command = [sys.executable, __file__, "--memory-child", json.dumps(settings)]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def memory_child(settings: dict) -> dict:
    """Read the source, preprocess, reconstruct and map back to its grid; ru_maxrss before and after."""
    scale = 1 if sys.platform.startswith("linux") else 1 / 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    model = (load_checkpoint(settings["checkpoint"]).network if settings["checkpoint"]
             else make_generator(settings["width"], settings["seed"]))
    source = load_volume(settings["path"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    start = time.perf_counter()
    prepared = preprocess_volume(source)
    standardized = reconstruct_volume(model, prepared.data, stride=settings["stride"], device=settings["device"],
                                      engine=settings["engine"])
    to_source_grid(standardized, prepared)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    del settings["path"]
    return {"shape": list(source.data.shape), **settings, "seconds": seconds,
            "maxrss_before_mib": before / 1024, "maxrss_peak_mib": after / 1024}


# ----------------------------------------------------------------------------- output


COLUMNS = [
    ("width", "width", "{}"), ("stride", "stride", "{}"), ("method", "method", "{}"),
    ("batch", "batch", "{}"), ("patches", "patches", "{}"),
    ("seconds", "s (best)", "{:.3f}"), ("patches_per_s", "patches/s", "{:.1f}"),
    ("peak_mib", "peak MiB", "{:.0f}"), ("tflops", "TFLOP/s", "{:.3g}"),
    ("peak_fraction", "of peak", "{:.1%}"), ("max_abs_diff", "max abs diff", "{:.1e}"),
    ("psnr", "PSNR dB", "{:.2f}"),
]


def markdown(rows: list[dict], summary: list[str], environment: dict, memory: dict | None) -> str:
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = [" | ".join(f"{k}: {v}" for k, v in environment.items()), ""]
    lines.append("| " + " | ".join(title for _, title, _ in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = ["-" if row.get(key) in (None, "-") else fmt.format(row[key]) for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {line}" for line in summary]
    if memory is not None:
        lines.append(
            f"- memory case: synthesis of a {'x'.join(map(str, memory['shape']))} NIfTI (stride "
            f"{memory['stride']}) in a fresh process: peak RSS {memory['maxrss_peak_mib']:.0f} MiB, "
            f"{memory['maxrss_before_mib']:.0f} MiB after imports and reading, {memory['seconds']:.1f} s"
        )
    return "\n".join(lines) + "\n"


def environment(device: torch.device, args) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    return {"torch": torch.__version__, "device": f"{device} ({name})", "threads": torch.get_num_threads(),
            "shape": "x".join(map(str, args.shape)),
            "peers' model": "channels-last" if args.peers_channels_last else "as given (contiguous)"}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    t2, pd = make_phantom_pair(seed=0)
    # T2 -> PD, unless a trained generator of the other direction is timed
    reverse = args.checkpoint is not None and load_checkpoint(args.checkpoint).info.direction == "pd-t2"
    source, target = standardized_pair(*((pd, t2) if reverse else (t2, pd)), args.shape)
    rows = []
    for label, model in models(args):
        for index, stride in enumerate(args.strides):
            methods = [m for m in args.methods if m != "preview" or index == 0]  # the preview has no stride
            rows += benchmark_case(label, model, source, target, stride, device, args, methods)
    memory = memory_case(args, pd if reverse else t2) if args.memory_case else None
    env = environment(device, args)
    summary = summarize(rows)
    report = markdown(rows, summary, env, memory)
    print(report, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"environment": env, "arguments": {k: str(v) for k, v in vars(args).items()},
                   "rows": rows, "summary": summary, "memory_case": memory}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
