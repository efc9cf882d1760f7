#!/usr/bin/env bash
# The recipe of the bundled demo generators (napari_medsynth/data/generators/): CPU only, width 1/4,
# all three interleaved slice stacks of each training subject, the transform-domain engine where it
# is faster. Run from the repository root with the venv's commands on PATH; rerun it to continue:
# every run resumes from its last.pt and a finished run is skipped. Its time on 2 cores is in
# docs/demo_generators.md.
set -euo pipefail
work=${1:-demo-work}
mkdir -p "$work/repro" && cd "$work"
[ -d phantom10 ] || medsynth phantom phantom10 --subjects 10 --seed 0   # 7 train, 1 validation, 2 test
[ -d heldout ] || medsynth phantom heldout --subjects 10 --seed 7       # subjects 7001-7010: no run sees them
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common="--data phantom10 --width 0.25 --batch-size 7 --all-stacks --val-stride 16 --device cpu --workers 1"
# The report's summed losses: with Adam the scale is moot, but a mean over 32^3 voxels would weigh
# the adversarial term (a mean over the discriminator's outputs) some 10^4 times more than the report
common="$common --reduction sum --cache repro/cache"
# RANDOMIZE=1: every run with acquisition randomization (each training pair acquired again, source and
# target alike where the scanner's geometry and coil act; docs/demo_generators.md), for generators meant
# for real scans; give it its own work folder. The warm starts the ablation measured from the bundled
# G4+RL pair are scripts/randomization_ablation.sh's
[ "${RANDOMIZE:-0}" = 1 ] && common="$common --randomize"
train() {  # RUN EPOCHS LR [options]: train repro/RUN, or continue it from its last.pt
    local run=$1 epochs=$2 lr=$3
    shift 3
    local resume=""
    [ -f "repro/$run/last.pt" ] && resume="--resume"
    medsynth-train train $common --out "repro/$run" --epochs "$epochs" --lr "$lr" $resume "$@" >> "repro/$run.log" 2>&1
}
# G3 from scratch, cosine from 1e-3 (a width-1/4 discriminator: half the step time on a CPU).
# RUN_SUFFIX EPOCHS: a second call with more epochs continues the run along a longer cosine (a warm
# restart): the G3s whose G4 did not beat the intensity mapping after 8 epochs went on that way, and
# the PD->T2 pair, both still rising on validation at 14, went on to T2->PD's 24
g3() { train "$1-G3$2" "$3" 1e-3 --direction "$1" --variant G3 --lr-schedule cosine --discriminator-width 0.25 ${4:-}; }
# G4 = G3's best (generator and discriminator) fine-tuned with L1. DIRECTION SUFFIX EPOCHS LR [options]:
# the report's 4 epochs at G3's rate where that beats G3 on validation (T2->PD), else 3 cosine from 1e-4
g4() { train "$1-G4$2" "$3" "$4" --direction "$1" --variant G4 --init "repro/$1-G3$2/best.pt" --lr-schedule cosine \
              --discriminator-width 0.25 ${5:-}; }
# G1 and G2 train half G3's first 8 epochs, the report's ratio (34 and 32 epochs against G3's 76).
# Four lines of runs side by side (a G4 waits for the G3 it fine-tunes); JOBS=1: one after another
default_line() {  # the default demo generator
    g3 pd-t2 +RL 8 --residual && g3 pd-t2 +RL 14 --residual && g3 pd-t2 +RL 24 --residual
    g4 pd-t2 +RL 3 1e-4 --residual
}
pd_t2_line() {
    g3 pd-t2 "" 8 && g3 pd-t2 "" 14 && g3 pd-t2 "" 24
    g4 pd-t2 "" 3 1e-4
    train t2-pd-G2 4 1e-3 --direction t2-pd --variant G2 --lr-schedule cosine --discriminator-width 0.25
}
t2_pd_line() {  # the slowest learner: without the residual path a T2->PD G3 starts 3-4 dB behind
    g3 t2-pd "" 8 && g3 t2-pd "" 24
    g4 t2-pd "" 4 1e-3
    train t2-pd-G1 4 1e-3 --direction t2-pd --variant G1 --lr-schedule cosine
}
t2_pd_rl_line() { g3 t2-pd +RL 8 --residual && g3 t2-pd +RL 14 --residual; g4 t2-pd +RL 3 1e-4 --residual; }
if [ "${JOBS:-4}" = 1 ]; then
    default_line && pd_t2_line && t2_pd_line && t2_pd_rl_line
else
    pids=()
    for line in default_line pd_t2_line t2_pd_line t2_pd_rl_line; do "$line" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: stop here if any line failed
fi
cd - >/dev/null
python scripts/package_demo_generators.py "$work" --stride 16
