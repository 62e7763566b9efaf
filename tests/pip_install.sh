#!/usr/bin/env bash
# pip builds and installs the Python module from the source tree into a virtual environment that
# sees Debian's packages, with no package index: then it imports and fits from there.
# Usage: pip_install.sh SOURCE_DIR WORK_DIR PYTHON   (exit 77: venv or pip missing, skipped)
set -euo pipefail
source=$1 work=$2 python=$3
"$python" -m venv --help > /dev/null 2>&1 && "$python" -m pip --version > /dev/null 2>&1 || { echo "no venv or pip: skipped"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
"$python" -m venv --system-site-packages "$work/venv"
LRSMETA_CMAKE_ARGS="-DLRSMETA_CUDA=OFF -DLRSMETA_MPI=OFF" \
  "$work/venv/bin/pip" install --no-build-isolation --no-index "$source" > "$work/pip.log" 2>&1 ||
  { tail -n 40 "$work/pip.log"; echo "FAIL: pip install"; exit 1; }
cd "$work"
"$work/venv/bin/python" - <<'PY'
import numpy as np, lrsmeta, os, sys
assert lrsmeta.__file__.startswith(sys.prefix), lrsmeta.__file__
rng = np.random.default_rng(0)
X = rng.standard_normal((600, 5))
groups = np.repeat(np.arange(60), 10)
y = X @ rng.standard_normal(5)
model = lrsmeta.LRSRegressor(rank=1, sparsity=0, iterations=5, select="evidence").fit(X, y, groups)
assert model.score(X, y, groups) > 0.999
print("installed by pip:", lrsmeta.__file__, sorted(os.listdir(os.path.dirname(lrsmeta.__file__))))
PY
