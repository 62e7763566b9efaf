#!/usr/bin/env bash
# Install what lrsmeta needs from Debian 12 packages (apt-get, as root or through sudo). Packages
# already present are left alone, so this is quick to re-run.
set -euo pipefail
packages=(
  build-essential cmake pkg-config  # compilers and the build
  libopenblas-dev                   # BLAS (the GEMM that forms G) and LAPACK (Cholesky, QR, eigen)
  libcli11-dev                      # the command line
  nlohmann-json3-dev                # model.json and metrics
  libgtest-dev                      # tests
  libbenchmark-dev                  # benchmarks
  python3-numpy                     # the NumPy interoperability test and the Python module
  python3-dev pybind11-dev          # the Python module (lrsmeta)
  python3-pytest python3-sklearn    # its tests (scikit-learn's clone and GridSearchCV)
  python3-venv python3-pip          # pip install of the module (tests/pip_install.sh)
  python3-matplotlib                # examples/movielens.py's plot
  gnuplot-nox                       # the MovieLens benchmark's plots
  libopenmpi-dev openmpi-bin        # training over many processes (mpirun); its tests run under mpirun
  clang libclang-rt-14-dev libomp-dev  # libFuzzer, for fuzzing the file readers (scripts/fuzz.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
