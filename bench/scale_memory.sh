#!/usr/bin/env bash
# Memory and time at scale (issue: millions of tasks in bounded memory). For each t given (default
# 1e5 and 1e6): `lrsmeta generate` of t tasks, m = 20 rows, d = 100, r = 10, k = 5, float32 X, then
# `lrsmeta train` for 3 outer iterations with the paper's model (--prior none, r and k given) and
# with the prior at fixed settings, the latter with a checkpoint after every iteration. Reports GNU
# time's peak resident memory and wall time of each, the data's size on disk, the load time (reading
# the mapped X.npy from disk once, first touch included), the seconds per outer iteration, the
# checkpoint's write time, and the memory plan of the default `train` (r, k and the priors chosen
# on validation rows of --selection-tasks tasks), read from its refusal under a 1-byte limit.
# Prints a Markdown table.
#
#   bench/scale_memory.sh BUILD_DIR WORK_DIR [t ...]
# Needs about 8.2 GB of free disk per 1e6 tasks in WORK_DIR (removed at the end). To measure a cold
# load, drop the page cache first (as root: sync; echo 3 > /proc/sys/vm/drop_caches).
set -euo pipefail
build=$1
work=$2
shift 2
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(100000 1000000)
bin=$build/lrsmeta
[[ -x $bin ]] || { echo "no $bin: build first" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time (/usr/bin/time: apt-get install time)" >&2; exit 1; }
mkdir -p "$work"
peak() { sed -n 's/.*peak_kb=\([0-9]*\).*/\1/p' "$1"; }
wall() { sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' "$1"; }
metric() {  # metric FILE.json KEY: a number from --metrics-out, or the mean per outer iteration
  python3 - "$1" "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
if sys.argv[2] == "per_iteration":
    h = m["history"]
    print("%.2f" % (sum(x["task_step_seconds"] + x["u_step_seconds"] for x in h) / len(h)))
else:
    print("%.2f" % m[sys.argv[2]])
PY
}
gb() { awk -v k="$1" 'BEGIN { printf "%.2f GB", k / 1e6 }'; }
echo "| t | data on disk | generate: peak RSS, wall | train --prior none: peak RSS, wall, load, s per iteration | train prior (fixed settings) with --checkpoint: peak RSS, wall, load, s per iteration, checkpoint write | default train's plan |"
echo "|---|---|---|---|---|---|"
for t in "${sizes[@]}"; do
  data=$work/data_$t
  rm -rf "$data" "$work"/model_* "$work"/ckpt
  /usr/bin/time -f "peak_kb=%M wall_s=%e" -o "$work/gen.time" \
    "$bin" generate --out "$data" --tasks "$t" --samples 20 --dim 100 --rank 10 --sparsity 5 --noise 0.1 --dtype float32 > /dev/null
  size=$(du -sb "$data" | cut -f1)
  /usr/bin/time -f "peak_kb=%M wall_s=%e" -o "$work/none.time" \
    "$bin" train --data "$data" --out "$work/model_none" -r 10 -k 5 --prior none --iterations 3 --warm-start 1 \
    --metrics-out "$work/none.json" > /dev/null
  /usr/bin/time -f "peak_kb=%M wall_s=%e" -o "$work/prior.time" \
    "$bin" train --data "$data" --out "$work/model_prior" -r 10 -k 5 --sparse-prior-scale 0.1 --support-threshold 2 --covariance-shrinkage 10 \
    --iterations 3 --warm-start 1 --relative-tolerance 0 --metrics-out "$work/prior.json" --checkpoint "$work/ckpt" --verbose \
    > /dev/null 2> "$work/prior.err" || { tail -1 "$work/prior.err" >&2; true; }
  prior_cells="refused: $(tail -1 "$work/prior.err")"
  if [[ -s $work/prior.json ]]; then
    ckpt=$(sed -n 's/^checkpoint of iteration 3 written to .* in \([0-9.]*\) s$/\1/p' "$work/prior.err")
    prior_cells="$(gb "$(peak "$work/prior.time")"), $(wall "$work/prior.time") s, $(metric "$work/prior.json" load_seconds) s,"
    prior_cells+=" $(metric "$work/prior.json" per_iteration) s, $ckpt s"
  fi
  plan=$(LRSMETA_MEMORY_LIMIT=1 "$bin" train --data "$data" --out "$work/model_default" 2>&1 | sed -n 's/.*this fit needs about \([0-9.]* [kMG]B\).*/\1/p' || true)
  echo "| $t | $(awk -v b="$size" 'BEGIN { printf "%.2f GB", b / 1e9 }') | $(gb "$(peak "$work/gen.time")"), $(wall "$work/gen.time") s |" \
       "$(gb "$(peak "$work/none.time")"), $(wall "$work/none.time") s, $(metric "$work/none.json" load_seconds) s, $(metric "$work/none.json" per_iteration) s |" \
       "$prior_cells | $plan |"
  rm -rf "$data" "$work"/model_* "$work"/*.json "$work"/ckpt
done
