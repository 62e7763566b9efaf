#!/usr/bin/env bash
# The main job, from a fresh clone: install what is missing, build, generate synthetic data, train
# an AMHT-LRS model on it (on the GPU when one is usable, else the CPU) and report the error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" -DLRSMETA_BUILD_TESTS=OFF -DLRSMETA_BUILD_BENCHMARKS=OFF
bin=$root/build/lrsmeta
work=$root/build/quickstart
mkdir -p "$work"
"$bin" generate --out "$work/data" --tasks 20000 --samples 40 --dim 100 --rank 5 --sparsity 3 --noise 0.01 --seed 1
"$bin" train --data "$work/data" --rank 5 --sparsity 3 --iterations 20 --device auto \
  --out "$work/model" --metrics-out "$work/metrics.json"
"$bin" eval --model "$work/model" --data "$work/data" --truth "$work/data/truth"
echo "model in $work/model, metrics in $work/metrics.json"
