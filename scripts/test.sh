#!/usr/bin/env bash
# Build and run the whole test suite: the release build, then the CPU path again under
# AddressSanitizer and UndefinedBehaviorSanitizer, then each fuzz target of the file readers for a
# short time (FUZZ_SECONDS, default 20; 0 skips; clang only). ctest prints how many tests ran.
# Both builds also build the CUDA backend against the CPU emulation of CUDA (tests/cuda_emulation)
# and run the GPU tests there, where the toolkit's headers are installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
"$root/scripts/install-deps.sh"

echo "== release build and tests"
emulation=OFF
nvcc_dir=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")
[[ -f $nvcc_dir/../include/cuda_runtime_api.h ]] && emulation=ON
BUILD_DIR=$root/build "$root/scripts/build.sh" -DLRSMETA_BUILD_TESTS=ON -DLRSMETA_BUILD_BENCHMARKS=ON -DLRSMETA_BUILD_CLI=ON \
  -DLRSMETA_CUDA_EMULATION=$emulation
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

if [[ ${LRSMETA_SKIP_SANITIZERS:-0} != 1 ]]; then
  # Without the real CUDA backend (its runtime and ASan's shadow memory do not mix), with the
  # emulated one, and without MPI (Open MPI's own allocations read as leaks); the fit over many
  # processes is still checked here, on threads (tests/test_distributed.cpp).
  echo "== ASan/UBSan build and tests (CPU path, emulated CUDA backend)"
  BUILD_DIR=$root/build-sanitize BUILD_TYPE=RelWithDebInfo "$root/scripts/build.sh" \
    -DLRSMETA_SANITIZE=address,undefined -DLRSMETA_BUILD_BENCHMARKS=OFF -DLRSMETA_CUDA=OFF -DLRSMETA_PYTHON=OFF -DLRSMETA_MPI=OFF \
    -DLRSMETA_CUDA_EMULATION=$emulation
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
