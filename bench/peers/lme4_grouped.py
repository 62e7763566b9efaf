#!/usr/bin/env python3
"""lrsmeta against lme4 where data is scarce: generated groups of 3 to 5 training rows each.

Two generated data sets, each with 2 held-out rows per group:
  random slopes     - lme4's own model: 5 features, a random intercept and random slopes on two of
                      them (correlated), Gaussian noise;
  low rank + sparse - lrsmeta's model: 20 features, theta_g = beta + U w_g + b_g with r = 2 and
                      one non-zero in b_g, Gaussian noise.
Methods: the global least-squares fit; per-group ridge shrunk to it (lambda chosen on one held-back
training row per group, then refitted); lme4's lmer (REML) with a random intercept and with random
slopes; lrsmeta train with no model options (the default), and with --select evidence and
--select validation. Prints a table of held-out RMSE and fit seconds (lmer's own time; lrsmeta's
fit_seconds from --metrics-out: the whole fit, candidates included, without reading the CSV) and
writes it, with the raw numbers, into WORK (results.json, table.md).

  bench/peers/lme4_grouped.py BUILD_DIR WORK_DIR [--groups 2000] [--seed 1]

Needs R with lme4 (Debian: r-base-core r-cran-lme4); without them the lme4 rows are skipped with a
note.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def generate(kind, groups, rng):
    """Rows (group, x, y) for training (3 to 5 per group) and testing (2 per group)."""
    if kind == "random slopes":
        d = 5
        beta = rng.normal(size=d + 1)
        cov = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 0.5]])
        effects = rng.multivariate_normal(np.zeros(3), cov, size=groups)
        theta = np.tile(beta, (groups, 1))
        theta[:, 0] += effects[:, 0]  # intercept
        theta[:, 1] += effects[:, 1]
        theta[:, 2] += effects[:, 2]
        noise = 1.0
    else:
        d, r = 20, 2
        beta = rng.normal(size=d + 1)
        U = np.linalg.qr(rng.normal(size=(d + 1, r)))[0]
        W = rng.normal(size=(groups, r)) * 1.5
        theta = beta + W @ U.T
        support = rng.integers(0, d + 1, size=groups)
        theta[np.arange(groups), support] += rng.normal(size=groups) * 1.5
        noise = 0.5
    train_rows = rng.integers(3, 6, size=groups)
    def rows(counts):
        g = np.repeat(np.arange(groups), counts)
        x = rng.normal(size=(len(g), d))
        X1 = np.hstack([np.ones((len(g), 1)), x])
        y = np.einsum("ij,ij->i", X1, theta[g]) + noise * rng.normal(size=len(g))
        return g, x, y
    return rows(train_rows), rows(np.full(groups, 2)), noise


def write_csv(path, g, x, y):
    header = "group,y," + ",".join("x%d" % (j + 1) for j in range(x.shape[1]))
    np.savetxt(path, np.column_stack([g, y, x]), delimiter=",", header=header, comments="",
               fmt=["%d"] + ["%.17g"] * (1 + x.shape[1]))


def design(x):
    return np.hstack([np.ones((len(x), 1)), x])


def global_fit(train):
    g, x, y = train
    return np.linalg.lstsq(design(x), y, rcond=None)[0]


def shrunk_ridge(train, lam, groups):
    """theta_g = argmin ||y_g - X_g theta||^2 + lam ||theta - theta_global||^2."""
    g, x, y = train
    X = design(x)
    glob = global_fit(train)
    p = X.shape[1]
    theta = np.tile(glob, (groups, 1))
    order = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[order], np.arange(groups + 1))
    for i in range(groups):
        idx = order[bounds[i]:bounds[i + 1]]
        A = X[idx].T @ X[idx] + lam * np.eye(p)
        theta[i] = np.linalg.solve(A, X[idx].T @ y[idx] + lam * glob)
    return theta


def rmse(pred, y):
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def predict_theta(theta, rows):
    g, x, _ = rows
    return np.einsum("ij,ij->i", design(x), theta[g])


def run_lrsmeta(build, work, name, extra):
    model = os.path.join(work, "model-" + name)
    metrics = os.path.join(work, "metrics-" + name + ".json")
    started = time.time()
    subprocess.run([os.path.join(build, "lrsmeta"), "train", "--data", os.path.join(work, "train.csv"),
                    "--target", "y", "--task", "group", "--out", model, "--metrics-out", metrics, "-q"] + extra,
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - started
    out = os.path.join(work, "pred-" + name + ".npy")
    subprocess.run([os.path.join(build, "lrsmeta"), "predict", "--model", model, "--data",
                    os.path.join(work, "test.csv"), "--out", out], check=True, stdout=subprocess.DEVNULL)
    m = json.load(open(metrics))
    chosen = "r = %d, k = %d" % (m["r"], m["k"])
    return np.load(out), m.get("fit_seconds", wall), chosen


def run_lme4(work, formula, name):
    out = os.path.join(work, "pred-" + name + ".txt")
    result = subprocess.run(["Rscript", os.path.join(HERE, "lme4_fit.R"), os.path.join(work, "train.csv"),
                             os.path.join(work, "test.csv"), formula, out], check=True, capture_output=True, text=True)
    return np.loadtxt(out), float(result.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("work")
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.access(os.path.join(args.build, "lrsmeta"), os.X_OK):
        sys.exit("lme4_grouped.py: no lrsmeta executable in '%s' (build it first)" % args.build)
    if args.groups < 2:
        sys.exit("lme4_grouped.py: --groups must be at least 2 (got %d)" % args.groups)
    have_r = shutil.which("Rscript") is not None and subprocess.run(
        ["Rscript", "-e", "library(lme4)"], capture_output=True).returncode == 0
    results = []
    table = ["| data | method | held-out RMSE | fit seconds | chosen |", "|---|---|---|---|---|"]
    for kind in ["random slopes", "low rank + sparse"]:
        rng = np.random.default_rng(args.seed)
        train, test, noise = generate(kind, args.groups, rng)
        work = os.path.join(args.work, kind.replace(" ", "-").replace("+", "and"))
        os.makedirs(work, exist_ok=True)
        write_csv(os.path.join(work, "train.csv"), *train)
        write_csv(os.path.join(work, "test.csv"), *test)
        rows = []
        started = time.time()
        rows.append(("global least squares", rmse(design(test[1]) @ global_fit(train), test[2]), time.time() - started, ""))
        # lambda on one held-back training row of each group with 4 or more, then refitted on all.
        g = train[0]
        last = np.r_[g[1:] != g[:-1], True] & (np.bincount(g, minlength=args.groups)[g] >= 4)
        fit_part = (g[~last], train[1][~last], train[2][~last])
        held = (g[last], train[1][last], train[2][last])
        started = time.time()
        lams = [0.3, 1, 3, 10, 30, 100]
        scores = [rmse(predict_theta(shrunk_ridge(fit_part, lam, args.groups), held), held[2]) for lam in lams]
        lam = lams[int(np.argmin(scores))]
        theta = shrunk_ridge(train, lam, args.groups)
        rows.append(("per-group ridge shrunk to global", rmse(predict_theta(theta, test), test[2]), time.time() - started,
                     "lambda %g" % lam))
        features = train[1].shape[1]
        if have_r:
            slopes = "x1 + x2" if kind == "random slopes" else " + ".join("x%d" % (j + 1) for j in range(features))
            bars = "|" if kind == "random slopes" else "||"  # 21 correlated effects are beyond lmer here
            for name, formula in [("lme4 (1 | group)", "y ~ . + (1 | group)"),
                                  ("lme4 (1 + %s %s group)" % ("x1 + x2" if kind == "random slopes" else "x1..x20", bars),
                                   "y ~ . + (1 + %s %s group)" % (slopes, bars))]:
                pred, seconds = run_lme4(work, formula, "lme4-%d" % len(rows))
                rows.append((name, rmse(pred, test[2]), seconds, ""))
        for name, extra in [("lrsmeta (default)", []), ("lrsmeta --select evidence", ["--select", "evidence"]),
                            ("lrsmeta --select validation", ["--select", "validation"])]:
            pred, seconds, chosen = run_lrsmeta(args.build, work, name.split()[-1].strip("()"), extra)
            rows.append((name, rmse(pred, test[2]), seconds, chosen))
        rows.append(("noise floor", noise, float("nan"), ""))
        for name, err, seconds, chosen in rows:
            results.append({"data": kind, "method": name, "rmse": err, "seconds": seconds, "chosen": chosen})
            table.append("| %s | %s | %.4f | %s | %s |" % (kind, name.replace("|", "\\|"), err,
                                                          "" if seconds != seconds else "%.2f" % seconds, chosen))
    if not have_r:
        table.append("\nlme4 rows skipped: Rscript with lme4 not found (Debian: apt-get install r-base-core r-cran-lme4).")
    with open(os.path.join(args.work, "table.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"groups": args.groups, "seed": args.seed, "results": results}, f, indent=2)
    print("\n".join(table))


if __name__ == "__main__":
    sys.exit(main())
