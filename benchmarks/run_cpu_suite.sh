#!/usr/bin/env bash
# The CPU figures of docs/performance.md (about 40 minutes on 2 cores). Full width at stride 8 on
# 224x224x32 takes hours per method on such a CPU: those cases run on a smaller crop here, and in
# full with run_cuda_suite.sh on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
py=.venv/bin/python
mkdir -p "$out"
# 1. The report's volume, width 0.25, stride 16: the three engines with the same channels-last model.
$py benchmarks/bench_reconstruct.py --widths 0.25 --strides 16 --methods ours monai torchio preview \
    --peers-channels-last --repeat 1 --out "$out/cpu_224_w0.25_s16_channels_last.json"
# 2. A 64x64x32 crop, width 0.25, strides 8 and 16: the peers as users call them (default layout),
#    and the bfloat16 fast mode.
$py benchmarks/bench_reconstruct.py --widths 0.25 --strides 16 8 --shape 64 64 32 \
    --methods ours monai torchio preview --fast --repeat 1 --out "$out/cpu_64_w0.25.json"
# 3. Full width on the crop, stride 16, same layout for all.
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 16 --shape 64 64 32 --methods ours monai torchio preview \
    --peers-channels-last --repeat 1 --out "$out/cpu_64_w1_s16_channels_last.json"
# 4. Memory: a native IXI-size volume (256x256x130) through the full-width generator, in a fresh process.
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 32 --shape 32 32 32 --methods ours --repeat 1 \
    --memory-case --out "$out/cpu_memory_w1.json"
# 5. Training throughput.
$py benchmarks/bench_training.py --widths 0.125 0.25 --workers 0 2 --out "$out/cpu_training.json"
