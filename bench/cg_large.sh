#!/usr/bin/env bash
# A U step above the direct solve's limit (issue: the U step without G): noiseless synthetic data
# with d = 500, r = 50 (d r = 25,000 unknowns; a direct solve takes at most 20,000), k = 0, t tasks
# of m rows (default 3000 x 150, float64), trained with the default U solver (auto picks cg here)
# and the spectral start; reports the relative parameter error against the truth, GNU time's peak
# resident memory and wall time, seconds per outer iteration and cg steps. Too heavy for CI.
#
#   bench/cg_large.sh BUILD_DIR WORK_DIR [tasks] [rows_per_task] [iterations]
set -euo pipefail
build=$1
work=$2
tasks=${3:-3000}
rows=${4:-150}
iterations=${5:-30}
bin=$build/lrsmeta
py=${PYTHON:-/usr/bin/python3}
mkdir -p "$work"
[[ -d $work/data ]] || "$bin" generate --out "$work/data" --tasks "$tasks" --samples "$rows" -d 500 -r 50 -k 0 --seed 5 -q > /dev/null
/usr/bin/time -f "peak_kb=%M wall_s=%e" -o "$work/train.time" \
  "$bin" train --data "$work/data" -r 50 -k 0 --prior none --init spectral --iterations "$iterations" --tolerance 1e-12 \
  --out "$work/model" --metrics-out "$work/metrics.json" -q > "$work/train.txt"
"$bin" eval --model "$work/model" --data "$work/data" --truth "$work/data/truth" --json "$work/eval.json" > /dev/null
"$py" - "$work" <<'PY'
import json, re, sys
w = sys.argv[1]
m = json.load(open(w + "/metrics.json"))
e = json.load(open(w + "/eval.json"))
t = open(w + "/train.time").read()
peak = int(re.search(r"peak_kb=(\d+)", t).group(1)) / 1e6
wall = float(re.search(r"wall_s=([\d.]+)", t).group(1))
h = m["history"]
per = sorted(x["task_step_seconds"] + x["u_step_seconds"] for x in h[1:])
u = sorted(x["u_step_seconds"] for x in h[1:])
steps = [x["u_solver_steps"] for x in h]
print(f"d = {m['d']}, r = {m['r']}, t = {m['t']}, n = {m['n']}: relative parameter error {e['relative_parameter_error']:.3g} "
      f"after {len(h)} iterations; peak {peak:.2f} GB, wall {wall:.1f} s; {per[len(per) // 2]:.2f} s per outer iteration "
      f"(U step {u[len(u) // 2]:.2f} s), cg steps {min(steps)} to {max(steps)}")
PY
