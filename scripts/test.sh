#!/usr/bin/env bash
# Build and run the whole test suite: the release build, then the CPU path again under
# AddressSanitizer and UndefinedBehaviorSanitizer, then each fuzz target of the file readers for a
# short time (FUZZ_SECONDS, default 20; 0 skips; clang only). ctest prints how many tests ran.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
"$root/scripts/install-deps.sh"

echo "== release build and tests"
BUILD_DIR=$root/build "$root/scripts/build.sh" -DLRSMETA_BUILD_TESTS=ON -DLRSMETA_BUILD_BENCHMARKS=ON -DLRSMETA_BUILD_CLI=ON
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

if [[ ${LRSMETA_SKIP_SANITIZERS:-0} != 1 ]]; then
  # Without CUDA (its runtime and ASan's shadow memory do not mix) and MPI (Open MPI's own
  # allocations read as leaks); the fit over many processes is still checked here, on threads
  # (tests/test_distributed.cpp).
  echo "== ASan/UBSan build and tests (CPU path)"
  BUILD_DIR=$root/build-sanitize BUILD_TYPE=RelWithDebInfo "$root/scripts/build.sh" \
    -DLRSMETA_SANITIZE=address,undefined -DLRSMETA_BUILD_BENCHMARKS=OFF -DLRSMETA_CUDA=OFF -DLRSMETA_PYTHON=OFF -DLRSMETA_MPI=OFF
  # The installed-package test rebuilds a consumer without the sanitizer runtime: release only.
  (cd "$root/build-sanitize" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --output-on-failure -j "$jobs" -E installed_package_consumer)
fi

# The file readers under libFuzzer, briefly (scripts/fuzz.sh runs them for longer).
if [[ ${FUZZ_SECONDS:-20} != 0 ]]; then
  echo "== fuzzing the file readers (${FUZZ_SECONDS:-20} s each)"
  "$root/scripts/fuzz.sh" "${FUZZ_SECONDS:-20}"
fi
