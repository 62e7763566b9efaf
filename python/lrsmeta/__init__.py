"""lrsmeta: personalised linear models for many data-starved tasks, theta_i = beta + U w_i + b_i.

    import numpy as np, lrsmeta
    model = lrsmeta.LRSRegressor(rank=3, sparsity=2).fit(X, y, groups)
    model.predict(X_new, groups_new)

The estimator follows scikit-learn's conventions (get_params/set_params, fit returns self, fitted
attributes end in "_") without depending on it. Every option of `lrsmeta train` is a constructor
argument, named as on the command line with underscores ("auto" where the CLI takes auto).
"""
import inspect
import json
import os
import tempfile
import warnings

import numpy as np

def _import_compiled_part():
    """The compiled module, or an ImportError saying which Python it was built for."""
    try:
        from . import _lrsmeta as compiled
        return compiled
    except ImportError as error:
        import glob
        import sys
        here = os.path.dirname(os.path.abspath(__file__))
        built = sorted(os.path.basename(p) for p in glob.glob(os.path.join(here, "_lrsmeta*.so")))
        tags = sorted({"-".join(name.split(".")[1].split("-")[:2]) for name in built if name.count(".") >= 2})
        raise ImportError(
            f"lrsmeta's compiled part ({', '.join(built) or 'none found in ' + here}) was built for "
            f"{', '.join(tags) or 'another interpreter'}, and this is {sys.implementation.cache_tag} ({sys.executable}): "
            f"import lrsmeta from the Python it was built for, or rebuild it for this one "
            f"(cmake -DPython3_EXECUTABLE={sys.executable})") from error


_lrsmeta = _import_compiled_part()
Error = _lrsmeta.Error  # a ValueError
__version__ = _lrsmeta.__version__

__all__ = ["LRSRegressor", "load", "Error", "ConvergenceWarning", "__version__"]


class ConvergenceWarning(UserWarning):
    """Training used every iteration while a tolerance was in effect and not met (see notes_)."""

# The library's options table (lrsmeta/option_table.hpp): each constructor argument that is a
# library option, its name there, and its default.
_TABLE = [row for row in _lrsmeta.option_table() if row["python"]]
_OPTION_NAME = {row["python"]: row["name"] for row in _TABLE}


def _default(row):
    text = row["default"]
    if text == "auto" or row["type"] == "choice":
        return text
    if text == "":
        return None
    return {"integer": int, "number": float, "flag": lambda t: t == "true"}[row["type"]](text)


# Constructor arguments and their defaults: the table's (None: left out, as epsilon for training
# without privacy), and those of the estimator alone.
_DEFAULTS = {row["python"]: _default(row) for row in _TABLE}
_DEFAULTS.update(callback=None, group_column=None, unseen="population")



# Attributes a fit sets (derived from model_; pickled as the model folder's bytes).
_FITTED = ("model_", "U_", "W_", "B_index_", "B_value_", "beta_", "Sigma_", "noise_variance_", "feature_scales_", "groups_", "history_",
           "privacy_", "notes_", "n_features_in_", "selection_")


def _task_keys(groups, n):
    """groups as an array of task keys: None and NaN refused; numbers that are equal are one task
    (1 and 1.0), whatever their type."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.shape[0] != n:
        raise ValueError(f"groups must be 1-d with one task key per row of X ({n}), has shape {groups.shape}")
    if groups.dtype.kind == "f":
        missing = np.flatnonzero(~np.isfinite(groups))
        if missing.size:
            value = "NaN" if np.isnan(groups[missing[0]]) else groups[missing[0]]
            raise ValueError(f"groups has {value} at row {missing[0]} ({missing.size} rows in all): "
                             "every row needs a finite task key")
        if groups.size and np.all(groups == np.floor(groups)) and np.abs(groups).max() < 2.0 ** 63:
            groups = groups.astype(np.int64)
    elif groups.dtype.kind == "O":
        def key(row, value):
            if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
                shown = "None" if value is None else "NaN" if value != value else value
                raise ValueError(f"groups has {shown} at row {row}: every row needs a finite task key")
            if isinstance(value, (float, np.floating)) and float(value).is_integer():
                return str(int(value))
            return str(value)
        groups = np.array([key(j, v) for j, v in enumerate(groups)], dtype=object)
    return groups


def _group_rows(groups, n, known=None, unseen="error"):
    """Task of every row: (keys in order of first appearance, task index per row). With `known`
    (a fitted model's keys), rows of other tasks are an error, or task -1 (unseen="population")."""
    groups = _task_keys(groups, n)
    keys_sorted, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # tasks numbered by first appearance
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(len(order))
    task = rank_of[inverse]
    keys = [str(k) for k in keys_sorted[order]]
    if known is None:
        return keys, task
    index = {k: i for i, k in enumerate(known)}
    unknown = [k for k in keys if k not in index]
    if unknown and unseen != "population":
        raise ValueError(f"groups {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not tasks of the fitted model: "
                         "fit new tasks with adapt(X, y, groups), or predict them with the population model "
                         "(unseen='population')")
    remap = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
    return keys, remap[task]


def _grouped(X, y, task, t):
    """Rows grouped by task: X itself when they already are (no copy), else one stable regroup."""
    counts = np.bincount(task, minlength=t)
    offsets = np.zeros(t + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if np.all(task[1:] >= task[:-1]):
        return X, y, offsets
    order = np.argsort(task, kind="stable")
    return X[order], (None if y is None else y[order]), offsets


def _as_X(X):
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError("sparse input is not supported: pass a dense array (X.toarray())")
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        if np.issubdtype(X.dtype, np.complexfloating):
            raise ValueError(f"Complex data not supported: X must be real numbers, has dtype {X.dtype}")
        if X.dtype.kind in "USV":  # text is not read as numbers
            raise ValueError(f"X must be real numbers, has dtype {X.dtype}")
        try:
            X = X.astype(np.float64)
        except TypeError as e:  # an object that is no number at all
            raise TypeError(f"X must be real numbers: {e}") from None
        except ValueError:
            raise ValueError(f"X must be real numbers, has dtype {X.dtype}") from None
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n x d), has {X.ndim} dimensions: Reshape your data with X.reshape(-1, 1) "
                         "(one feature) or X.reshape(1, -1) (one row)")
    if X.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[0] == 0:
        raise ValueError(f"0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    return X


def _feature_names(X):
    """The column names of X where it has them (a pandas DataFrame's), as scikit-learn takes
    them: every name a string, or no names at all (integer column labels); a mix is an error."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    kinds = sorted({type(name).__name__ for name in names})
    if names and all(isinstance(name, str) for name in names):
        return np.asarray(names, dtype=object)
    if any(isinstance(name, str) for name in names):
        raise TypeError(f"X's column names mix strings with other types ({kinds}): give every column a string name "
                        "(X.columns = X.columns.astype(str)), or none")
    return None


def _as_y(y, X):
    y = np.asarray(y, dtype=X.dtype)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-d with one value per row of X ({X.shape[0]}), has shape {y.shape}")
    return y


_blas_warned = False


def _warn_of_slow_blas():
    """Once a process: OpenBLAS running kernels below the processor's (docs/building.md)."""
    global _blas_warned
    if not _blas_warned:
        _blas_warned = True
        text = _lrsmeta.blas_kernel_warning()
        if text:
            warnings.warn(text, RuntimeWarning, stacklevel=3)


class LRSRegressor:
    """theta_i = beta + U w_i + b_i fitted by AMHT-LRS with the empirical-Bayes prior (docs/python.md, docs/model.md).

    fit(X, y, groups): X (n x d) float32 or float64 and C-contiguous is used in place (no copy;
    other layouts and types are converted once); groups is one task key per row (ints or strings,
    rows of a task anywhere: rows not grouped by task are regrouped, which copies X once). The GIL
    is released while training; callback(info) is called after each outer iteration with a dict
    (iteration, training_loss, u_change, ...) and stops training by returning False; Ctrl-C stops
    it too (KeyboardInterrupt is raised).

    group_column: where scikit-learn's model selection (clone, GridSearchCV), which passes only X
    and y, is to reach the tasks: the index of the column of X holding each row's task key (it is
    then not a feature, and groups may be left out of fit, predict, score and adapt). With it,
    scikit-learn's check_estimator passes, but for the sample-weight checks: sample_weight is
    refused (every row counts once).

    groups: ints, floats or strings; numbers that are equal are one task (1 and 1.0); None, NaN
    and inf are refused. Task keys are kept as text (groups_), as in the model folder.

    unseen: "population" (default): predict rows of a task the fit has not seen with the population
    model, beta (with the prior; without it, the mean of the fitted tasks' theta), so that task-wise
    cross-validation (GroupKFold) scores; "error": refuse them. adapt fits new tasks.

    Fitted attributes: U_ (d x r), W_ (t x r), B_index_ and B_value_ (t x k), beta_ (d, with the
    prior; else None), Sigma_, noise_variance_, feature_scales_ (the powers of two the features were
    divided by inside the fit to bring them to a common scale, or None; standardize=False fits them as
    given), groups_ (task keys), history_ (list of dicts),
    privacy_ (dict), notes_ (what the fit decided), selection_ (what was estimated or chosen, every
    candidate's score, and the prior's estimates: model.json's "selection" and "prior"),
    n_features_in_ (X's columns, a group column included), feature_names_in_ (X's column names, where X
    is a DataFrame whose columns are all named by strings; predict, score and adapt then require
    the same columns in the same order).

    Pickling (pickle, joblib, multiprocessing) keeps the parameters and the fitted model (its model
    folder's arrays and model.json), never X.
    """

    def __init__(self, *, rank="auto", sparsity="auto", prior="auto", variant="pursuit", iterations=100,
                 inner_iterations=3, warm_start=5, ridge=0.0, task_ridge=1e-10, step_size=0.0, init="auto",
                 random_state=42, threads=0, tolerance=0.0, relative_tolerance=1e-6, device="cpu", u_solver="auto",
                 select="evidence", low_rank_basis="auto", cg_tolerance=1e-10, cg_forcing=0.1, cg_max_steps=300,
                 sparse_prior_scale="auto", support_threshold="auto", covariance_shrinkage="auto",
                 validation_fraction=0.2, folds=5, standardize=True, population_prior=True, em_acceleration=True,
                 selection_tasks=50000,
                 selection_tolerance=0.005, epsilon=None, delta=None, clip_x=1.0, clip_y=1.0,
                 clip_w=1.0, max_samples=50, noise_multiplier=None, noise_seed=None, callback=None,
                 group_column=None, unseen="population"):
        # Stored as given (scikit-learn's convention: checked when fit runs, not here).
        for name in _DEFAULTS:
            setattr(self, name, locals()[name])

    # scikit-learn's protocol (clone, GridSearchCV): parameters are the constructor's arguments.
    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in _DEFAULTS}

    def set_params(self, **params):
        unknown = set(params) - set(_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    # scikit-learn's estimator checks that fail by design (tests/test_lrsmeta.py runs them all).
    def _more_tags(self):
        weights = "sample_weight is refused: every row counts once"
        return {"requires_y": True,
                "_xfail_checks": {name: weights for name in (
                    "check_sample_weights_not_an_array", "check_sample_weights_list", "check_sample_weights_shape",
                    "check_sample_weights_not_overwritten", "check_sample_weights_invariance")}}

    def __repr__(self):
        changed = {k: v for k, v in self.get_params().items() if v is not _DEFAULTS[k] and v != _DEFAULTS[k]}
        return "LRSRegressor(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _options(self):
        if (self.epsilon is None) != (self.delta is None):
            raise ValueError("differential privacy needs both epsilon and delta")
        if self.unseen not in ("population", "error"):
            raise ValueError(f"unseen must be 'population' or 'error', not {self.unseen!r}")
        return {_OPTION_NAME[k]: v for k, v in self.get_params().items() if k in _OPTION_NAME}

    def _split(self, X, groups):
        """X's features and the rows' task keys: `groups`, or (group_column set, groups None) that
        column of X, which is then not a feature. The column is how scikit-learn's model selection,
        which passes only X and y to fit and score, reaches the tasks."""
        X = _as_X(X)
        if groups is not None:
            return X, groups
        if self.group_column is None:
            raise ValueError("groups is needed (one task key per row), or group_column (the column of X that holds them)")
        c = int(self.group_column)
        if not -X.shape[1] <= c < X.shape[1]:
            raise ValueError(f"group_column {c} is not a column of X ({X.shape[1]} columns)")
        c %= X.shape[1]
        if X.shape[1] == 1:
            raise ValueError("X has 1 feature(s), and it is the group column: n_features = 1 leaves no feature")
        return np.ascontiguousarray(np.delete(X, c, axis=1)), X[:, c]

    def fit(self, X, y, groups=None, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported: every row counts once (repeat rows to weight them)")
        self._options()
        if y is None:
            raise ValueError("LRSRegressor requires y to be passed, but the target y is None")
        columns = _as_X(X).shape[1]
        names = _feature_names(X)
        X, groups = self._split(X, groups)
        y = _as_y(y, X)
        keys, task = _group_rows(groups, X.shape[0])
        Xg, yg, offsets = _grouped(X, y, task, len(keys))
        _warn_of_slow_blas()
        model = _lrsmeta.fit(Xg, np.ascontiguousarray(yg), offsets, self._options(), self.callback)
        model.task_keys = keys
        if names is not None:  # the features' names, without a group column
            model.feature_names = [str(n) for i, n in enumerate(names) if self.group_column is None
                                   or i != int(self.group_column) % len(names)]
        self._set_fitted(model)
        self.n_features_in_ = columns  # as scikit-learn counts them: X's columns, a group column included
        if names is not None:
            self.feature_names_in_ = names
        else:
            self.__dict__.pop("feature_names_in_", None)
        if not model.converged:
            warnings.warn(next(n for n in model.notes if n.startswith("not converged")).replace("--iterations", "iterations=")
                          .replace("--relative-tolerance", "relative_tolerance="), ConvergenceWarning, stacklevel=2)
        return self

    def _set_fitted(self, model):
        self.model_ = model
        self.U_ = model.U
        self.W_ = model.W
        self.B_index_ = model.B_index
        self.B_value_ = model.B_value
        self.beta_ = model.beta
        self.Sigma_ = model.Sigma
        self.noise_variance_ = model.noise_variance
        self.feature_scales_ = model.feature_scales
        self.groups_ = list(model.task_keys)
        self.history_ = model.history
        self.privacy_ = model.privacy
        self.notes_ = list(model.notes)
        self.n_features_in_ = model.d
        description = json.loads(model.description)
        self.selection_ = dict(description["selection"], prior=description["prior"])

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise RuntimeError("this LRSRegressor is not fitted yet: call fit(X, y, groups) first")

    def _check_feature_names(self, X):
        """X's columns against fit's, where either had names: the same names in the same order,
        else an error naming what differs; names on one side only is a warning."""
        names, fitted = _feature_names(X), getattr(self, "feature_names_in_", None)
        if names is None and fitted is None:
            return
        if fitted is None:
            warnings.warn("X has column names, but this LRSRegressor was fitted on X without them: columns are "
                          "taken by position", UserWarning, stacklevel=3)
            return
        if names is None:
            warnings.warn("X has no column names, but this LRSRegressor was fitted on X with them: columns are "
                          "taken by position", UserWarning, stacklevel=3)
            return
        if list(names) == list(fitted):
            return
        missing = [n for n in fitted if n not in set(names)]
        unexpected = [n for n in names if n not in set(fitted)]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"not seen in fit {unexpected}")
        if not parts:
            parts.append("the same names in another order (reorder them as in feature_names_in_)")
        raise ValueError("X's columns are not those fit saw: " + "; ".join(parts))

    def predict(self, X, groups=None):
        """<x, theta_task> for every row, in the rows' order. A row of a task the fit has not seen
        is predicted with the population model: beta (with the prior; without it, the mean of the
        fitted tasks' theta), unless unseen="error". adapt fits such tasks. Where fit saw column
        names (a DataFrame), X must have the same columns in the same order."""
        self._check_fitted()
        self._check_feature_names(X)
        X, groups = self._split(X, groups)
        bad = np.argwhere(~np.isfinite(X))
        if bad.size:
            raise ValueError(f"X has a non-finite value (NaN or inf) at row {bad[0][0]}, column {bad[0][1]}")
        _, task = _group_rows(groups, X.shape[0], known=self.groups_, unseen=self.unseen)
        return _lrsmeta.predict_rows(self.model_, X, task)

    def score(self, X, y, groups=None):
        """R^2 of predict(X, groups) against y."""
        if y is None:
            raise ValueError("score needs y")
        y = np.asarray(y, dtype=np.float64)
        residual = y - self.predict(X, groups)
        total = np.sum((y - y.mean()) ** 2)
        return 1.0 - float(np.sum(residual ** 2)) / total if total > 0 else float("nan")

    def adapt(self, X, y, groups=None):
        """New tasks with the fitted U (and prior) fixed: a new fitted LRSRegressor for those tasks."""
        self._check_fitted()
        self._check_feature_names(X)
        X, groups = self._split(X, groups)
        y = _as_y(y, X)
        keys, task = _group_rows(groups, X.shape[0])
        Xg, yg, offsets = _grouped(X, y, task, len(keys))
        model = _lrsmeta.adapt(self.model_, Xg, np.ascontiguousarray(yg), offsets, {"threads": self.threads})
        model.task_keys = keys
        model.feature_names = list(self.model_.feature_names)
        out = LRSRegressor(**self.get_params())
        out._set_fitted(model)
        if hasattr(self, "feature_names_in_"):
            out.feature_names_in_ = self.feature_names_in_
        out.n_features_in_ = self.n_features_in_
        return out

    # Pickling (joblib, multiprocessing, GridSearchCV's best_estimator_): the parameters, and a
    # fitted model as the bytes of its model folder (arrays and model.json, as save writes them).
    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state:
            for name in _FITTED:
                state.pop(name, None)
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model")
                _lrsmeta.save_model(self.model_, path)
                state["model_"] = {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}
        return state

    def __setstate__(self, state):
        state = dict(state)
        files = state.pop("model_", None)
        self.__dict__.update(state)
        for name, default in _DEFAULTS.items():  # pickled by an older version
            self.__dict__.setdefault(name, default)
        if files is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model")
                os.mkdir(path)
                for name, data in files.items():
                    with open(os.path.join(path, os.path.basename(name)), "wb") as f:
                        f.write(data)
                self._set_fitted(_lrsmeta.load_model(path))

    def save(self, path):
        """The model folder format of `lrsmeta train` (readable by the CLI, and by load)."""
        self._check_fitted()
        _lrsmeta.save_model(self.model_, str(path))


# The parameters in the constructor's order (get_params, repr); tests/test_lrsmeta.py checks that
# the constructor's defaults are the table's.
_DEFAULTS = {name: _DEFAULTS[name] for name in list(inspect.signature(LRSRegressor.__init__).parameters)[1:]}


def load(path):
    """A fitted LRSRegressor from a model folder (written by save or by `lrsmeta train`), its
    parameters those the model was trained with (r and k as fitted: refitting with get_params()
    trains that model again)."""
    model = _lrsmeta.load_model(str(path))
    options = json.loads(model.description)["options"]
    # model.json records the options under the table's names (privacy's in their own object).
    params = {row["python"]: options[row["name"]] for row in _TABLE if not row["group"] and row["name"] in options}
    params["rank"], params["sparsity"] = model.r, model.k
    privacy = options.get("privacy", {})
    if privacy.get("enabled"):
        params.update(epsilon=privacy["epsilon"], delta=privacy["delta"], clip_x=privacy["clip_x"],
                      clip_y=privacy["clip_y"], clip_w=privacy["clip_w"], max_samples=privacy["max_samples"],
                      noise_multiplier=privacy["noise_multiplier"] or None)
    out = LRSRegressor(**params)
    out._set_fitted(model)
    if model.feature_names:  # a fit on a DataFrame (without a group column: its name is not kept)
        out.feature_names_in_ = np.asarray(model.feature_names, dtype=object)
    return out
