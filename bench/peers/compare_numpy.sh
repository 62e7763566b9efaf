#!/usr/bin/env bash
# lrsmeta against the NumPy peer (bench/peers/numpy_amht.py) on the same generated data: the
# paper's model (--prior none), t = 20000 tasks of m = 20 rows, d = 100, r = 10, k = 5, float32 X
# (issue: the U step without G). Prints each one's seconds per outer iteration (median over the
# iterations after the first) and the ratio, for lrsmeta's default U solver (auto), direct and cg,
# and for lrsmeta's default task step (pursuit) and the NumPy peer's (iht).
#
#   bench/peers/compare_numpy.sh BUILD_DIR WORK_DIR [iterations]
set -euo pipefail
build=$1
work=$2
iterations=${3:-8}
bin=$build/lrsmeta
py=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
data=$work/data
[[ -d $data ]] || "$bin" generate --out "$data" --tasks 20000 --samples 20 --dim 100 --rank 10 --sparsity 5 --noise 0.1 \
  --dtype float32 --seed 1 -q > /dev/null
median_lrsmeta() {  # median seconds per outer iteration after the first, from --metrics-out
  "$py" - "$1" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["history"]
s = sorted(x["task_step_seconds"] + x["u_step_seconds"] for x in h[1:])
u = sorted(x["u_step_seconds"] for x in h[1:])
print("%.4f %.4f %d" % (s[len(s) // 2], u[len(u) // 2], max(x.get("u_solver_steps", 0) for x in h)))
PY
}
"$py" "$here/numpy_amht.py" "$data" -r 10 -k 5 --iterations "$iterations" --warm-start 1 --json "$work/numpy.json"
numpy_s=$("$py" -c "import json; print(json.load(open('$work/numpy.json'))['seconds_per_iteration'])")
echo "| lrsmeta run | s per outer iteration | of which U step | most cg steps | NumPy / lrsmeta |"
echo "|---|---|---|---|---|"
for variant in pursuit iht; do
  for solver in auto direct cg; do
    "$bin" train --data "$data" --out "$work/model" -r 10 -k 5 --prior none --variant "$variant" --u-solver "$solver" \
      --iterations "$iterations" --warm-start 1 --tolerance 0 --metrics-out "$work/m.json" -q > "$work/train.txt"
    read -r per u steps < <(median_lrsmeta "$work/m.json")
    ratio=$(awk -v a="$numpy_s" -v b="$per" 'BEGIN { printf "%.1f", a / b }')
    echo "| --variant $variant --u-solver $solver | $per | $u | $steps | $ratio |"
  done
done
echo
echo "NumPy peer (iht task step, direct U step): $numpy_s s per outer iteration"
