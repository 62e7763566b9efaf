#!/usr/bin/env bash
# The GPU path checked on a machine with a GPU, in few calls (the device tool: /work/.library/device/README.md).
#
#   scripts/device-check.sh prepare       here: build for sm_90 into build-device/ and pack what a bare
#                                         device machine lacks (the programs, OpenBLAS, the Fortran
#                                         runtime, Google Benchmark) into carry/ (git-ignored)
#   scripts/device-check.sh run [STAGE]   there (or here): STAGE is tests, sanitizer, bench, scale or
#                                         all (default); writes summary.md and the logs to $OUT (./out
#                                         where OUT is unset) and prints the summary last
#
# On the device tool: carry ["carry"], command "bash scripts/device-check.sh run tests sanitizer",
# then a second call with "run bench", a third with "run scale" (the default model at t = 1e6): a
# call may run 10 minutes, and each stage stops its programs at its own time limit. Without a usable GPU `run` says so, the GPU tests skip and the sanitizer
# and GPU benchmarks are left out; the CPU benchmark still runs.
set -euo pipefail
trap 'echo "device-check: stopped by a failed command at line $LINENO" >&2' ERR
root=$(cd "$(dirname "$0")/.." && pwd)
archive=$root/carry/lrsmeta-device.tar.xz
build=$root/build-device

# Everything but these comes in the pack: the C library's, and the CUDA toolkit's (its libraries
# are hundreds of MB and the device image has the toolkit).
system_lib() {
  case $1 in
    linux-vdso* | ld-linux* | libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so*) return 0 ;;
    libcudart* | libcublas* | libcublasLt* | libcusolver* | libcusparse* | libnvJitLink* | libcuda.so*) return 0 ;;
  esac
  return 1
}
# Packed, but used there only where the machine has none of its own (a newer C++ runtime of the
# machine's serves these programs too, and the toolkit's libraries may need it).
fallback_lib() {
  case $1 in libstdc++* | libgcc_s* | libgomp*) return 0 ;; esac
  return 1
}

prepare() {
  local programs=(tests/test_cuda tests/test_kernel_emulation bench/bench_gpu bench/bench_cpu lrsmeta)
  # x86-64-v3 (AVX2), not this machine's -march=native: the device machine's processor is not this
  # one. OpenBLAS picks its kernels for the processor it finds at run time either way.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLRSMETA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DLRSMETA_NCCL=OFF -DLRSMETA_MPI=OFF -DLRSMETA_PYTHON=OFF -DLRSMETA_CPU_ARCH=x86-64-v3 \
    -DLRSMETA_BUILD_TESTS=ON -DLRSMETA_BUILD_BENCHMARKS=ON > "$build.configure.log"
  cmake --build "$build" -j "$(nproc)" --target test_cuda test_kernel_emulation bench_gpu bench_cpu lrsmeta_cli \
    > "$build.build.log"
  local stage
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' RETURN
  mkdir -p "$stage/bin" "$stage/lib" "$stage/lib-fallback"
  for p in "${programs[@]}"; do strip -o "$stage/bin/$(basename "$p")" "$build/$p"; done
  cp -P "$build"/liblrsmeta.so* "$stage/lib/"
  strip "$stage"/lib/liblrsmeta.so.*.*.*
  for p in "${programs[@]}"; do
    ldd "$build/$p" | awk '/=>/ { print $1, $3 }'
  done | sort -u | while read -r name path; do
    [[ $name == liblrsmeta* ]] && continue
    system_lib "$name" && continue
    [[ -f $path ]] || { echo "device-check prepare: $name is not found here (ldd)" >&2; exit 1; }
    if fallback_lib "$name"; then cp -L "$path" "$stage/lib-fallback/$name"; else cp -L "$path" "$stage/lib/$name"; fi
  done
  git -C "$root" rev-parse HEAD > "$stage/COMMIT"
  mkdir -p "$(dirname "$archive")"
  tar -C "$stage" -cJf "$archive.tmp" .
  mv "$archive.tmp" "$archive"
  local bytes tracked
  bytes=$(stat -c %s "$archive")
  tracked=$(git -C "$root" ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s }')
  echo "packed $(tar -tJf "$archive" | grep -c -v '/$') files into $archive: $((bytes / 1024 / 1024)) MiB" \
    "(+ $((tracked / 1024 / 1024)) MiB of tracked files; the device tool carries 64 MiB in all)"
  if (( bytes + tracked > 60 * 1024 * 1024 )); then
    echo "device-check prepare: the pack and the tree exceed 60 MiB: the device tool would refuse them" >&2
    exit 1
  fi
}

# ---- run ----------------------------------------------------------------------------------------

out=${OUT:-$root/out}
unpacked=""
gpu=no

log() { echo "$*" | tee -a "$out/summary.md"; }

# Every library the programs need, from the pack, the toolkit or (for the C++ runtime) the pack's
# fallback; what is still missing is named.
resolve_libraries() {
  local dirs=("$unpacked/lib")
  local candidates=(/usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib)
  local site
  for site in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do [[ -d $site ]] && candidates+=("$site"); done
  export LD_LIBRARY_PATH="$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local missing name dir found
  for _ in 1 2 3; do
    missing=$(for b in "$unpacked"/bin/*; do ldd "$b" 2>/dev/null | awk '/not found/ { print $1 }'; done | sort -u)
    [[ -z $missing ]] && break
    for name in $missing; do
      found=""
      if [[ -f $unpacked/lib-fallback/$name ]]; then
        found=$unpacked/lib-fallback
      else
        for dir in "${candidates[@]}"; do [[ -f $dir/$name ]] && { found=$dir; break; }; done
      fi
      if [[ -n $found ]]; then
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$found"
        echo "library $name from $found" >> "$out/environment.log"
      fi
    done
  done
  missing=$(for b in "$unpacked"/bin/*; do ldd "$b" 2>/dev/null | awk '/not found/ { print $1 }'; done | sort -u)
  if [[ -n $missing ]]; then
    log "- libraries not found on this machine: $(echo $missing) (the programs that need them cannot run)"
  fi
}

environment() {
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "pack built from commit $(cat "$unpacked/COMMIT")"
    uname -a
    echo "cores: $(nproc); $(grep -m1 'model name' /proc/cpuinfo || true)"
    free -g | head -2
    if command -v nvidia-smi > /dev/null; then nvidia-smi || true; else echo "nvidia-smi: not installed"; fi
    if command -v nvcc > /dev/null; then nvcc --version | tail -2; fi
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for b in "$unpacked"/bin/*; do echo "== ldd $(basename "$b")"; ldd "$b" || true; done
  } >> "$out/environment.log" 2>&1
  log "- pack: built from commit $(cat "$unpacked/COMMIT") (run prepare again after a change)"
  if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    gpu=yes
    log "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  else
    log "- device: no usable GPU here (no working nvidia-smi): the GPU tests skip, the sanitizer and the GPU benchmarks are left out"
  fi
}

# gtest's closing lines into one summary line: passed, skipped, failed (and which).
gtest_result() {
  local file=$1 name=$2 status=$3
  local passed skipped failed
  passed=$(grep -oP '^\[  PASSED  \] \K[0-9]+' "$file" | tail -1 || true)
  skipped=$(grep -oP '^\[  SKIPPED \] \K[0-9]+' "$file" | tail -1 || true)
  failed=$(grep -oP '^\[  FAILED  \] \K[0-9]+(?= test)' "$file" | tail -1 || true)
  local line="| $name | exit $status | passed ${passed:-0} | skipped ${skipped:-0} | failed ${failed:-0} |"
  log "$line"
  grep -E '^\[  FAILED  \] [A-Za-z]' "$file" | sort -u | sed 's/^/    /' | tee -a "$out/summary.md" || true
}

stage_tests() {
  log ""
  log "## GPU tests"
  log ""
  log "| program | status | passed | skipped | failed |"
  log "|---|---|---|---|---|"
  local t status
  for t in test_cuda test_kernel_emulation; do
    status=0
    timeout 300 "$unpacked/bin/$t" --gtest_color=no > "$out/$t.tmp" 2>&1 || status=$?
    cat "$out/$t.tmp" >> "$out/tests.log"
    gtest_result "$out/$t.tmp" "$t" "$status"
    rm -f "$out/$t.tmp"
  done
  # The CLI end to end: the README's main job on the GPU (float32 data), its error against the truth.
  local work
  work=$(mktemp -d)
  {
    echo "== lrsmeta CLI on generated data (t = 20000, m = 40, d = 100, r = 5, k = 3, noise 0.01, float32)"
    "$unpacked/bin/lrsmeta" generate --out "$work/data" --tasks 20000 --samples 40 --dim 100 --rank 5 --sparsity 3 \
      --noise 0.01 --dtype float32 --seed 1 -q
  } >> "$out/tests.log" 2>&1
  local device error start wall prior
  # The paper's model, and the default model (the prior, its settings estimated, r and k given):
  # each on the GPU and on the CPU, and for the default model the two devices' predictions compared.
  for prior in none auto; do
    for device in cuda cpu; do
      [[ $device == cuda && $gpu == no ]] && { log "- CLI train --device cuda --prior $prior: left out (no GPU)"; continue; }
      status=0
      start=$(date +%s.%N)
      timeout 300 "$unpacked/bin/lrsmeta" train --data "$work/data" -r 5 -k 3 --prior "$prior" --iterations 20 \
        --device "$device" --out "$work/model_${prior}_$device" -q > "$work/cli.txt" 2>&1 || status=$?
      wall=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.1f", a - b }')
      [[ $status == 0 ]] && { "$unpacked/bin/lrsmeta" eval --model "$work/model_${prior}_$device" --data "$work/data" \
        --truth "$work/data/truth" >> "$work/cli.txt" 2>&1 || status=$?; }
      [[ $status == 0 && $prior == auto ]] && { "$unpacked/bin/lrsmeta" predict --model "$work/model_${prior}_$device" \
        --data "$work/data" --out "$work/pred_$device.csv" >> "$work/cli.txt" 2>&1 || status=$?; }
      cat "$work/cli.txt" >> "$out/tests.log"
      error=$(grep -oP 'relative parameter error .* = \K[0-9.eE+-]+' "$work/cli.txt" || echo "none")
      log "- CLI train --device $device --prior $prior, 20 iterations: exit $status, relative parameter error $error, train $wall s"
    done
  done
  if [[ -f $work/pred_cuda.csv && -f $work/pred_cpu.csv ]]; then
    local difference
    difference=$(paste -d, "$work/pred_cuda.csv" "$work/pred_cpu.csv" | awk -F, 'NR > 1 { d = $3 - $6; if (d < 0) d = -d;
      b = $6 < 0 ? -$6 : $6; if (d > dm) dm = d; if (b > bm) bm = b } END { printf "%.3g", dm / (bm > 0 ? bm : 1) }')
    log "- default model, GPU against CPU: largest prediction difference $difference (relative to the largest prediction)"
  fi
  rm -rf "$work"
}

stage_sanitizer() {
  log ""
  log "## compute-sanitizer on the GPU tests (their small sizes)"
  log ""
  if [[ $gpu == no ]]; then log "- left out: no GPU"; return; fi
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null || true)
  if [[ -z $sanitizer ]]; then log "- left out: compute-sanitizer is not installed here"; return; fi
  local tool status summary
  for tool in memcheck racecheck; do
    status=0
    echo "== compute-sanitizer --tool $tool test_cuda" >> "$out/sanitizer.log"
    timeout 240 "$sanitizer" --tool "$tool" --error-exitcode 99 "$unpacked/bin/test_cuda" --gtest_color=no \
      > "$out/sanitizer.tmp" 2>&1 || status=$?
    cat "$out/sanitizer.tmp" >> "$out/sanitizer.log"
    summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/sanitizer.tmp" | tail -1 || true)
    log "- $tool: exit $status${summary:+, $summary}$([[ $status == 124 ]] && echo ' (stopped at its 240 s limit)')"
    rm -f "$out/sanitizer.tmp"
  done
}

# The default model at scale: t = 1e6 tasks of m = 20 rows, d = 100, float32, generated here, and
# trained on the GPU with r = 10, k = 5 given (the prior and its settings estimated) for a few outer
# iterations; the per-iteration times from --metrics-out. LRSMETA_SCALE_TASKS (default 1000000)
# shrinks it, and with it set the stage also runs without a GPU, on the CPU: a rehearsal of the
# script, whose times say nothing of a GPU.
stage_scale() {
  local tasks=${LRSMETA_SCALE_TASKS:-1000000} device=cuda
  log ""
  log "## The default model at scale (t = $tasks, m = 20, d = 100, r = 10, k = 5, float32)"
  log ""
  if [[ $gpu == no ]]; then
    [[ -z ${LRSMETA_SCALE_TASKS:-} ]] && { log "- left out: no GPU"; return; }
    device=cpu
    log "- no GPU: a rehearsal on the CPU"
  fi
  local work status start wall
  work=$(mktemp -d -p "${LRSMETA_SCALE_DIR:-/tmp}")
  status=0
  start=$(date +%s.%N)
  timeout 240 "$unpacked/bin/lrsmeta" generate --out "$work/data" --tasks "$tasks" --samples 20 --dim 100 --rank 10 \
    --sparsity 5 --noise 0.1 --dtype float32 --seed 3 -q >> "$out/scale.log" 2>&1 || status=$?
  wall=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.1f", a - b }')
  log "- generate: exit $status in $wall s$([[ $status == 124 ]] && echo ' (stopped at its 240 s limit)')"
  if [[ $status == 0 ]]; then
    status=0
    start=$(date +%s.%N)
    timeout 300 "$unpacked/bin/lrsmeta" train --data "$work/data" -r 10 -k 5 --iterations 8 --device "$device" \
      --out "$work/model" --metrics-out "$out/scale_metrics.json" -q >> "$out/scale.log" 2>&1 || status=$?
    wall=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.1f", a - b }')
    log "- train --device $device (the default model, r and k given, 8 outer iterations at most): exit $status in $wall s$([[ $status == 124 ]] && echo ' (stopped at its 300 s limit)')"
    [[ $status == 0 ]] && python3 - "$out/scale_metrics.json" << 'PY' | tee -a "$out/summary.md"
import json, sys
m = json.load(open(sys.argv[1]))
history = [h for h in m.get("history", []) if not h.get("candidate")]
print("- fit_seconds %.2f; per outer iteration (task step + U step, ms): %s" % (
    m.get("fit_seconds", float("nan")),
    ", ".join("%.0f + %.0f" % (1e3 * h["task_step_seconds"], 1e3 * h["u_step_seconds"]) for h in history)))
PY
  fi
  rm -rf "$work"
}

# The rows of a Google Benchmark JSON file as a Markdown table: name, median time, counters.
bench_table() {
  python3 - "$1" << 'PY' | tee -a "$out/summary.md"
import json, sys
try:
    rows = json.load(open(sys.argv[1]))["benchmarks"]
except Exception as e:
    print("- no results (%s)" % e)
    sys.exit(0)
print("| benchmark | time | counters |")
print("|---|---|---|")
for b in rows:
    if b.get("aggregate_name", "median") != "median":
        continue
    if b.get("error_occurred"):
        print("| %s | error: %s | |" % (b["name"], b.get("error_message", "")))
        continue
    skip = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations", "real_time",
            "cpu_time", "time_unit", "aggregate_name", "aggregate_unit", "family_index", "per_family_instance_index", "label"}
    counters = ", ".join("%s %.4g" % (k, v) for k, v in b.items() if k not in skip and isinstance(v, (int, float)))
    print("| %s | %.4g %s | %s |" % (b["name"], b["real_time"], b["time_unit"], counters + (" " + b["label"] if b.get("label") else "")))
PY
}

stage_bench() {
  log ""
  log "## Benchmarks (medians of 3)"
  local status
  if [[ $gpu == yes ]]; then
    status=0
    timeout 330 "$unpacked/bin/bench_gpu" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/bench_gpu.json" --benchmark_out_format=json >> "$out/bench.log" 2>&1 || status=$?
    log ""
    log "bench_gpu: exit $status$([[ $status == 124 ]] && echo ' (stopped at its 330 s limit)')"
    log ""
    bench_table "$out/bench_gpu.json"
  else
    log ""
    log "bench_gpu: left out (no GPU)"
  fi
  # The CPU path on the same machine's cores, at the sizes the GPU table compares with.
  status=0
  timeout 200 "$unpacked/bin/bench_cpu" --benchmark_filter='StreamRead|TaskStep<float>/100000|NormalOperator<float>/100000|OuterIteration<float>/100000' \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/bench_cpu.json" --benchmark_out_format=json >> "$out/bench.log" 2>&1 || status=$?
  log ""
  log "bench_cpu ($(nproc) cores): exit $status$([[ $status == 124 ]] && echo ' (stopped at its 200 s limit)')"
  log ""
  bench_table "$out/bench_cpu.json"
}

run() {
  local stages=("$@")
  [[ ${#stages[@]} -eq 0 || ${stages[0]} == all ]] && stages=(tests sanitizer bench scale)
  for s in "${stages[@]}"; do
    case $s in tests | sanitizer | bench | scale) ;; *) echo "device-check run: unknown stage '$s' (tests, sanitizer, bench, scale, all)" >&2; exit 2 ;; esac
  done
  if [[ ! -f $archive ]]; then
    echo "device-check run: no pack at $archive: run 'scripts/device-check.sh prepare' here and carry 'carry'" >&2
    exit 1
  fi
  mkdir -p "$out"
  rm -f "$out"/summary.md "$out"/environment.log "$out"/tests.log "$out"/sanitizer.log "$out"/bench.log \
    "$out"/bench_gpu.json "$out"/bench_cpu.json "$out"/scale.log "$out"/scale_metrics.json
  unpacked=$(mktemp -d)
  trap 'rm -rf "$unpacked"' EXIT
  # tar's -J needs the xz program; Python's tarfile (lzma) where the machine lacks it.
  if command -v xz > /dev/null; then
    tar -C "$unpacked" -xJf "$archive" || { echo "device-check run: cannot unpack $archive" >&2; exit 1; }
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$archive" "$unpacked" ||
      { echo "device-check run: cannot unpack $archive (no xz program, and Python could not)" >&2; exit 1; }
  fi
  echo "# device check: $(date -u +%FT%TZ), stages: ${stages[*]}" > "$out/summary.md"
  echo "" >> "$out/summary.md"
  resolve_libraries
  environment
  for s in "${stages[@]}"; do "stage_$s"; done
  echo
  echo "summary and logs in $out"
}

case ${1:-} in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/device-check.sh prepare | run [tests|sanitizer|bench|scale|all]..." >&2; exit 2 ;;
esac
