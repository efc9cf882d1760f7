#!/usr/bin/env bash
# The recipe of the bundled demo generators (napari_medsynth/data/generators/): CPU only, about
# 45 minutes on 2 cores. Run from the repository root with the venv's commands on PATH.
set -euo pipefail
work=${1:-demo-work}
mkdir -p "$work" && cd "$work"
medsynth phantom phantom10 --subjects 10 --seed 0
reproduce() {
    medsynth-train reproduce --data phantom10 --out repro --epochs 4 --width 0.125 --lr 1e-3 \
        --val-stride 16 --device cpu --workers 1
}
reproduce
# PD->T2 with residual learning, retrained with more, smaller steps (batch 7 instead of the
# report's 49) so that the demo generator beats the per-voxel intensity mapping.
mkdir -p batch-49 && mv repro/pd-t2-G3+RL repro/pd-t2-G4+RL batch-49/
common="--data phantom10 --direction pd-t2 --residual --batch-size 7 --width 0.125 --val-stride 16 --device cpu --workers 1 --cache repro/cache"
medsynth-train train $common --out repro/pd-t2-G3+RL --variant G3 --epochs 20 --lr 1e-3
medsynth-train train $common --out repro/pd-t2-G4+RL --variant G4 --init repro/pd-t2-G3+RL/best.pt --epochs 4 --lr 2e-4
reproduce  # the runs are done: this evaluates them and the baselines on the test subjects (repro/report.md)
cd - >/dev/null
python scripts/package_demo_generators.py "$work/repro" "$work/phantom10"
