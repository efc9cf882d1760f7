"""How soon a user sees a synthesis: from napari's window to the first picture, the preview, the
figures and the refined result.

Each scenario runs in a fresh process (``--scenario``), as a user starts it:

- ``demo-first-run``: `medsynth demo` on a machine that has never run it (an empty cache: the sample
  phantom is simulated while napari starts);
- ``demo``: `medsynth demo` again (the sample read from the cache);
- ``source``: napari opened on a 256x256x130 IXI-geometry file (a phantom subject no generator saw,
  written by ``medsynth phantom``), the synthesis dock opened and Synthesize pressed with the
  default options and the default generator;
- ``headless``: `medsynth demo --headless` (no window: the refined result's time);
- ``one-preview``: one whole `synthesize` with ``preview=True`` on the sample (no GUI), the unit
  that makes the other figures comparable across machines.

Times are seconds from the moment the window first paints (``headless`` and ``one-preview``: from
the call), with the default options (native grid, stride 8, preview first). The table goes to
docs/performance.md ("The first picture").

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_first_picture.py \
        --out benchmarks/results/cpu_first_picture.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
SCENARIOS = ("demo-first-run", "demo", "source", "headless", "one-preview")


def _gui(scenario: str, data: Path) -> dict:
    """Run one GUI scenario, recording when each thing first shows."""
    import threading

    from napari_medsynth.core.simulation.phantom import sample_pair

    if scenario.startswith("demo"):
        threading.Thread(target=sample_pair, daemon=True).start()  # as `medsynth demo` does
    import napari
    from qtpy.QtCore import QEvent, QObject, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_medsynth.demo import open_demo_viewer

    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter() - START)

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Paint:
                mark("window")
            return False

    viewer = napari.Viewer(show=True)
    painted = FirstPaint()
    viewer.window._qt_window.installEventFilter(painted)
    viewer.layers.events.inserted.connect(lambda e: mark("first picture") if "preview" in e.value.name else None)
    if scenario.startswith("demo"):
        _, widget = open_demo_viewer(viewer, when_shown=True)  # as `medsynth demo` does
    else:
        viewer.open(sorted(data.glob("*-PD.nii.gz"))[0], plugin="napari-medsynth")  # the PD source, its T2 too
        _, widget = viewer.window.add_plugin_dock_widget("napari-medsynth", "Synthesize contrast")
        widget.configure("pd-t2", side_by_side=True)
        QTimer.singleShot(0, widget.start)  # Synthesize, once the window is up

    def on_status(line: str) -> None:
        if "one-pass preview" in line:
            mark("preview")
        if "MAE" in line:
            mark("first figures")

    widget.status_changed.connect(on_status)
    started = time.perf_counter()
    while widget.worker is None and time.perf_counter() - started < 60:
        QApplication.processEvents()
        time.sleep(0.01)
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.01)
    mark("refined")
    viewer.close()
    window = marks["window"]
    return {name: round(value - window, 2) for name, value in marks.items() if name != "window"} | {
        "window from start": round(window, 2)}


def _headless(scenario: str) -> dict:
    from napari_medsynth.core.simulation.phantom import sample_pair
    from napari_medsynth.core.synthesis.catalog import default_generator
    from napari_medsynth.core.synthesis.options import SynthesisOptions
    from napari_medsynth.core.synthesis.pipeline import synthesize
    from napari_medsynth.demo import run_headless_demo

    if scenario == "headless":
        started = time.perf_counter()
        run_headless_demo(tempfile.mkdtemp(), SynthesisOptions())
        return {"refined": round(time.perf_counter() - started, 2)}
    t2, pd = sample_pair()
    entry = default_generator()
    synthesize(pd, entry.path, SynthesisOptions(preview=True), target=t2)  # (imports, the model's first load)
    started = time.perf_counter()
    synthesize(pd, entry.path, SynthesisOptions(preview=True), target=t2)
    return {"preview": round(time.perf_counter() - started, 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIOS, help="run one scenario in this process (JSON out)")
    parser.add_argument("--data", type=Path, help="the folder of the 'source' scenario's file")
    parser.add_argument("--cache", type=Path, help="the sample's cache folder")
    parser.add_argument("--out", type=Path, help="write JSON here, and Markdown beside it")
    args = parser.parse_args(argv)
    if args.scenario:
        result = (_headless(args.scenario) if args.scenario in ("headless", "one-preview")
                  else _gui(args.scenario, args.data))
        print(json.dumps(result))
        return result
    work = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "napari_medsynth.cli", "phantom", str(work / "data"), "--subjects", "1",
                    "--seed", "7"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = {}
    for scenario in SCENARIOS:
        cache = work / "cache"  # empty for the first run, which fills it
        env = {**os.environ, "MEDSYNTH_CACHE": str(cache), "MEDSYNTH_SETTINGS": str(work / "settings.json"),
               "NAPARI_CONFIG": str(work / scenario / "napari.yaml")}  # a new user's napari: its default window
        done = subprocess.run([sys.executable, __file__, "--scenario", scenario, "--data", str(work / "data")],
                              capture_output=True, text=True, env=env, check=True)
        rows[scenario] = json.loads(done.stdout.strip().splitlines()[-1])
        print(scenario, rows[scenario], flush=True)
    summary = {"rows": rows, "cpu_threads": os.cpu_count()}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    rows, unit = summary["rows"], summary["rows"]["one-preview"]["preview"]
    lines = ["| scenario | window from start | first picture | preview | first figures | refined |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ("demo-first-run", "demo", "source", "headless"):
        row = rows[name]
        cells = [f"{row[key]:.1f} s ({row[key] / unit:.2f})" if key in row else "-"
                 for key in ("first picture", "preview", "first figures", "refined")]
        window = f"{row['window from start']:.1f} s" if "window from start" in row else "-"
        lines.append(f"| {name} | {window} | {' | '.join(cells)} |")
    lines.append(f"\nIn brackets: the time over one whole one-pass preview synthesis of the sample, {unit:.1f} s "
                 "on this machine (the unit to compare machines by).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
