#!/usr/bin/env bash
# NumPy reads what lrsmeta writes, and lrsmeta reads what NumPy writes (big-endian, float32,
# int32 offsets), refusing Fortran order. Needs Debian's python3-numpy; skips (77) without it.
set -euo pipefail
work=$1
bin=${LRSMETA:?set LRSMETA to the lrsmeta executable}
py=/usr/bin/python3
if ! "$py" -c "import numpy" 2> /dev/null; then echo "numpy not installed: skipped"; exit 77; fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"

"$bin" generate --out data --tasks 300 --samples 30 -d 20 -r 2 -k 2 --seed 4 > /dev/null
"$bin" train --data data -r 2 -k 2 --out model --iterations 10 > /dev/null
"$bin" predict --model model --data data --out pred.npy > /dev/null
"$py" - << 'PY'
import json
import numpy as np
X, y, off = np.load("data/X.npy"), np.load("data/y.npy"), np.load("data/task_offsets.npy")
U, W = np.load("model/U.npy"), np.load("model/W.npy")
bi, bv = np.load("model/B_index.npy"), np.load("model/B_value.npy")
meta = json.load(open("model/model.json"))
assert U.shape == (20, 2) and W.shape == (300, 2) and bi.shape == (300, 2) and bi.dtype == np.int32, "shapes"
assert (meta["d"], meta["r"], meta["k"], meta["t"]) == (20, 2, 2, 300)
assert np.allclose(U.T @ U, np.eye(2), atol=1e-12), "U is not orthonormal"
# The empirical-Bayes model (prior auto, the default) adds the population model beta.
assert meta["prior"]["model"] == "auto", "the default model has a prior"
beta = np.load("model/beta.npy")
Sigma = np.load("model/Sigma.npy")
assert beta.shape == (20,) and Sigma.shape == (2, 2) and np.allclose(Sigma, Sigma.T), "beta, Sigma"
pred = np.load("pred.npy")
mine = np.empty_like(pred)
for i in range(300):
    theta = beta + U @ W[i]
    for s in range(2):
        if bi[i, s] >= 0:
            theta[bi[i, s]] += bv[i, s]
    mine[off[i]:off[i + 1]] = X[off[i]:off[i + 1]] @ theta
assert np.allclose(mine, pred, rtol=1e-12, atol=1e-12), "NumPy's predictions differ"
# Files written by NumPy in other layouts: big-endian float64 X, float32 y, int32 offsets.
import os
os.makedirs("np_data", exist_ok=True)
np.save("np_data/X.npy", X.astype(">f8"))
np.save("np_data/y.npy", y.astype(np.float32))
np.save("np_data/task_offsets.npy", off.astype(np.int32))
os.makedirs("fortran", exist_ok=True)
np.save("fortran/X.npy", np.asfortranarray(X))
np.save("fortran/y.npy", y)
np.save("fortran/task_offsets.npy", off)
PY
"$bin" train --data np_data -r 2 -k 2 --out model2 --iterations 10 > /dev/null
if "$bin" train --data fortran -r 2 -k 2 --out model3 2> err.txt; then echo "FAIL: Fortran order accepted"; exit 1; fi
grep -q "Fortran-order" err.txt || { echo "FAIL: $(cat err.txt)"; exit 1; }
echo "numpy interop: all checks passed"
