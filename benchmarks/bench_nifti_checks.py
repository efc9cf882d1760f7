"""How fast the reader and ``medsynth check`` get through hostile NIfTI headers, against nibabel's own load.

The 240 seeded fuzzed files of tests/test_fuzz_nifti.py (its cases, imported from it: dims, voxel sizes, sform and
qform, codes, vox_offset, datatype and bitpix, scaling, magic, extensions, random bytes; gzipped or not), each in
a folder with an intact PD partner, are written once. Then, file by file, back to back:

- ours: ``load_volume`` (the reader of the plugin and of every command), which reads the file or refuses it;
- the peer: ``nibabel.load(path).get_fdata(dtype=np.float32)`` (float32, as ours returns) on the same file where
  ours reads it, and on the intact partner. A file ours refuses is not given to nibabel: its header may claim
  terabytes, which nibabel would try to allocate;
- ``medsynth check`` on the folder (both files read, the pair checked), output discarded.

Each time is the best of ``--repeat`` runs. The tests asserted under 2 s a read and 4 s a check for every file
until a loaded machine failed them without a bug; the figures live here instead, with the worst case against
those limits and the ratios to nibabel from the same run. The machine may be shared: the load average before and
after is recorded.

    .venv/bin/python benchmarks/bench_nifti_checks.py --out benchmarks/results/cpu_nifti_checks.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fuzzed cases of the test

import test_fuzz_nifti as fuzz

from napari_medsynth.cli import main as medsynth
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import load_volume

READ_LIMIT, CHECK_LIMIT = 2.0, 4.0  # what the tests asserted for each file (seconds)


def best(function, repeat: int):
    """``function()``'s value (or the exception it raised) and its best wall time of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            value = function()
        except Exception as error:  # a refusal is an outcome here
            value = error
        times.append(time.perf_counter() - start)
    return value, min(times)


def nibabel_read(path: Path) -> np.ndarray:
    return nib.load(path).get_fdata(dtype=np.float32)


def check(folder: Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return medsynth(["check", str(folder)])


def write_cases(root: Path) -> list[tuple]:
    """Every case as ``(case, folder, fuzzed path, partner path)``, written as the test's fixture does."""
    bases = {dtype: fuzz._base_bytes(dtype, root) for dtype in ("float32", "int16")}
    written = []
    for case in fuzz.CASES:
        folder = root / f"{case.index:03d}"
        folder.mkdir()
        partner = fuzz._write(folder / case.name.replace("-T2.", "-PD."), bases[case.dtype], case.gz)
        written.append((case, folder, fuzz._write(folder / case.name, fuzz._mutated(bases[case.dtype], case), case.gz),
                        partner))
    return written


def measure(written: list[tuple], repeat: int) -> list[dict]:
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, folder, path, partner = written[0]  # the first call of each imports what it needs
        best(lambda: load_volume(partner), 1), best(lambda: nibabel_read(partner), 1), best(lambda: check(folder), 1)
        for case, folder, path, partner in written:
            outcome, ours = best(lambda: load_volume(path), repeat)
            if isinstance(outcome, Exception) and not isinstance(outcome, MedSynthError):
                raise outcome  # neither a read nor a refusal in one line: the test fails too
            read = not isinstance(outcome, MedSynthError)
            row = {"case": case.index, "kinds": case.kinds, "gz": case.gz, "outcome": "read" if read else "refused",
                   "ours_s": ours}
            if read:
                theirs, row["nibabel_s"] = best(lambda: nibabel_read(path), repeat)
                row["nibabel_reads"] = not isinstance(theirs, Exception)
            row["partner_nibabel_s"] = best(lambda: nibabel_read(partner), repeat)[1]
            code, row["check_s"] = best(lambda: check(folder), repeat)
            row["check_code"] = code if isinstance(code, int) else repr(code)
            rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    reads = [r for r in rows if r["outcome"] == "read"]
    refusals = [r for r in rows if r["outcome"] == "refused"]
    nibabel_reads = [r for r in reads if r["nibabel_reads"]]
    unit = statistics.median(r["partner_nibabel_s"] for r in rows)  # nibabel on an intact file

    def spread(values):
        return {"n": len(values), "median_s": statistics.median(values), "worst_s": max(values)}

    return {
        "reads": spread([r["ours_s"] for r in reads])
        | {"nibabel_median_s": statistics.median(r["nibabel_s"] for r in nibabel_reads),
           "nibabel_reads": len(nibabel_reads),
           "ours_over_nibabel": sum(r["ours_s"] for r in nibabel_reads) / sum(r["nibabel_s"] for r in nibabel_reads),
           "worst_over_limit": max(r["ours_s"] for r in reads) / READ_LIMIT},
        "refusals": spread([r["ours_s"] for r in refusals])
        | {"median_over_nibabel_intact": statistics.median(r["ours_s"] for r in refusals) / unit,
           "worst_over_limit": max(r["ours_s"] for r in refusals) / READ_LIMIT},
        "checks": spread([r["check_s"] for r in rows])
        | {"over_nibabel_both_files": sum(r["check_s"] for r in nibabel_reads)
           / sum(r["nibabel_s"] + r["partner_nibabel_s"] for r in nibabel_reads),
           "worst_over_limit": max(r["check_s"] for r in rows) / CHECK_LIMIT},
        "nibabel_intact_median_s": unit,
        "slowest": {key: [{k: r[k] for k in ("case", "kinds", "gz", "outcome", key)}
                          for r in sorted(rows, key=lambda r: r[key], reverse=True)[:5]]
                    for key in ("ours_s", "check_s")},
    }


def markdown(result: dict) -> str:
    s = result["summary"]
    ms = 1000
    reads, refusals, checks = s["reads"], s["refusals"], s["checks"]
    lines = [
        f"240 fuzzed NIfTI headers, best of {result['repeat']} each; {result['machine']}; load average "
        f"{result['load_average']['before']:.2f} before, {result['load_average']['after']:.2f} after.",
        "",
        "| what | files | median | worst | worst / the tests' old limit | nibabel, same files | ours / nibabel |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| `load_volume`, files it reads | {reads['n']} | {reads['median_s'] * ms:.2f} ms "
        f"| {reads['worst_s'] * ms:.2f} ms | {reads['worst_over_limit']:.4f} (2 s) "
        f"| {reads['nibabel_median_s'] * ms:.2f} ms ({reads['nibabel_reads']} files) "
        f"| {reads['ours_over_nibabel']:.2f} (sum of times) |",
        f"| `load_volume`, files it refuses | {refusals['n']} | {refusals['median_s'] * ms:.2f} ms "
        f"| {refusals['worst_s'] * ms:.2f} ms | {refusals['worst_over_limit']:.4f} (2 s) "
        f"| not given the file; {s['nibabel_intact_median_s'] * ms:.2f} ms an intact one "
        f"| {refusals['median_over_nibabel_intact']:.2f} (medians) |",
        f"| `medsynth check` on the folder (2 files) | {checks['n']} | {checks['median_s'] * ms:.2f} ms "
        f"| {checks['worst_s'] * ms:.2f} ms | {checks['worst_over_limit']:.4f} (4 s) "
        f"| both files where it reads the fuzzed one | {checks['over_nibabel_both_files']:.2f} (sum of times) |",
        "",
        "Slowest reads or refusals: " + ", ".join(
            f"{r['case']:03d} {r['kinds']}{' gz' if r['gz'] else ''} ({r['outcome']}) {r['ours_s'] * ms:.1f} ms"
            for r in s["slowest"]["ours_s"]) + ".",
        "Slowest checks: " + ", ".join(
            f"{r['case']:03d} {r['kinds']}{' gz' if r['gz'] else ''} {r['check_s'] * ms:.1f} ms"
            for r in s["slowest"]["check_s"]) + ".",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs of each")
    parser.add_argument("--out", type=Path, help="write JSON here, and Markdown beside it")
    args = parser.parse_args(argv)
    logging.getLogger("nibabel").setLevel(logging.CRITICAL)  # its notes on each hostile header, 240 times over
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-nifti-") as root:
        rows = measure(write_cases(Path(root)), args.repeat)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"nibabel {nib.__version__}",
        "repeat": args.repeat,
        "load_average": {"before": before, "after": os.getloadavg()[0]},
        "summary": summarize(rows),
        "cases": rows,
    }
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result) + "\n")
    return result


if __name__ == "__main__":
    main()
