"""Direct ``F.conv3d`` against the transform-domain ``fft_conv3d``, layer by layer and whole generator.

For each of the generator's nine layer shapes at each width, on batches of 32^3 patches:

- forward in ``inference_mode``: direct with contiguous tensors, direct channels-last
  (``channels_last_3d`` input and weight), ``fft_conv3d`` on a channels-last and on a
  contiguous input (kernel spectrum cached, as at inference);
- forward + backward (training; input and weight require grad, the spectrum is recomputed
  every step): direct contiguous, direct channels-last, fft;
- the "auto" engine's choice for the shape.

Then the design alternatives on the full-width 9^3 64->64 layer (``torch.fft`` transforms at
48^3 / polyphase 24^3 / polyphase 20^3 with complex matmul; the channel-mixing product as one
real-split matmul, two half matmuls, a complex64 matmul, the 3-multiplication form), the block
size on a whole-volume preview input, and the full-width generator (BatchNorm folded) on a
batch of patches: forward with every engine, and forward + backward.

    .venv/bin/python benchmarks/bench_fftconv.py                       # everything (~20 min)
    .venv/bin/python benchmarks/bench_fftconv.py --sections generator  # one section, the others kept

Times are the median (and minimum) of ``--reps`` runs after a warm-up run; runs longer than
``--slow`` seconds are timed once after the warm-up, and runs longer than 4x that only once
(the warm-up itself). The CPU may be shared with other work: the load average before and after
of each section is recorded, and ratios compare runs made back to back. TFLOP/s are "equivalent": the direct
convolution's FLOP count (2 x multiply-adds) over the time, for every engine.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy

from napari_medsynth.core.networks import fftconv
from napari_medsynth.core.networks.fftconv import fft_conv3d, set_conv_engine
from napari_medsynth.core.networks.inference import fold_batchnorm
from napari_medsynth.core.networks.models import GENERATOR_LAYERS, Generator

CL = torch.channels_last_3d
PATCH = 32


def measure(fn, reps: int, slow: float) -> list[float]:
    """Wall times of ``fn``: after a warm-up, ``reps`` runs (1 if the warm-up took over ``slow``
    seconds; none, the warm-up counting, if over ``4 * slow``)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > 4 * slow:
        return [first]
    times = []
    for _ in range(1 if first > slow else reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float], flop: float) -> dict:
    med = statistics.median(times)
    return {"s": med, "s_min": min(times), "runs": len(times), "tflops": flop / med / 1e12}


def layer_shapes(width: float) -> list[tuple[int, int, int, int]]:
    """(in, out, kernel, dilation) of the generator's convolutions at ``width``."""
    shapes, cin = [], 1
    for index, (kernel, filters, dilation) in enumerate(GENERATOR_LAYERS):
        cout = filters if index == len(GENERATOR_LAYERS) - 1 else max(1, round(filters * width))
        shapes.append((cin, cout, kernel, dilation))
        cin = cout
    return shapes


def auto_choice(batch: int, cin: int, cout: int, kernel: int, dilation: int) -> str:
    wins = fftconv._fft_wins((batch, PATCH, PATCH, PATCH), cin, cout, (kernel,) * 3, (dilation,) * 3)
    return "fft" if wins else "direct"


def bench_layers(widths, batches, reps, slow) -> list[dict]:
    rows = []
    for width in widths:
        for batch in batches:
            for index, (cin, cout, kernel, dilation) in enumerate(layer_shapes(width)):
                torch.manual_seed(index)
                x = torch.randn(batch, cin, PATCH, PATCH, PATCH)
                w = torch.randn(cout, cin, kernel, kernel, kernel) / math.sqrt(cin * kernel**3)
                b = torch.randn(cout)
                xl, wl = x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
                pad = dilation * (kernel - 1) // 2
                flop = 2 * batch * PATCH**3 * cin * cout * kernel**3
                cases = {
                    "direct": lambda: F.conv3d(x, w, b, padding=pad, dilation=dilation),
                    "direct_cl": lambda: F.conv3d(xl, wl, b, padding=pad, dilation=dilation),
                    "fft_cl": lambda: fft_conv3d(xl, w, b, dilation),
                    "fft": lambda: fft_conv3d(x, w, b, dilation),
                }
                row = {"width": width, "batch": batch, "layer": index, "in": cin, "out": cout, "kernel": kernel,
                       "dilation": dilation, "gflop": flop / 1e9,
                       "auto": auto_choice(batch, cin, cout, kernel, dilation)}
                with torch.inference_mode():
                    for name, fn in cases.items():
                        row[name] = summary(measure(fn, reps, slow), flop)
                fftconv.clear_caches()
                rows.append(row)
                print(layer_line(row), flush=True)
    return rows


def bench_training(widths, batch, reps, slow) -> list[dict]:
    rows = []
    for width in widths:
        for index, (cin, cout, kernel, dilation) in enumerate(layer_shapes(width)):
            torch.manual_seed(index)
            x = torch.randn(batch, cin, PATCH, PATCH, PATCH)
            w = torch.randn(cout, cin, kernel, kernel, kernel) / math.sqrt(cin * kernel**3)
            pad = dilation * (kernel - 1) // 2
            flop = 3 * 2 * batch * PATCH**3 * cin * cout * kernel**3  # forward, input and weight gradients

            def step(conv, x=x, w=w):
                xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
                conv(xg, wg).sum().backward()

            cases = {
                "direct": lambda: step(lambda a, v: F.conv3d(a, v, padding=pad, dilation=dilation)),
                "direct_cl": lambda: step(lambda a, v: F.conv3d(a, v, padding=pad, dilation=dilation),
                                          x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)),
                "fft_cl": lambda: step(lambda a, v: fft_conv3d(a, v, None, dilation), x.contiguous(memory_format=CL)),
            }
            row = {"width": width, "batch": batch, "layer": index, "in": cin, "out": cout, "kernel": kernel,
                   "dilation": dilation, "gflop": flop / 1e9, "auto": auto_choice(batch, cin, cout, kernel, dilation)}
            for name, fn in cases.items():
                row[name] = summary(measure(fn, reps, slow), flop)
            rows.append(row)
            print(layer_line(row), flush=True)
    return rows


def layer_line(row: dict) -> str:
    engines = [e for e in ("direct", "direct_cl", "fft_cl", "fft") if e in row]
    best_direct = min(row["direct"]["s"], row["direct_cl"]["s"])
    times = " | ".join(f"{row[e]['s']:.3f}" for e in engines)
    speed = " | ".join(f"{row[e]['tflops']:.3f}" for e in engines)
    faster = "fft" if row["fft_cl"]["s"] < best_direct else "direct"
    return (f"| {row['width']:g} | {row['batch']} | {row['layer']} | {row['in']}->{row['out']} | {row['kernel']}^3 "
            f"| {row['dilation']} | {row['gflop']:.0f} | {times} | {speed} | {best_direct / row['fft_cl']['s']:.2f}x "
            f"| {'contiguous' if row['direct']['s'] <= row['direct_cl']['s'] else 'channels-last'} "
            f"| {faster} | {row['auto']} |")


def layer_table(rows: list[dict], engines: tuple[str, ...]) -> str:
    head = (["width", "batch", "layer", "in->out", "kernel", "dilation", "GFLOP"] + [f"s {e}" for e in engines]
            + [f"TFLOP/s {e}" for e in engines]
            + ["best direct / fft_cl", "faster direct layout", "faster engine", "auto picks"])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)] + [layer_line(r) for r in rows])


# Design alternatives on the full-width 9^3 64->64 layer.


def torch_fft_conv(x, spectrum, size, dilation, kernel):
    """The ``torch.fft`` baseline: polyphase split (``dilation`` 1: none), rfftn at ``size``,
    complex matmul over channels per frequency, irfftn, crop."""
    batch, cin, n = x.shape[0], x.shape[1], x.shape[2] // dilation
    half = (kernel - 1) // 2 * (1 if dilation > 1 else dilation)
    sub = x.view(batch, cin, n, dilation, n, dilation, n, dilation).permute(0, 3, 5, 7, 1, 2, 4, 6)
    sub = sub.reshape(-1, cin, n, n, n)
    spec = torch.fft.rfftn(sub, s=(size,) * 3)
    freq = spec.shape[2:]
    mixed = torch.matmul(spec.flatten(2).permute(2, 0, 1), spectrum)  # (F, P, out)
    out = torch.fft.irfftn(mixed.permute(1, 2, 0).reshape(*mixed.shape[1:3], *freq), s=(size,) * 3)
    out = out[..., half:half + n, half:half + n, half:half + n]
    cout = out.shape[1]
    return out.reshape(batch, dilation, dilation, dilation, cout, n, n, n).permute(0, 4, 5, 1, 6, 2, 7, 3).reshape(
        batch, cout, n * dilation, n * dilation, n * dilation)


def torch_fft_spectrum(w, size, dilated):
    """Kernel spectra ``(F, in, out)`` complex for :func:`torch_fft_conv` (flipped kernel at 0..)."""
    if dilated > 1:
        k = w.shape[-1]
        full = w.new_zeros(*w.shape[:2], dilated * (k - 1) + 1, dilated * (k - 1) + 1, dilated * (k - 1) + 1)
        full[..., ::dilated, ::dilated, ::dilated] = w
        w = full
    spec = torch.fft.rfftn(w.flip(2, 3, 4), s=(size,) * 3)
    return spec.flatten(2).permute(2, 1, 0).contiguous()


def bench_variants(batch, reps, slow) -> list[dict]:
    rows = []
    cin = cout = 64
    kernel, dilation = 9, 2
    torch.manual_seed(0)
    x = torch.randn(batch, cin, PATCH, PATCH, PATCH)
    w = torch.randn(cout, cin, kernel, kernel, kernel) / math.sqrt(cin * kernel**3)
    flop = 2 * batch * PATCH**3 * cin * cout * kernel**3
    with torch.inference_mode():
        reference = F.conv3d(x, w, padding=dilation * (kernel - 1) // 2, dilation=dilation)

        def add(name, fn, note=""):
            error = (fn() - reference).abs().max().item()
            rows.append({"variant": name, "note": note, "max_abs_diff": error,
                         **summary(measure(fn, reps, slow), flop)})
            fftconv.clear_caches()
            print(f"{name}: {rows[-1]['s']:.3f} s, diff {error:.1e}", flush=True)

        add("direct F.conv3d (contiguous)", lambda: F.conv3d(x, w, padding=8, dilation=2))
        for size, note in ((48, "full grid, dilated kernel, 48^3 (prototype)"), (24, "polyphase 8 x 24^3 (n+k-1)"),
                           (20, "polyphase 8 x 20^3 (n+h)")):
            spectrum = torch_fft_spectrum(w, size, 2 if size == 48 else 1)
            spectrum_gb = spectrum.numel() * spectrum.element_size() / 1e9
            if size == 48:
                add(f"torch.fft {size}^3 + complex matmul",
                    lambda s=spectrum: torch_fft_conv(x, s, size, 1, 17), f"{note}; spectra {spectrum_gb:.2f} GB")
            else:
                add(f"torch.fft {size}^3 + complex matmul",
                    lambda s=spectrum, z=size: torch_fft_conv(x, s, z, 2, kernel),
                    f"{note}; spectra {spectrum_gb:.2f} GB")
            del spectrum
        xl = x.contiguous(memory_format=CL)
        add("ours: DFT matmuls, channels-last input", lambda: fft_conv3d(xl, w, None, dilation), "spectra 0.29 GB")
        add("ours: DFT matmuls, contiguous input", lambda: fft_conv3d(x, w, None, dilation))
        rows += bench_mixing(batch * 8, cin, cout, reps, slow)
    return rows


def bench_mixing(p, cin, cout, reps, slow) -> list[dict]:
    """The channel-mixing product alone at the 9^3 layer's 20^3 polyphase transform (F = 4400)."""
    freq = 11 * 20 * 20
    flop = 2 * 4 * freq * cin * cout * p  # real multiply-adds of the complex product, as FLOP
    x = torch.randn(freq, 2, cin, p)
    block = torch.randn(freq, 2 * cout, 2 * cin)
    out = torch.empty(freq, 2 * cout, p)
    xc = torch.randn(freq, cin, p, dtype=torch.complex64)
    wc = torch.randn(freq, cout, cin, dtype=torch.complex64)
    wr, wi, ws = torch.randn(freq, cout, cin), torch.randn(freq, cout, cin), torch.randn(freq, cout, cin)

    def halves():
        torch.bmm(block[:, :, :cin], x[:, 0], out=out)
        out.baddbmm_(block[:, :, cin:], x[:, 1])

    def gauss():  # (a+ib)(c+id): ac - bd, (a+b)(c+d) - ac - bd
        ac, bd = torch.bmm(wr, x[:, 0]), torch.bmm(wi, x[:, 1])
        cross = torch.bmm(ws, x[:, 0] + x[:, 1])
        return ac - bd, cross - ac - bd

    cases = {
        "mixing: real-split [[Wr,-Wi],[Wi,Wr]] one matmul (ours)": lambda: torch.bmm(
            block, x.view(freq, 2 * cin, p), out=out),
        "mixing: two half matmuls, accumulate": halves,
        "mixing: complex64 matmul": lambda: torch.bmm(wc, xc),
        "mixing: 3-multiplication (Gauss)": gauss,
    }
    rows = []
    for name, fn in cases.items():
        rows.append({"variant": name, "note": f"F={freq}, P={p}", "max_abs_diff": None,
                     **summary(measure(fn, reps, slow), flop)})
        print(f"{name}: {rows[-1]['s']:.3f} s", flush=True)
    return rows


def bench_blocks(reps, slow) -> list[dict]:
    """The full-width 9^3 layer on a preview-sized input (224x224x32 plus 29-voxel halos) under
    spectrum budgets that force smaller blocks."""
    rows = []
    shape = (1, 64, 224 + 58, 224 + 58, 32 + 58)
    torch.manual_seed(0)
    x = torch.randn(shape).contiguous(memory_format=CL)
    w = torch.randn(64, 64, 9, 9, 9) / math.sqrt(64 * 729)
    flop = 2 * math.prod(shape[2:]) * 64 * 64 * 729
    default = fftconv.SPECTRUM_BUDGET
    try:
        for budget in (default, 96 * 2**20, 32 * 2**20):
            fftconv.SPECTRUM_BUDGET = budget
            fftconv._plan.cache_clear()
            axes = fftconv._plan(shape[2:], (9,) * 3, (2,) * 3, 64, 64, 1)
            with torch.inference_mode():
                times = measure(lambda: fft_conv3d(x, w, None, 2), reps, slow)
            rows.append({"budget_mib": budget / 2**20, "L": [a.L for a in axes], "block": [a.bs for a in axes],
                         "blocks": [a.nb for a in axes],
                         "spectrum_mib": 16 * 64 * 64 * fftconv._spectrum_size(axes) / 2**20,
                         **summary(times, flop)})
            fftconv.clear_caches()
            print(rows[-1], flush=True)
    finally:
        fftconv.SPECTRUM_BUDGET = default
        fftconv._plan.cache_clear()
    return rows


def bench_generator(batch, train_batch, reps, slow) -> list[dict]:
    """The full-width generator, BatchNorm statistics away from identity: eval forward with
    BatchNorm folded (as at inference) and training forward + backward."""
    torch.manual_seed(0)
    model = Generator(width=1.0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    folded = fold_batchnorm(model).requires_grad_(False)
    x = torch.randn(batch, 1, PATCH, PATCH, PATCH)
    macs = sum(k**3 * ci * co for ci, co, k, _ in layer_shapes(1.0)) * PATCH**3
    rows = []
    with torch.inference_mode():
        reference = folded(x)
        for engine, layout in (("direct", "contiguous"), ("direct", "channels-last"), ("fft", "contiguous"),
                               ("auto", "contiguous"), ("auto", "channels-last")):
            m = set_conv_engine(copy.deepcopy(folded), engine)
            xin = x
            if layout == "channels-last":
                m, xin = m.to(memory_format=CL), x.contiguous(memory_format=CL)
            error = (m(xin) - reference).abs().max().item()
            rows.append({"mode": "eval forward, BatchNorm folded", "batch": batch, "engine": engine, "layout": layout,
                         "engines": fftconv.conv_engines(m, (batch, 1, PATCH, PATCH, PATCH)),
                         "max_abs_diff": error, **summary(measure(lambda: m(xin), reps, slow), 2 * macs * batch)})
            fftconv.clear_caches()
            print(rows[-1], flush=True)
    xt = torch.randn(train_batch, 1, PATCH, PATCH, PATCH)
    for engine in ("direct", "auto", "fft"):
        m = set_conv_engine(copy.deepcopy(model).train(), engine)

        def step(m=m):
            m.zero_grad(set_to_none=True)
            m(xt).square().mean().backward()

        rows.append({"mode": "train forward + backward", "batch": train_batch, "engine": engine, "layout": "contiguous",
                     "engines": fftconv.conv_engines(m, (train_batch, 1, PATCH, PATCH, PATCH)), "max_abs_diff": None,
                     **summary(measure(step, reps, slow), 3 * 2 * macs * train_batch)})
        print(rows[-1], flush=True)
    return rows


def markdown(results: dict) -> str:
    loads = ", ".join(f"{k} {v}" for k, v in results.get("load_average", {}).items())
    parts = [f"# fft_conv3d against F.conv3d on the CPU\n\n{results['machine']}; 1-minute load average before -> "
             f"after each section: {loads}.\n\n"
             "Produced by `benchmarks/bench_fftconv.py`. Times in seconds: the median of the runs after a "
             "warm-up (see the JSON for the minimum and the run count); TFLOP/s are equivalent (the direct "
             "convolution's 2 x multiply-adds over the time). `fft_cl` is fft_conv3d on a channels-last input, "
             "`fft` on a contiguous one; its output is channels-last either way."]
    if results.get("layers"):
        parts.append("## Layers, forward (inference_mode, kernel spectrum cached)\n\n"
                     + layer_table(results["layers"], ("direct", "direct_cl", "fft_cl", "fft")))
    if results.get("training"):
        parts.append("## Layers, forward + backward (input and weight gradients; spectrum recomputed)\n\n"
                     + layer_table(results["training"], ("direct", "direct_cl", "fft_cl")))
    if results.get("variants"):
        lines = ["| variant | note | s | TFLOP/s | max abs diff |", "|---|---|---:|---:|---:|"]
        for r in results["variants"]:
            diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
            lines.append(f"| {r['variant']} | {r['note']} | {r['s']:.3f} | {r['tflops']:.3f} | {diff} |")
        parts.append("## Design alternatives: full-width 9^3 64->64 dilation-2 layer\n\n" + "\n".join(lines))
    if results.get("blocks"):
        lines = ["| spectrum budget MiB | L | block | blocks | spectrum MiB | s | TFLOP/s |",
                 "|---:|---|---|---|---:|---:|---:|"]
        for r in results["blocks"]:
            lines.append(f"| {r['budget_mib']:.0f} | {r['L']} | {r['block']} | {r['blocks']} | {r['spectrum_mib']:.0f} "
                         f"| {r['s']:.2f} | {r['tflops']:.3f} |")
        parts.append("## Block size: full-width 9^3 layer on a 282x282x90 preview input\n\n" + "\n".join(lines))
    if results.get("generator"):
        lines = ["| mode | batch | engine | layout | conv engines | s | TFLOP/s | speed-up | max abs diff |",
                 "|---|---:|---|---|---|---:|---:|---:|---:|"]
        base = {}
        for r in results["generator"]:
            key = r["mode"]
            base.setdefault(key, r["s"])
            diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
            lines.append(f"| {r['mode']} | {r['batch']} | {r['engine']} | {r['layout']} | {' '.join(r['engines'])} "
                         f"| {r['s']:.2f} | {r['tflops']:.3f} | {base[key] / r['s']:.2f}x | {diff} |")
        parts.append("## Full-width generator (speed-up against the first row of its mode)\n\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


SECTIONS = ("layers", "training", "variants", "blocks", "generator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25, 0.125])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 8])
    parser.add_argument("--train-batch", type=int, default=7)
    parser.add_argument("--generator-batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--slow", type=float, default=5.0, help="seconds above which a case is timed once")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to run; the other sections are kept from an existing --out file")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_fftconv_layers.json")
    args = parser.parse_args()
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads")
    print(machine, flush=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = {
        "layers": lambda: bench_layers(args.widths, args.batches, args.reps, args.slow),
        "training": lambda: bench_training(args.widths, args.train_batch, args.reps, args.slow),
        "variants": lambda: bench_variants(16, args.reps, args.slow),
        "blocks": lambda: bench_blocks(args.reps, args.slow),
        "generator": lambda: bench_generator(args.generator_batch, args.train_batch, args.reps, args.slow),
    }
    loads = results.get("load_average", {})
    for section in args.sections:
        before = os.getloadavg()[0]
        results[section] = runs[section]()
        loads[section] = f"{before:.2f} -> {os.getloadavg()[0]:.2f}"
    results.update(machine=machine, load_average=loads)
    table = markdown(results)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
