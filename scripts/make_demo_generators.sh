#!/usr/bin/env bash
# The recipe of the bundled demo generators (napari_medsynth/data/generators/): CPU only, width 1/4,
# all three interleaved slice stacks of each training subject, the transform-domain engine where it
# is faster. Run from the repository root with the venv's commands on PATH; rerun it to continue:
# every run resumes from its last.pt and a finished run is skipped. Its time on 2 cores is in
# docs/demo_generators.md.
set -euo pipefail
work=${1:-demo-work}
mkdir -p "$work" && cd "$work"
[ -d phantom10 ] || medsynth phantom phantom10 --subjects 10 --seed 0   # 7 train, 1 validation, 2 test
[ -d heldout ] || medsynth phantom heldout --subjects 3 --seed 7        # subjects 7001-7003: no run sees them
common="--data phantom10 --width 0.25 --batch-size 7 --all-stacks --val-stride 16 --device cpu --workers 1"
common="$common --cache repro/cache"
train() {  # RUN EPOCHS LR [options]: train repro/RUN, or continue it from its last.pt
    local run=$1 epochs=$2 lr=$3
    shift 3
    local resume=""
    [ -f "repro/$run/last.pt" ] && resume="--resume"
    medsynth-train train $common --out "repro/$run" --epochs "$epochs" --lr "$lr" $resume "$@"
}
generator() {  # DIRECTION SUFFIX G3_EPOCHS [--residual]: G3, then G4 = G3's best fine-tuned with L1
    train "$1-G3$2" "$3" 1e-3 --direction "$1" --variant G3 ${4:-}
    train "$1-G4$2" 3 2e-4 --direction "$1" --variant G4 --init "repro/$1-G3$2/best.pt" ${4:-}
}
generator pd-t2 +RL 8 --residual   # the default demo generator first
generator t2-pd "" 8
generator pd-t2 "" 8
generator t2-pd +RL 8 --residual
train t2-pd-G1 8 1e-3 --direction t2-pd --variant G1
train t2-pd-G2 8 1e-3 --direction t2-pd --variant G2
cd - >/dev/null
python scripts/package_demo_generators.py "$work"
