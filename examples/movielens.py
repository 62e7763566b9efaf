#!/usr/bin/env python3
"""Personalised rating models on the bundled MovieLens ratings with lrsmeta's Python module.

Each user is a task; a rating's features describe its movie (an intercept, its genres one-hot, its
year centred and scaled). Every user's ratings are split once (seeded): 5 held out for testing
(users with fewer than 10 ratings are left out), and the model is trained on 5, 10, 20 or all of
the rest per user. Prints test RMSE per setting for lrsmeta's default model and for one global
linear fit, and plots them into a PNG when matplotlib is installed (apt-get install
python3-matplotlib). NumPy only: no pandas.

    PYTHONPATH=build/python python3 examples/movielens.py [data/movielens/ratings.csv] [out.png]
"""
import csv
import sys
import time

import numpy as np

import lrsmeta


def load(path):
    users, movies, ratings, years, genres = [], [], [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            users.append(row["userId"])
            ratings.append(float(row["rating"]))
            years.append(float(row["year"]) if row["year"] not in ("", "NA") else np.nan)
            genres.append([g for g in row["genres"].split("|") if g != "(no genres listed)"])
    names = sorted({g for gs in genres for g in gs})
    index = {g: i for i, g in enumerate(names)}
    year = np.array(years)
    year = np.where(np.isnan(year), np.nanmean(year), year)
    X = np.zeros((len(ratings), 2 + len(names)))
    X[:, 0] = 1.0
    X[:, 1] = (year - year.mean()) / year.std()
    for j, gs in enumerate(genres):
        for g in gs:
            X[j, 2 + index[g]] = 1.0
    return X, np.array(ratings), np.array(users)


def split(users, test_per_user, seed):
    """Per user (with at least 2 x test_per_user ratings): a seeded shuffle; the first
    test_per_user go to test; returns test mask and each training row's rank within its user."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(users), dtype=bool)
    rank = np.full(len(users), -1)
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        if len(rows) < 2 * test_per_user:
            continue
        rows = rng.permutation(rows)
        test[rows[:test_per_user]] = True
        rank[rows[test_per_user:]] = np.arange(len(rows) - test_per_user)
    return test, rank


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "data/movielens/ratings.csv"
    png = sys.argv[2] if len(sys.argv) > 2 else "movielens_rmse.png"
    X, y, users = load(path)
    test, rank = split(users, 5, seed=1)
    settings = [5, 10, 20, None]
    lrs, glob = [], []
    print("ratings per user | lrsmeta test RMSE | global linear fit | fit seconds")
    for n in settings:
        train = (rank >= 0) & (rank < n) if n else rank >= 0
        start = time.perf_counter()
        model = lrsmeta.LRSRegressor(random_state=1).fit(X[train], y[train], users[train])
        seconds = time.perf_counter() - start
        rmse = float(np.sqrt(np.mean((y[test] - model.predict(X[test], users[test])) ** 2)))
        coef, *_ = np.linalg.lstsq(X[train], y[train], rcond=None)
        rmse_global = float(np.sqrt(np.mean((y[test] - X[test] @ coef) ** 2)))
        lrs.append(rmse)
        glob.append(rmse_global)
        print(f"{n or 'all':>16} | {rmse:17.4f} | {rmse_global:17.4f} | {seconds:11.1f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (apt-get install python3-matplotlib)")
        return
    labels = [str(n or "all") for n in settings]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(labels, lrs, "o-", color="#0072b2", label="lrsmeta (defaults)")
    ax.plot(labels, glob, "s--", color="#d55e00", label="one global linear fit")
    ax.set_xlabel("training ratings per user")
    ax.set_ylabel("test RMSE")
    low, high = min(lrs + glob), max(lrs + glob)
    ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
    ax.grid(alpha=0.3)
    # The key below the axes, never over the lines.
    fig.legend(loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(png, dpi=120)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
