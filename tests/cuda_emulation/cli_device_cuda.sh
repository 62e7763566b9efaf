#!/usr/bin/env bash
# The command line with --device cuda on the emulated CUDA module (tests/cuda_emulation): the GPU's
# predictions are the CPU's; float32 data recover a noiseless model; cg runs; a fault or too little
# device memory is one line and writes nothing.
# Usage: LRSMETA=path/to/lrsmeta LRSMETA_MODULE_DIR=build/cuda_emulation cli_device_cuda.sh WORK_DIR
set -euo pipefail
work=$1
bin=${LRSMETA:?set LRSMETA to the lrsmeta executable}
[[ -f ${LRSMETA_MODULE_DIR:?set LRSMETA_MODULE_DIR to the emulated modules}/liblrsmeta_cuda.so ]] || { echo "FAIL: no emulated module"; exit 1; }
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# Largest |a - b| / max|b| over two predictions files (row,task,prediction).
relative_difference() {
  paste -d, "$1" "$2" | awk -F, 'NR > 1 { d = $3 - $6; if (d < 0) d = -d; b = $6 < 0 ? -$6 : $6; if (d > dm) dm = d; if (b > bm) bm = b }
                                 END { printf "%.3g", dm / (bm > 0 ? bm : 1) }'
}

# Ragged, noisy, double: the GPU's model predicts as the CPU's, to a relative 1e-8. (cg solves
# every U step fully here: stopped early, the two may stop a step apart.)
"$bin" generate --out data --tasks 300 --min-samples 1 --max-samples 12 -d 12 -r 2 -k 1 --noise 0.1 --seed 4 > /dev/null
for solver in direct cg; do
  solve=(--u-solver $solver)
  [[ $solver == cg ]] && solve+=(--cg-tolerance 1e-13 --cg-forcing 0)
  "$bin" train --data data -r 2 -k 1 --prior none "${solve[@]}" --device cpu --out cpu_$solver > /dev/null
  "$bin" train --data data -r 2 -k 1 --prior none "${solve[@]}" --device cuda --out cuda_$solver > cuda_$solver.txt
  "$bin" predict --model cpu_$solver --data data --out cpu_$solver.csv > /dev/null
  "$bin" predict --model cuda_$solver --data data --out cuda_$solver.csv > /dev/null
  diff=$(relative_difference cuda_$solver.csv cpu_$solver.csv)
  awk -v e="$diff" 'BEGIN { exit !(e < 1e-8) }' || fail "--device cuda --u-solver $solver predicts $diff (relative) from the CPU's model"
  echo "u-solver $solver: GPU and CPU predictions differ by $diff (relative)"
done
grep -q '"device": "cuda"' cuda_direct/model.json || fail "model.json does not record the GPU fit's device"

# The default model (the prior, r, k and its settings estimated by marginal likelihood) on the
# GPU: the same choice, and the CPU's predictions to a relative 1e-6.
"$bin" train --data data --device cpu --out cpu_default > cpu_default.txt
"$bin" train --data data --device cuda --out cuda_default > cuda_default.txt
"$bin" predict --model cpu_default --data data --out cpu_default.csv > /dev/null
"$bin" predict --model cuda_default --data data --out cuda_default.csv > /dev/null
chosen() { grep -o "): r = [0-9]*, k = [0-9]*" "$1"; }
[[ -n $(chosen cpu_default.txt) && $(chosen cpu_default.txt) == $(chosen cuda_default.txt) ]] ||
  fail "the GPU chose $(chosen cuda_default.txt), the CPU $(chosen cpu_default.txt)"
diff=$(relative_difference cuda_default.csv cpu_default.csv)
awk -v e="$diff" 'BEGIN { exit !(e < 1e-6) }' || fail "the default model on the GPU predicts $diff (relative) from the CPU's"
echo "default model: the same choice ($(chosen cuda_default.txt | cut -c4-)); predictions differ by $diff (relative)"

# Noiseless float32 data: the GPU recovers the model.
"$bin" generate --out data32 --tasks 200 --samples 40 -d 16 -r 2 -k 1 --seed 5 --dtype float32 > /dev/null
"$bin" train --data data32 -r 2 -k 1 --prior none --device cuda --out cuda32 --iterations 60 > /dev/null
"$bin" eval --model cuda32 --data data32 --truth data32/truth --json eval32.json > /dev/null
err=$(sed -n 's/.*"relative_parameter_error": \([^,]*\),*/\1/p' eval32.json)
awk -v e="$err" 'BEGIN { exit !(e < 1e-4) }' || fail "float32 on the GPU: relative parameter error $err is not below 1e-4"

# A device call that fails, and a device too small: one line naming it, no model written.
if LRSMETA_CUDA_EMULATION_FAULT=cublasDgemm_v2:3 "$bin" train --data data -r 2 -k 1 --prior none --device cuda --out broken \
     > broken.txt 2> broken.err; then
  fail "an injected cuBLAS failure did not fail train"
fi
grep -q "^lrsmeta train: error: CUDA: cublasDgemm" broken.err || fail "the failure is not one line naming the call: $(cat broken.err)"
[[ $(wc -l < broken.err) -eq 1 ]] || fail "the failure took more than one line: $(cat broken.err)"
[[ ! -e broken ]] || fail "a failed train left a model folder"
if LRSMETA_CUDA_EMULATION_DEVICE_MIB=0 "$bin" train --data data -r 2 -k 1 --prior none --device cuda --out small > small.txt 2> small.err; then
  fail "a device without memory trained"
fi
grep -q "of device memory" small.err || fail "the memory refusal does not say so: $(cat small.err)"
[[ ! -e small ]] || fail "a refused train left a model folder"
echo "cli_device_cuda: all checks passed"
