#!/usr/bin/env python3
"""AMHT-LRS (the paper's model, no prior) as a competent NumPy user writes it: tasks of one size m,
every step vectorised over tasks. The peer that `lrsmeta train --prior none` is timed against
(bench/peers/compare_numpy.sh).

Per outer iteration: the task step (inner iterations of: w by a batched r x r solve with b fixed,
then b by one iterative-hard-thresholding step, b <- H_k(b + eta/m X^T (y - X U w - X b))), then
the U step: G = sum_i (w_i w_i^T) kron (X_i^T X_i) built with one GEMM per chunk of tasks (in the data's
precision, as the data comes),
v = sum_i w_i kron X_i^T (y_i - X_i b_i), numpy.linalg.solve, and U <- Q of the QR of the solution.

    numpy_amht.py DATA_FOLDER -r R -k K --iterations L [--warm-start W] [--seed S] [--json OUT]

DATA_FOLDER: X.npy (n x d), y.npy (n), task_offsets.npy (t + 1, equal task sizes). Prints the
seconds per outer iteration (median over the iterations after the first) and the training MSE.
"""
import argparse
import json
import time

import numpy as np


def hard_threshold(B, k):
    """Keep the k largest |entries| of each row of B (t x d), zero the rest."""
    if k == 0:
        return np.zeros_like(B)
    keep = np.argpartition(np.abs(B), -k, axis=1)[:, -k:]
    out = np.zeros_like(B)
    np.put_along_axis(out, keep, np.take_along_axis(B, keep, axis=1), axis=1)
    return out


def task_step(X, y, U, B, k, inner, eta):
    """Every task's (w, b) with U fixed: X (t, m, d), y (t, m), U (d, r), B (t, d). Batched matmul
    (BLAS) wherever a product is a matrix product."""
    t, m, d = X.shape
    r = U.shape[1]
    Z = X @ U                                   # (t, m, r)
    Zt = Z.transpose(0, 2, 1)
    A = Zt @ Z                                  # (t, r, r)
    A += (1e-10 * np.trace(A, axis1=1, axis2=2) / max(r, 1))[:, None, None] * np.eye(r, dtype=A.dtype)
    for _ in range(inner):
        Xb = (X @ B[:, :, None])[:, :, 0]       # (t, m)
        W = np.linalg.solve(A, Zt @ (y - Xb)[:, :, None])[:, :, 0]
        e = y - (Z @ W[:, :, None])[:, :, 0] - Xb
        if k > 0:
            B = hard_threshold(B + (eta / m) * (X.transpose(0, 2, 1) @ e[:, :, None])[:, :, 0], k)
    e = y - (Z @ W[:, :, None])[:, :, 0] - (X @ B[:, :, None])[:, :, 0]
    return W, B, float(np.mean(e.astype(np.float64) ** 2))


def u_step(X, y, W, B, chunk=512):
    """Solve sum_i (w_i w_i^T kron X_i^T X_i) vec(U) = sum_i w_i kron X_i^T (y_i - X_i b_i)."""
    t, m, d = X.shape
    r = W.shape[1]
    G = np.zeros((r * r, d * d), dtype=X.dtype)
    v = np.zeros((r, d))
    for s in range(0, t, chunk):
        Xc, Wc = X[s:s + chunk], W[s:s + chunk]
        S = (Xc.transpose(0, 2, 1) @ Xc).reshape(len(Xc), d * d)          # X_i^T X_i, batched GEMM
        WW = (Wc[:, :, None] * Wc[:, None, :]).reshape(len(Xc), r * r)      # w_i w_i^T
        G += WW.T @ S                                                       # one GEMM per chunk
        res = y[s:s + chunk] - (Xc @ B[s:s + chunk, :, None])[:, :, 0]
        v += Wc.T @ (Xc.transpose(0, 2, 1) @ res[:, :, None])[:, :, 0]
    # G[(p, q), (a, b)] -> the (p a), (q b) entry of the dr x dr matrix, unknowns ordered (p, a).
    G = G.astype(np.float64).reshape(r, r, d, d).transpose(0, 2, 1, 3).reshape(r * d, r * d)
    Ut = np.linalg.solve(G + 1e-12 * np.trace(G) / (r * d) * np.eye(r * d), v.reshape(r * d)).reshape(r, d).T
    Q, _ = np.linalg.qr(Ut)
    return Q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("-r", type=int, required=True)
    ap.add_argument("-k", type=int, required=True)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warm-start", type=int, default=1)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--eta", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    X = np.load(f"{a.data}/X.npy")
    y = np.load(f"{a.data}/y.npy").astype(X.dtype)
    offsets = np.load(f"{a.data}/task_offsets.npy")
    sizes = np.diff(offsets)
    if not np.all(sizes == sizes[0]):
        raise SystemExit("numpy_amht.py: tasks of different sizes (this peer takes one m)")
    t, m, d = len(sizes), int(sizes[0]), X.shape[1]
    X = X.reshape(t, m, d)
    y = y.reshape(t, m)
    rng = np.random.default_rng(a.seed)
    U, _ = np.linalg.qr(rng.standard_normal((d, a.r)))
    U = U.astype(X.dtype)
    B = np.zeros((t, d), dtype=X.dtype)
    seconds = []
    loss = float("nan")
    for it in range(1, a.iterations + 1):
        start = time.perf_counter()
        k_now = 0 if it <= a.warm_start else a.k
        W, B, loss = task_step(X, y, U, B, k_now, a.inner, a.eta)
        U = u_step(X, y, W, B).astype(X.dtype)
        seconds.append(time.perf_counter() - start)
    steady = sorted(seconds[1:] if len(seconds) > 1 else seconds)
    per_iteration = steady[len(steady) // 2]
    print(f"numpy: t = {t}, m = {m}, d = {d}, r = {a.r}, k = {a.k}, {X.dtype}: {per_iteration:.3f} s per outer iteration "
          f"(median of {len(steady)}), training MSE {loss:.4e}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seconds_per_iteration": per_iteration, "seconds": seconds, "training_mse": loss}, f, indent=1)


if __name__ == "__main__":
    main()
