#!/usr/bin/env bash
# The GPU figures of docs/performance.md: the issue's full cases (full width and width 0.25 on
# 224x224x32 at strides 8 and 16) with the auto engine against the direct one, MONAI and TorchIO,
# the preview and training steps on both engines.
# PEAK_TFLOPS: the card's dense float32 peak (H100 SXM: 67) for the fraction achieved.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
py=.venv/bin/python
mkdir -p "$out"
$py benchmarks/bench_reconstruct.py --device cuda --widths 1.0 0.25 --strides 8 16 \
    --methods ours direct monai torchio preview --repeat 3 \
    --peak-tflops "${PEAK_TFLOPS:-67}" --out "$out/cuda_224.json"
$py benchmarks/bench_reconstruct.py --device cuda --widths 1.0 0.25 --strides 8 --engine fft \
    --methods ours direct --repeat 3 --out "$out/cuda_224_fft.json"
$py benchmarks/bench_train_engine.py --device cuda --width 1 --steps 20 --out "$out/cuda_train_engine_w1.json"
$py benchmarks/bench_training.py --device cuda --widths 1.0 0.25 --workers 0 4 --out "$out/cuda_training.json"
