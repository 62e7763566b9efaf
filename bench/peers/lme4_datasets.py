#!/usr/bin/env python3
"""lrsmeta against lme4 on lme4's own real data sets, with all of each group's rows and with at most 5.

Data (shipped with Debian's r-cran-lme4, exported by Rscript):
  sleepstudy - reaction time (/100) of 18 subjects over 10 days; features: a constant and days / 10;
  InstEval   - 73,421 lecture ratings (1 to 5) by 2,972 students; the student is the group; features:
               a constant and the one-hot levels (first left out) of the student's age, the lecturer's
               age, service and department (d = 23).
Each group's rows are shuffled (seeded): 20% are held out for testing; of the rest, all or the first 5
are fitted. Methods: lrsmeta's default (the Python module: r, k, the priors and whether U is learned
or held, all estimated), lrsmeta with U learned only (--low-rank-basis learned), lme4's lmer (REML,
bench/peers/lme4_fit.R) with a random intercept (and on sleepstudy a random slope on days), and the
global least-squares fit. Prints a table of held-out RMSE and fit seconds and writes it, with the raw
numbers, into WORK (results.json, table.md).

  bench/peers/lme4_datasets.py BUILD_DIR WORK_DIR [--seed 1]

Needs R with lme4 (Debian: r-base-core r-cran-lme4), which also holds the data; without them it
stops with a note.
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

EXPORT = r"""
suppressPackageStartupMessages(library(lme4))
s <- sleepstudy
write.csv(data.frame(group = as.integer(as.character(s$Subject)), y = s$Reaction / 100, days = s$Days / 10),
          file.path(commandArgs(TRUE)[1], "sleepstudy.csv"), row.names = FALSE)
d <- InstEval
write.csv(data.frame(group = as.integer(d$s), y = d$y, studage = as.integer(d$studage), lectage = as.integer(d$lectage),
                     service = as.integer(d$service), dept = as.integer(d$dept)),
          file.path(commandArgs(TRUE)[1], "insteval.csv"), row.names = FALSE)
"""


def load(path, kind):
    """(X with a constant first column, y, group) of one exported data set."""
    d = np.genfromtxt(path, delimiter=",", names=True)
    parts = [np.ones((len(d), 1))]
    if kind == "sleepstudy":
        parts.append(d["days"][:, None])
    else:
        for column in ("studage", "lectage", "service", "dept"):
            levels = np.unique(d[column])
            parts.append(np.stack([(d[column] == level).astype(float) for level in levels[1:]], axis=1))
    return np.hstack(parts), d["y"].astype(float), d["group"].astype(np.int64)


def split(group, cap, rng):
    """Row indices to fit (all, or the first `cap` of each group's shuffled rows after the test's) and to test."""
    fit, test = [], []
    for key in np.unique(group):
        rows = np.flatnonzero(group == key)
        rng.shuffle(rows)
        n_test = max(1, round(0.2 * len(rows))) if len(rows) >= 2 else 0
        test.extend(rows[:n_test])
        rest = rows[n_test:]
        fit.extend(rest[:cap] if cap else rest)
    return np.sort(np.array(fit)), np.sort(np.array(test))


def rmse(pred, y):
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def run_lrsmeta(lrsmeta, X, y, group, fit, test, **params):
    model = lrsmeta.LRSRegressor(**params)
    started = time.time()
    model.fit(X[fit], y[fit], group[fit])
    seconds = time.time() - started
    chosen = model.selection_.get("chosen", {})
    basis = chosen.get("low_rank_basis", "learned")
    text = "r = %d, k = %d%s" % (model.U_.shape[1], model.B_index_.shape[1], "" if basis == "learned" else ", U held: " + basis)
    return rmse(model.predict(X[test], group[test]), y[test]), seconds, text


def run_lme4(work, X, y, group, fit, test, random_effects):
    names = ["x%d" % j for j in range(1, X.shape[1])]  # the constant is lmer's own intercept
    for name, rows in (("train", fit), ("test", test)):
        np.savetxt(os.path.join(work, name + ".csv"), np.column_stack([group[rows], y[rows], X[rows, 1:]]), delimiter=",",
                   header="group,y," + ",".join(names), comments="", fmt=["%d"] + ["%.17g"] * X.shape[1])
    out = os.path.join(work, "pred-lme4.txt")
    result = subprocess.run(["Rscript", os.path.join(HERE, "lme4_fit.R"), os.path.join(work, "train.csv"),
                             os.path.join(work, "test.csv"), "y ~ . + (%s | group)" % random_effects, out],
                            check=True, capture_output=True, text=True)
    return rmse(np.loadtxt(out), y[test]), float(result.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("work")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.abspath(args.build), "python"))
    try:
        import lrsmeta
    except ImportError as e:
        sys.exit("lme4_datasets.py: the lrsmeta module is not in '%s/python' (build it first): %s" % (args.build, e))
    if shutil.which("Rscript") is None or subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True).returncode != 0:
        sys.exit("lme4_datasets.py: needs Rscript with lme4, which also holds the data (Debian: apt-get install r-base-core r-cran-lme4)")
    os.makedirs(args.work, exist_ok=True)
    subprocess.run(["Rscript", "-e", EXPORT, args.work], check=True)
    rows = []
    for kind, slopes in (("sleepstudy", ["1", "1 + x1"]), ("InstEval", ["1"])):
        X, y, group = load(os.path.join(args.work, kind.lower() + ".csv"), kind.lower())
        for cap in (5, 0):
            rng = np.random.default_rng(args.seed)
            fit, test = split(group, cap, rng)
            regime = "at most 5 rows a group" if cap else "all rows"
            results = [("lrsmeta (default)",) + run_lrsmeta(lrsmeta, X, y, group, fit, test),
                       ("lrsmeta, U learned only",) + run_lrsmeta(lrsmeta, X, y, group, fit, test, low_rank_basis="learned")]
            for effects in slopes:
                name = "lme4 (%s \\| group)" % effects.replace("x1", "days")
                results.append((name,) + run_lme4(args.work, X, y, group, fit, test, effects) + ("",))
            beta = np.linalg.lstsq(X[fit], y[fit], rcond=None)[0]
            results.append(("global least squares", rmse(X[test] @ beta, y[test]), 0.0, ""))
            for method, error, seconds, chosen in results:
                rows.append({"data": kind, "regime": regime, "groups": int(len(np.unique(group[fit]))), "fit_rows": int(len(fit)),
                             "test_rows": int(len(test)), "method": method, "test_rmse": error, "seconds": seconds, "chosen": chosen})
    table = ["| data | rows fitted | method | held-out RMSE | fit seconds | chosen |", "|---|---|---|---|---|---|"]
    for r in rows:
        table.append("| %s | %s (%d) | %s | %.4f | %.2f | %s |" % (r["data"], r["regime"], r["fit_rows"], r["method"], r["test_rmse"],
                                                               r["seconds"], r["chosen"]))
    text = "\n".join(table) + "\n"
    print(text, end="")
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(args.work, "table.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
