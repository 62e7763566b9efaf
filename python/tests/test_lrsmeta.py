"""The Python module: recovery, equality with the command line, zero copy, groups in any form and
order, scikit-learn's protocol, save/load with the CLI, callbacks, and every bad input."""
import json
import os
import subprocess

import numpy as np
import pytest

import lrsmeta
from lrsmeta import _lrsmeta

CLI = os.environ.get("LRSMETA")


def low_rank_tasks(t=300, m=30, d=10, r=2, k=0, noise=0.0, seed=0, dtype=np.float64):
    """Tasks theta_i = U w_i (+ k-sparse b_i), rows grouped by task; returns X, y, task per row, Theta."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, r)))[0]
    Theta = rng.standard_normal((t, r)) @ U.T
    for i in range(t):
        if k:
            Theta[i, rng.choice(d, k, replace=False)] += rng.standard_normal(k)
    X = rng.standard_normal((t * m, d))
    task = np.repeat(np.arange(t), m)
    y = np.einsum("nd,nd->n", X, Theta[task]) + noise * rng.standard_normal(t * m)
    return X.astype(dtype), y, task, Theta


def test_recovers_noiseless_tasks():
    X, y, task, Theta = low_rank_tasks(k=1)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=1, prior="none", iterations=40).fit(X, y, task)
    theta = est.model_.theta
    assert np.linalg.norm(theta - Theta) / np.linalg.norm(Theta) < 1e-8
    assert est.U_.shape == (10, 2) and est.W_.shape == (300, 2) and est.B_index_.shape == (300, 1)
    assert est.beta_ is None  # prior none
    assert est.score(X, y, task) > 1 - 1e-12
    assert est.groups_[:3] == ["0", "1", "2"]
    assert est.history_[-1]["iteration"] == len(est.history_)


def test_features_in_other_units_give_the_same_predictions():
    X, y, task, _ = low_rank_tasks(noise=0.3, seed=4)
    units = 2.0 ** np.arange(-4, 6)  # each column in other units, by powers of two
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=15).fit(X, y, task)
    scaled = lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=15).fit(X * units, y, task)
    # X's columns share a scale: nothing to do. The copy's factors are its units, up to one power of
    # two for all (which changes the fit by rounding only).
    assert est.feature_scales_ is None
    ratio = scaled.feature_scales_ / units
    assert np.all(ratio == ratio[0]) and np.log2(ratio[0]) == np.round(np.log2(ratio[0]))
    np.testing.assert_allclose(scaled.predict(X * units, task), est.predict(X, task), rtol=1e-8, atol=1e-8)
    as_given = lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=15, standardize=False).fit(X * units, y, task)
    assert as_given.feature_scales_ is None and as_given.get_params()["standardize"] is False


def test_prior_model_has_beta_and_predicts_in_row_order():
    X, y, task, _ = low_rank_tasks(noise=0.3, seed=1)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=15, covariance_shrinkage=1.0).fit(X, y, task)
    assert est.beta_.shape == (10,) and est.Sigma_.shape == (2, 2) and est.noise_variance_ > 0
    order = np.random.default_rng(2).permutation(len(y))
    np.testing.assert_allclose(est.predict(X[order], task[order]), est.predict(X, task)[order], rtol=0, atol=1e-12)


@pytest.mark.skipif(CLI is None, reason="needs LRSMETA (the CLI) to compare with")
def test_settings_estimated_from_all_rows():
    X, y, task, Theta = low_rank_tasks(t=200, m=15, k=1, noise=0.1)
    est = lrsmeta.LRSRegressor(select="evidence", rank="auto", sparsity=1).fit(X, y, task)
    assert est.U_.shape[1] == 2  # the planted rank
    assert np.isfinite(est.predict(X, task)).all()
    assert est.history_[-1]["log_evidence"] < 0
    with pytest.raises(ValueError, match="selection"):
        lrsmeta.LRSRegressor(select="bogus", rank=2, sparsity=1).fit(X, y, task)
    # K-fold over each task's rows: every row held out once, recorded in selection_.
    seen = []  # each iteration's fit: (candidate, candidate_index, fold)
    kfold = lrsmeta.LRSRegressor(select="kfold", folds=3, rank="auto", sparsity=1, iterations=15,
                                 callback=lambda info: seen.append((info["candidate"], info["candidate_index"], info["fold"])) or True)
    kfold.fit(X, y, task)
    assert kfold.selection_["method"] == "kfold" and kfold.selection_["folds"] == 3
    # The choice's fits show their iterations too: every setting in each of the 3 folds, then the final fit.
    fitted = {index for candidate, index, _ in seen if candidate}
    assert fitted == set(range(len(fitted))) and len(fitted) >= 2
    assert {(index, fold) for candidate, index, fold in seen if candidate} == {(i, f) for i in fitted for f in range(3)}
    final = [fold for candidate, index, fold in seen if not candidate]
    assert len(final) == len(kfold.history_) and set(final) == {-1}
    assert kfold.selection_["validation_rows"] == len(y) and kfold.U_.shape[1] == 2
    assert kfold.get_params()["folds"] == 3
    with pytest.raises(ValueError, match="folds"):
        lrsmeta.LRSRegressor(select="kfold", folds=1, rank=2, sparsity=1).fit(X, y, task)


def test_equals_the_command_line_and_round_trips_its_model_folder(tmp_path):
    X, y, task, _ = low_rank_tasks(noise=0.1, seed=3)
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "X.npy", X)
    np.save(data / "y.npy", y)
    np.save(data / "task_offsets.npy", np.arange(0, len(y) + 1, 30, dtype=np.int64))
    subprocess.run([CLI, "train", "--data", str(data), "--out", str(tmp_path / "cli_model"), "-r", "2", "-k", "1",
                    "--prior", "none", "--iterations", "12", "--threads", "2", "--seed", "5", "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=1, prior="none", iterations=12, threads=2, random_state=5).fit(X, y, task)
    cli = lrsmeta.load(tmp_path / "cli_model")
    np.testing.assert_array_equal(est.U_, cli.U_)
    np.testing.assert_array_equal(est.W_, cli.W_)
    np.testing.assert_array_equal(est.B_value_, cli.B_value_)
    # Python's model folder, read by the CLI.
    est.save(tmp_path / "py_model")
    subprocess.run([CLI, "eval", "--model", str(tmp_path / "py_model"), "--data", str(data), "--json", str(tmp_path / "e.json")],
                   check=True, stdout=subprocess.DEVNULL)
    with open(tmp_path / "e.json") as f:
        mse = json.load(f)["mse"]
    assert mse == pytest.approx(np.mean((y - est.predict(X, task)) ** 2), rel=1e-12)
    back = lrsmeta.load(tmp_path / "py_model")
    np.testing.assert_array_equal(back.predict(X, task), est.predict(X, task))
    assert back.groups_ == est.groups_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_contiguous_X_is_not_copied(dtype):
    X, y, task, _ = low_rank_tasks(dtype=dtype, seed=4)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=3)
    est.fit(X, y, task)
    assert _lrsmeta.last_X_address() == X.ctypes.data
    # Fortran order (or ints) is converted once: the library sees another buffer.
    F = np.asfortranarray(X)
    est.fit(F, y, task)
    assert _lrsmeta.last_X_address() != F.ctypes.data


def test_string_groups_and_rows_of_a_task_anywhere():
    X, y, task, _ = low_rank_tasks(noise=0.1, seed=6)
    names = np.array([f"user-{i}" for i in task])
    grouped = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=10).fit(X, y, names)
    order = np.random.default_rng(7).permutation(len(y))
    shuffled = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=10).fit(X[order], y[order], names[order])
    assert sorted(shuffled.groups_) == sorted(grouped.groups_)
    np.testing.assert_allclose(shuffled.predict(X, names), grouped.predict(X, names), rtol=1e-6, atol=1e-8)
    strict = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=10, unseen="error").fit(X, y, names)
    with pytest.raises(ValueError, match="not tasks of the fitted model: fit new tasks with adapt"):
        strict.predict(X[:2], ["user-0", "nobody"])


def test_adapt_fits_new_tasks_with_U_fixed():
    X, y, task, Theta = low_rank_tasks(t=400, seed=8)
    train = task < 300
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=30).fit(X[train], y[train], task[train])
    new = est.adapt(X[~train], y[~train], task[~train])
    np.testing.assert_array_equal(new.U_, est.U_)
    assert new.W_.shape == (100, 2)
    assert np.linalg.norm(new.model_.theta - Theta[300:]) / np.linalg.norm(Theta[300:]) < 1e-8


def test_callback_follows_and_stops_training():
    X, y, task, _ = low_rank_tasks(noise=0.1, seed=9)
    seen = []

    def follow(info):
        seen.append(info["training_loss"])
        return info["iteration"] < 4

    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=50, callback=follow).fit(X, y, task)
    assert len(seen) == 4 and len(est.history_) == 4

    def fail(info):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=50, callback=fail).fit(X, y, task)


def test_bad_inputs_raise_clear_errors():
    X, y, task, _ = low_rank_tasks(seed=10)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=2)
    with pytest.raises(ValueError, match="one value per row"):
        est.fit(X, y[:-1], task)
    with pytest.raises(ValueError, match="one task key per row"):
        est.fit(X, y, task[:-1])
    with pytest.raises(ValueError, match="2-d"):
        est.fit(X[:, 0], y, task)
    Xn = X.copy()
    Xn[5, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite value .* at row 5, column 3"):
        est.fit(Xn, y, task)
    with pytest.raises(ValueError, match="X must be real numbers"):
        est.fit(X.astype(str), y, task)
    with pytest.raises(ValueError, match="X must be real numbers"):
        est.fit(X.astype(complex), y, task)
    with pytest.raises(ValueError, match="exceeds the dimension"):
        lrsmeta.LRSRegressor(rank=11, sparsity=0).fit(X, y, task)
    with pytest.raises(ValueError, match="unknown task-step variant"):
        lrsmeta.LRSRegressor(variant="fast").fit(X, y, task)
    with pytest.raises(ValueError, match="needs both epsilon and delta"):
        lrsmeta.LRSRegressor(epsilon=1.0).fit(X, y, task)
    with pytest.raises(TypeError, match="rnak"):
        lrsmeta.LRSRegressor(rnak=2)
    with pytest.raises(ValueError, match="sample_weight is not supported"):
        lrsmeta.LRSRegressor().fit(X, y, task, sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match="unseen must be"):
        lrsmeta.LRSRegressor(unseen="zero").fit(X, y, task)
    with pytest.raises(RuntimeError, match="not fitted"):
        lrsmeta.LRSRegressor().predict(X, task)
    with pytest.raises(ValueError, match="not a model folder"):
        lrsmeta.load("/nonexistent/model")
    est.fit(X, y, task)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :5], task)


def test_private_training_reports_what_it_spent():
    X, y, task, _ = low_rank_tasks(noise=0.1, seed=13)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=4, epsilon=2.0, delta=1e-6, clip_x=5, clip_y=3, clip_w=3,
                               noise_seed=7).fit(X, y, task)
    assert est.privacy_["enabled"] and est.privacy_["fixed_seed"] and est.privacy_["releases"] == 8
    assert 0 < est.privacy_["epsilon"] <= 2.0
    assert est.beta_ is None  # private training uses prior none


def test_scikit_learn_clone_and_grid_search():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, GroupKFold

    est = lrsmeta.LRSRegressor(rank=1, sparsity=0, prior="none", iterations=20, group_column=0)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    X, y, task, _ = low_rank_tasks(t=200, m=12, noise=0.2, seed=11)
    Xg = np.column_stack([task, X])  # the tasks in column 0
    # Folds of rows within every task (each task keeps rows in every training fold).
    fold = np.tile(np.arange(12) % 3, 200)
    search = GridSearchCV(est, {"rank": [1, 2, 3]}, cv=GroupKFold(n_splits=3)).fit(Xg, y, groups=fold)
    assert search.best_params_["rank"] in (2, 3)
    assert search.best_estimator_.U_.shape[1] == search.best_params_["rank"]
    assert sklearn.__version__


def test_ctrl_c_stops_training_cleanly(tmp_path):
    import signal
    import sys
    import time

    script = tmp_path / "long_fit.py"
    script.write_text(
        "import sys, numpy as np, lrsmeta\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((20000, 20)); y = rng.standard_normal(20000); g = np.repeat(np.arange(1000), 20)\n"
        "def tell(info):\n"
        "    if info['iteration'] == 1: print('training', flush=True)\n"
        "try:\n"
        "    lrsmeta.LRSRegressor(rank=3, sparsity=1, prior='none', iterations=10**6, callback=tell).fit(X, y, g)\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped cleanly', flush=True)\n"
        "    sys.exit(3)\n")
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "training"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "stopped cleanly" in out


def test_the_gil_is_released_while_training():
    import threading
    import time

    X, y, task, _ = low_rank_tasks(t=2000, m=30, d=30, r=3, noise=0.1, seed=12)
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    start = time.perf_counter()
    ticks_before = ticks
    lrsmeta.LRSRegressor(rank=3, sparsity=1, prior="none", iterations=50, tolerance=0, threads=1).fit(X, y, task)
    seconds = time.perf_counter() - start
    ticked = ticks - ticks_before
    done.set()
    counter.join()
    # A thread that needs the GIL every millisecond kept running while the fit ran (with the GIL
    # held it could run only at the few points where the fit takes the GIL back: one per iteration).
    assert seconds > 0.1, seconds
    assert ticked > max(100, 0.3 * seconds / 0.001), (ticked, seconds)


def test_unseen_tasks_are_predicted_with_the_population_model():
    X, y, task, _ = low_rank_tasks(t=60, m=12, noise=0.2, seed=21)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=0, select="evidence", iterations=20).fit(X, y, task)
    groups = np.where(np.arange(len(y)) % 2 == 0, task, task + 1000)  # every other row: a task never seen
    got = est.predict(X, groups)
    seen = groups < 1000
    np.testing.assert_allclose(got[seen], est.predict(X[seen], groups[seen]))
    np.testing.assert_allclose(got[~seen], X[~seen] @ est.beta_, rtol=1e-12, atol=1e-12)
    # Without the prior: the mean of the fitted tasks' theta.
    none = lrsmeta.LRSRegressor(rank=2, sparsity=0, prior="none", iterations=10).fit(X, y, task)
    np.testing.assert_allclose(none.predict(X[:3], [-1, -2, -3]), X[:3] @ none.model_.theta.mean(axis=0), rtol=1e-10)


def test_grid_search_over_task_folds_scores_finitely():
    sklearn = pytest.importorskip("sklearn.model_selection")
    X, y, task, _ = low_rank_tasks(t=60, m=10, noise=0.3, seed=22)
    Xg = np.column_stack([task, X])
    search = sklearn.GridSearchCV(lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=10, select="evidence", group_column=0),
                                  {"rank": [1, 2]}, cv=sklearn.GroupKFold(3))
    search.fit(Xg, y, groups=task)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["rank"] == 2


def test_pickle_and_joblib_round_trips_predict_the_same():
    import pickle
    X, y, task, _ = low_rank_tasks(t=50, m=10, noise=0.1, seed=23)
    est = lrsmeta.LRSRegressor(rank=2, sparsity=1, iterations=8, select="evidence").fit(X, y, task)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X, task), est.predict(X, task))
    assert back.get_params() == est.get_params() and back.groups_ == est.groups_
    assert back.selection_ == est.selection_
    unfitted = pickle.loads(pickle.dumps(lrsmeta.LRSRegressor(rank=4)))
    assert unfitted.rank == 4 and not hasattr(unfitted, "model_")
    joblib = pytest.importorskip("joblib")
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lrsmeta-joblib-{os.getpid()}.pkl")
    try:
        joblib.dump(est, path)
        np.testing.assert_array_equal(joblib.load(path).predict(X, task), est.predict(X, task))
    finally:
        os.remove(path)


def test_group_keys_missing_values_and_equal_numbers():
    X, y, task, _ = low_rank_tasks(t=20, m=8, noise=0.1, seed=24)
    est = lrsmeta.LRSRegressor(rank=1, sparsity=0, prior="none", iterations=5)
    with pytest.raises(ValueError, match="groups has NaN at row 3"):
        est.fit(X, y, np.where(np.arange(len(y)) == 3, np.nan, task.astype(float)))
    with pytest.raises(ValueError, match="groups has None at row 0"):
        est.fit(X, y, np.array([None] + list(task[1:]), dtype=object))
    as_floats = lrsmeta.LRSRegressor(**est.get_params()).fit(X, y, task.astype(float))
    est.fit(X, y, task)
    assert as_floats.groups_ == est.groups_  # 1.0 and 1 are one task
    mixed = np.array([float(g) if j % 2 else int(g) for j, g in enumerate(task)], dtype=object)
    np.testing.assert_array_equal(est.predict(X, mixed), est.predict(X, task))


def test_parameters_are_explicit_and_selection_says_why():
    import inspect
    names = list(inspect.signature(lrsmeta.LRSRegressor).parameters)
    assert names == list(lrsmeta.LRSRegressor().get_params())
    X, y, task, _ = low_rank_tasks(t=80, m=10, noise=0.1, seed=25)
    est = lrsmeta.LRSRegressor(select="evidence", iterations=10).fit(X, y, task)
    assert est.selection_["method"] == "evidence" and est.selection_["performed"]
    assert est.selection_["chosen"]["rank"] == est.U_.shape[1]
    assert est.selection_["prior"]["noise_variance"] > 0


def test_load_restores_the_trained_parameters(tmp_path):
    X, y, task, _ = low_rank_tasks(t=40, m=10, noise=0.1, seed=26)
    est = lrsmeta.LRSRegressor(select="evidence", iterations=7, random_state=5, variant="htp").fit(X, y, task)
    est.save(tmp_path / "m")
    back = lrsmeta.load(tmp_path / "m")
    params = back.get_params()
    assert params["rank"] == est.U_.shape[1] and params["sparsity"] == est.B_index_.shape[1]
    assert params["iterations"] == 7 and params["random_state"] == 5 and params["variant"] == "htp"
    assert params["select"] == "evidence"
    np.testing.assert_array_equal(back.predict(X, task), est.predict(X, task))


def test_scikit_learn_estimator_checks():
    """Every check of scikit-learn's check_estimator passes, with the tasks in column 0 (as model
    selection passes them), but those the estimator lists as failing by design (sample weights)."""
    checks = pytest.importorskip("sklearn.utils.estimator_checks")
    import unittest
    import warnings
    est = lrsmeta.LRSRegressor(group_column=0, rank=1, sparsity=0, iterations=5)
    listed = est._more_tags()["_xfail_checks"]
    failed, skipped = {}, set()
    for e, check in checks.check_estimator(est, generate_only=True):
        name = getattr(check, "func", check).__name__
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check(e)
        except unittest.SkipTest:
            skipped.add(name)
        except Exception as error:  # noqa: BLE001 (every failure is listed)
            failed[name] = f"{type(error).__name__}: {error}"
    assert not failed, failed
    assert set(listed) <= skipped | {"check_sample_weights_invariance"}  # (sklearn names that one "wrapped")


def test_running_out_of_iterations_warns():
    X, y, task, _ = low_rank_tasks(t=100, m=6, noise=0.5, seed=27)
    with pytest.warns(lrsmeta.ConvergenceWarning, match=r"not converged: the 8 iterations ran out .*\(iterations=\)"):
        est = lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=8, select="evidence").fit(X, y, task)
    assert any(n.startswith("not converged") for n in est.notes_)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrsmeta.ConvergenceWarning)
        lrsmeta.LRSRegressor(rank=2, sparsity=0, iterations=300, select="evidence").fit(X, y, task)


def test_importing_from_another_python_says_which_it_was_built_for(tmp_path):
    import shutil
    import sys
    source = os.path.dirname(lrsmeta.__file__)
    copy = tmp_path / "lrsmeta"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for name in os.listdir(copy):  # as if built for another interpreter
        if name.startswith("_lrsmeta") and name.endswith(".so"):
            os.rename(copy / name, copy / "_lrsmeta.cpython-39-x86_64-linux-gnu.so")
    result = subprocess.run([sys.executable, "-c", "import lrsmeta"], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert result.returncode != 0
    assert "was built for cpython-39, and this is " + sys.implementation.cache_tag in result.stderr, result.stderr


class _Frame:
    """Enough of a pandas DataFrame for the estimator (pandas is not installed where this runs):
    named columns, and an array through __array__."""

    def __init__(self, values, columns):
        self._values = np.asarray(values)
        self.columns = list(columns)

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)

    def reordered(self, columns):
        return _Frame(self._values[:, [self.columns.index(c) for c in columns]], columns)


def test_dataframe_columns_are_remembered_and_checked(tmp_path):
    import pickle
    import warnings
    X, y, task, _ = low_rank_tasks(t=30, m=8, d=4, noise=0.1, seed=27)
    names = ["age", "dose", "height", "weight"]
    frame = _Frame(X, names)
    est = lrsmeta.LRSRegressor(rank=1, sparsity=0, prior="none", iterations=5).fit(frame, y, task)
    assert list(est.feature_names_in_) == names and est.n_features_in_ == 4
    # Reordered, missing or renamed columns are refused, naming what differs.
    with pytest.raises(ValueError, match="another order"):
        est.predict(frame.reordered(["dose", "age", "height", "weight"]), task)
    with pytest.raises(ValueError, match=r"missing \['weight'\]; not seen in fit \['mass'\]"):
        est.predict(_Frame(X, names[:3] + ["mass"]), task)
    # An array without names: taken by position, with a warning; and the reverse.
    with pytest.warns(UserWarning, match="no column names"):
        plain = est.predict(X, task)
    np.testing.assert_array_equal(plain, est.predict(frame, task))
    unnamed = lrsmeta.LRSRegressor(**est.get_params()).fit(X, y, task)
    assert not hasattr(unnamed, "feature_names_in_")
    with pytest.warns(UserWarning, match="fitted on X without them"):
        unnamed.predict(frame, task)
    # Integer labels are no names; a mix of strings and others is an error.
    assert not hasattr(lrsmeta.LRSRegressor(**est.get_params()).fit(_Frame(X, [0, 1, 2, 3]), y, task), "feature_names_in_")
    with pytest.raises(TypeError, match="mix strings"):
        lrsmeta.LRSRegressor(**est.get_params()).fit(_Frame(X, ["a", 1, "c", "d"]), y, task)
    # Kept by pickling, save and load, and adapt.
    assert list(pickle.loads(pickle.dumps(est)).feature_names_in_) == names
    est.save(tmp_path / "m")
    assert list(lrsmeta.load(tmp_path / "m").feature_names_in_) == names
    with open(tmp_path / "m" / "model.json") as f:
        assert json.load(f)["feature_names"] == names
    assert list(est.adapt(frame, y, task + 1000).feature_names_in_) == names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.score(frame, y, task)  # matching names: no warning


def _sample(row):
    """A value of the option other than its default, within its range (tests/test_option_table.cpp's)."""
    if row["type"] == "flag":
        return row["default"] != "true"
    if row["type"] == "choice":
        return next(c for c in row["choices"] if c != row["default"])
    if row["type"] == "integer":
        return int(row["low"]) + 1
    if row["high"] == float("inf"):
        return 0.75
    return 0.25 if row["high"] - row["low"] == 1 else 0.125


def _as_text(value):
    return {True: "true", False: "false"}[value] if isinstance(value, bool) else str(value)


def test_the_constructor_is_the_options_table():
    import inspect
    parameters = inspect.signature(lrsmeta.LRSRegressor).parameters
    table = [row for row in _lrsmeta.option_table() if row["python"]]
    for row in table:
        assert row["python"] in parameters, row["name"]
        default = parameters[row["python"]].default
        assert default == lrsmeta._default(row) and type(default) is type(lrsmeta._default(row)), row["name"]
        assert lrsmeta.LRSRegressor().get_params()[row["python"]] == default
    assert set(parameters) - {row["python"] for row in table} == {"callback", "group_column", "unseen"}


def test_every_option_of_the_table_reaches_the_library():
    for row in _lrsmeta.option_table():
        if not row["python"]:
            continue
        params = {"epsilon": 1.0, "delta": 1e-6} if row["group"] == "privacy" else {}  # read under private training
        params[row["python"]] = _sample(row)
        values = _lrsmeta.option_values(lrsmeta.LRSRegressor(**params)._options())
        assert values[row["name"]] == _as_text(params[row["python"]]), row["name"]
    with pytest.raises(ValueError, match="iterations must be a non-negative integer, not 2.5"):
        _lrsmeta.option_values({"iterations": 2.5})
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        _lrsmeta.option_values({"colour": 1})
    # Ranges in Python's names, before any data is read.
    with pytest.raises(ValueError, match=r"cg_forcing must be in \[0, 1\) \(got 1\)"):
        lrsmeta.LRSRegressor(cg_forcing=1.0).fit(np.ones((4, 2)), np.ones(4), [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"warm_start = -1 is negative"):
        _lrsmeta.option_values({"warm_start_iterations": -1})


@pytest.mark.skipif(CLI is None, reason="needs LRSMETA (the CLI)")
def test_every_option_of_the_table_reaches_the_cli(tmp_path):
    X, y, task, _ = low_rank_tasks(t=20, m=10, d=6, noise=0.1, seed=31)
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "X.npy", X)
    np.save(data / "y.npy", y)
    np.save(data / "task_offsets.npy", np.arange(0, len(y) + 1, 10, dtype=np.int64))
    rows = [row for row in _lrsmeta.option_table() if row["cli"] and row["name"] != "device"]  # (cuda needs a GPU)
    for private in (False, True):
        given = {row["name"]: _sample(row) for row in rows if (row["group"] == "privacy") == private}
        if private:
            given.update(rank=1, sparsity=1, prior="none")
        args = []
        for row in rows:
            if row["name"] in given:
                value = given[row["name"]]
                args += ["--" + row["cli"]] if row["type"] == "flag" else ["--" + row["cli"], str(value)]
        out = tmp_path / ("private" if private else "model")
        subprocess.run([CLI, "train", "--data", str(data), "--out", str(out), "-q"] + args, check=True)
        with open(out / "model.json") as f:
            options = json.load(f)["options"]
        for name, value in given.items():
            row = next(row for row in rows if row["name"] == name)
            if row["group"] == "privacy":
                recorded = options["privacy"]["fixed_seed" if name == "noise_seed" else name]
                assert recorded == (True if name == "noise_seed" else value), name
            else:
                assert recorded_as(options[name]) == recorded_as(value), name


def recorded_as(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def test_the_options_page_is_the_table():
    import importlib.util
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    spec = importlib.util.spec_from_file_location("options_doc", os.path.join(root, "scripts", "options_doc.py"))
    options_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(options_doc)
    with open(os.path.join(root, "docs", "options.md")) as f:
        page = f.read()
    assert page == options_doc.markdown(_lrsmeta.option_table()), \
        "docs/options.md is not the options table's: PYTHONPATH=build/python python3 scripts/options_doc.py > docs/options.md"
