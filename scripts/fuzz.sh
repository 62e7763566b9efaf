#!/usr/bin/env bash
# Fuzz the file readers: builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer
# and UndefinedBehaviorSanitizer on) into build-fuzz/, then runs each for SECONDS (default 60),
# starting from the seed corpus tests/fuzz/seeds/TARGET and the inputs kept by earlier runs.
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     targets: npy csv model data checkpoint (default all)
# A crash stops its target and leaves the input in build-fuzz/crashes/; minimise it
# (build-fuzz/tests/fuzz/fuzz_TARGET -minimize_crash=1 -runs=10000 INPUT), fix the reader, and add
# the minimised input to tests/fuzz/regressions/TARGET/ (test_fuzz_inputs runs every one).
# Where clang++ is missing it says so and exits 0 (FUZZ_REQUIRED=1: exit 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(npy csv model data checkpoint)
if ! command -v clang++ > /dev/null; then
  echo "fuzz: clang++ not found (Debian: clang libclang-rt-14-dev libomp-dev); not fuzzing"
  exit "${FUZZ_REQUIRED:-0}"
fi
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
CC=clang CXX=clang++ BUILD_DIR=$build BUILD_TYPE=RelWithDebInfo "$root/scripts/build.sh" \
  -DLRSMETA_FUZZ=ON -DLRSMETA_SANITIZE=address,undefined -DLRSMETA_CPU_ARCH= \
  -DLRSMETA_BUILD_TESTS=OFF -DLRSMETA_BUILD_BENCHMARKS=OFF -DLRSMETA_BUILD_CLI=OFF \
  -DLRSMETA_CUDA=OFF -DLRSMETA_MPI=OFF -DLRSMETA_PYTHON=OFF > "$build.build.log" 2>&1 ||
  { tail -n 40 "$build.build.log"; exit 1; }
mkdir -p "$build/crashes"
status=0
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  mkdir -p "$corpus"
  log=$build/fuzz_$t.log
  # One process, inputs up to 64 kB, no allocation over 512 MB (a reader must not trust a header's
  # claim), 2 GB at most in all.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -malloc_limit_mb=512 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" "$corpus" "$root/tests/fuzz/seeds/$t" > "$log" 2>&1; then
    result=clean
  else
    result="FAILED (see $log and $build/crashes/)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $t: $result; $runs executions in $seconds s; corpus $(find "$corpus" -type f | wc -l) inputs"
done
exit $status
