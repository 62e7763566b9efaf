#!/usr/bin/env bash
# lrsmeta against the NumPy peer (bench/peers/numpy_amht.py) on the same generated data: the
# paper's model (--prior none), t = 20000 tasks of m = 20 rows, d = 100, r = 10, k = 5, float32 X.
# Prints each one's seconds per outer iteration and the ratio, for
# lrsmeta's default U solver (auto), direct and cg, and for lrsmeta's default task step (pursuit)
# and the NumPy peer's (iht); and lrsmeta's default model (the empirical-Bayes priors, their
# settings estimated) with r and k given, against the same peer.
#
# A shared machine's speed moves by 10 to 30% from one minute to the next, and an lrsmeta run (under
# a second) can fall in one slow moment where the NumPy run (ten seconds) averages over several:
# so every run is repeated (`runs`, default 3), runs of the two alternate, and each figure is the
# median over the runs of a run's median over its iterations after the first.
#
#   bench/peers/compare_numpy.sh BUILD_DIR WORK_DIR [iterations] [runs]
set -euo pipefail
build=$1
work=$2
iterations=${3:-8}
runs=${4:-3}
[[ $iterations =~ ^[0-9]+$ && $iterations -ge 2 ]] || { echo "compare_numpy.sh: iterations must be a whole number >= 2 (got '$iterations'): the first is not timed" >&2; exit 2; }
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "compare_numpy.sh: runs must be a whole number >= 1 (got '$runs')" >&2; exit 2; }
[[ -x $build/lrsmeta ]] || { echo "compare_numpy.sh: no lrsmeta executable in '$build' (build it first)" >&2; exit 2; }
bin=$build/lrsmeta
py=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
data=$work/data
[[ -d $data ]] || "$bin" generate --out "$data" --tasks 20000 --samples 20 --dim 100 --rank 10 --sparsity 5 --noise 0.1 \
  --dtype float32 --seed 1 -q > /dev/null
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# One lrsmeta run: its median seconds per outer iteration after the first, of which U step, and the
# most cg steps, from --metrics-out.
lrsmeta_run() {  # variant solver [model]: model "prior" is lrsmeta's default model (the priors estimated)
  local model=(--prior none)
  [[ ${3:-} == prior ]] && model=(--relative-tolerance 0)
  "$bin" train --data "$data" --out "$work/model" -r 10 -k 5 "${model[@]}" --variant "$1" --u-solver "$2" \
    --iterations "$iterations" --warm-start 1 --tolerance 0 --metrics-out "$work/m.json" -q > "$work/train.txt"
  "$py" - "$work/m.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["history"]
s = sorted(x["task_step_seconds"] + x["u_step_seconds"] for x in h[1:])
u = sorted(x["u_step_seconds"] for x in h[1:])
print("%.4f %.4f %d" % (s[len(s) // 2], u[len(u) // 2], max(x.get("u_solver_steps", 0) for x in h)))
PY
}
configs=("pursuit auto" "pursuit direct" "pursuit cg" "iht auto" "iht direct" "iht cg" "pursuit auto prior")
: > "$work/numpy_runs.txt"
for c in "${configs[@]}"; do : > "$work/runs_${c// /_}.txt"; done
for ((run = 1; run <= runs; ++run)); do
  "$py" "$here/numpy_amht.py" "$data" -r 10 -k 5 --iterations "$iterations" --warm-start 1 --json "$work/numpy.json" > /dev/null
  "$py" -c "import json; print(json.load(open('$work/numpy.json'))['seconds_per_iteration'])" >> "$work/numpy_runs.txt"
  for c in "${configs[@]}"; do
    lrsmeta_run $c >> "$work/runs_${c// /_}.txt"
  done
done
numpy_s=$(median < "$work/numpy_runs.txt")
echo "| lrsmeta run | s per outer iteration | of which U step | most cg steps | NumPy / lrsmeta |"
echo "|---|---|---|---|---|"
for c in "${configs[@]}"; do
  f=$work/runs_${c// /_}.txt
  per=$(cut -d' ' -f1 "$f" | median)
  u=$(cut -d' ' -f2 "$f" | median)
  steps=$(cut -d' ' -f3 "$f" | sort -n | tail -1)
  ratio=$(awk -v a="$numpy_s" -v b="$per" 'BEGIN { printf "%.1f", a / b }')
  read -r variant solver model <<< "$c"
  if [[ $model == prior ]]; then
    echo "| the default model (the priors estimated), --variant $variant --u-solver $solver | $per | $u | $steps | $ratio |"
  else
    echo "| --prior none --variant $variant --u-solver $solver | $per | $u | $steps | $ratio |"
  fi
done
echo
echo "NumPy peer (iht task step, direct U step): $numpy_s s per outer iteration (median of $runs runs: $(tr '\n' ' ' < "$work/numpy_runs.txt"))"
for c in "pursuit auto" "iht auto"; do
  echo "lrsmeta $c, each run: $(cut -d' ' -f1 "$work/runs_${c// /_}.txt" | tr '\n' ' ')"
done
