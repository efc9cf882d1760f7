#!/usr/bin/env bash
# The CPU figures of docs/performance.md (about an hour on 2 cores; the peers at full width and
# stride 8 take about 10 minutes each).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
py=.venv/bin/python
mkdir -p "$out"
# 0. The transform-domain engine: the report's case (full width, 224x224x32, strides 16 and 8), ours
#    (auto) against the direct engine, the plain module, MONAI and TorchIO; the narrow generators
#    (auto against direct); the layers one by one; training steps on both engines; memory.
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 16 8 --methods ours direct monai torchio preview \
    --repeat 1 --out "$out/cpu_224_w1_fft.json"
$py benchmarks/bench_reconstruct.py --widths 0.25 0.125 --strides 16 8 --methods ours direct --repeat 2 \
    --out "$out/cpu_224_narrow_fft.json"
$py benchmarks/bench_fftconv.py --out "$out/cpu_fftconv_layers.json"
$py benchmarks/bench_train_engine.py --width 1 --steps 3 --out "$out/cpu_train_engine_w1.json"
$py benchmarks/bench_train_engine.py --width 0.25 --steps 20 --out "$out/cpu_train_engine_w0.25.json"
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 32 --shape 32 32 32 --methods ours --repeat 1 \
    --memory-case --out "$out/cpu_memory_w1_fft.json"
# Both grids: a whole synthesis, native (every slice) and report (one slice in three).
$py benchmarks/bench_grids.py --checkpoint napari_medsynth/data/generators/t2-pd-G4.pt --strides 16 \
    --out "$out/cpu_grids_t2pd_G4.json"
$py benchmarks/bench_grids.py --widths 1.0 --strides 16 --out "$out/cpu_grids_w1.json"
# 1. The report's volume (224x224x32), width 0.25 at strides 16 and 8, and full width at stride 16:
#    the peers as users call them (the model in PyTorch's default layout).
$py benchmarks/bench_reconstruct.py --widths 0.25 --strides 16 8 --methods ours monai torchio preview \
    --repeat 1 --out "$out/cpu_224_w0.25.json"
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 16 --methods ours monai torchio preview \
    --repeat 1 --out "$out/cpu_224_w1_s16.json"
# 2. The same engines given the same channels-last model: width 0.25 on the report's volume.
$py benchmarks/bench_reconstruct.py --widths 0.25 --strides 16 --methods ours monai torchio preview \
    --peers-channels-last --repeat 1 --out "$out/cpu_224_w0.25_s16_channels_last.json"
# 3. Full width on a 64x64x32 crop, stride 16, the same channels-last model for all.
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 16 --shape 64 64 32 --methods ours monai torchio preview \
    --peers-channels-last --repeat 1 --out "$out/cpu_64_w1_s16_channels_last.json"
# 4. Memory: a native IXI-size volume (256x256x130) through the full-width generator, in a fresh process.
$py benchmarks/bench_reconstruct.py --widths 1.0 --strides 32 --shape 32 32 32 --methods ours --repeat 1 \
    --memory-case --out "$out/cpu_memory_w1.json"
# 5. Preview with the trained demo generators, on the held-out sample subject.
$py benchmarks/bench_reconstruct.py --checkpoint napari_medsynth/data/generators/t2-pd-G4.pt --strides 8 16 \
    --methods ours preview --repeat 1 --out "$out/cpu_224_trained_t2pd_G4.json"
$py benchmarks/bench_reconstruct.py --checkpoint "napari_medsynth/data/generators/pd-t2-G4+RL.pt" --strides 16 \
    --methods ours preview --repeat 1 --out "$out/cpu_224_trained_pdt2_G4RL.json"
# 6. Training throughput.
$py benchmarks/bench_training.py --widths 0.125 0.25 --workers 0 2 --out "$out/cpu_training.json"
