"""lrsmeta: personalised linear models for many data-starved tasks, theta_i = beta + U w_i + b_i.

    import numpy as np, lrsmeta
    model = lrsmeta.LRSRegressor(rank=3, sparsity=2).fit(X, y, groups)
    model.predict(X_new, groups_new)

The estimator follows scikit-learn's conventions (get_params/set_params, fit returns self, fitted
attributes end in "_") without depending on it. Every option of `lrsmeta train` is a constructor
argument, named as on the command line with underscores ("auto" where the CLI takes auto).
"""
import numpy as np

from . import _lrsmeta
from ._lrsmeta import Error, __version__  # noqa: F401  (Error is a ValueError)

__all__ = ["LRSRegressor", "load", "Error", "__version__"]

# Constructor arguments and their defaults: the library's (Options in lrsmeta.hpp).
_DEFAULTS = {
    "rank": "auto",
    "sparsity": "auto",
    "prior": "auto",
    "variant": "pursuit",
    "iterations": 100,
    "inner_iterations": 3,
    "warm_start": 5,
    "ridge": 0.0,
    "task_ridge": 1e-10,
    "step_size": 0.0,
    "init": "auto",
    "random_state": 42,
    "threads": 0,
    "tolerance": 0.0,
    "relative_tolerance": 1e-6,
    "device": "cpu",
    "u_solver": "auto",
    "select": "validation",
    "cg_tolerance": 1e-10,
    "cg_forcing": 0.1,
    "cg_max_steps": 300,
    "sparse_prior_scale": "auto",
    "support_threshold": "auto",
    "covariance_shrinkage": "auto",
    "validation_fraction": 0.2,
    "selection_tasks": 50000,
    "epsilon": None,
    "delta": None,
    "clip_x": 1.0,
    "clip_y": 1.0,
    "clip_w": 1.0,
    "max_samples": 50,
    "noise_multiplier": None,
    "noise_seed": None,
    "callback": None,
    "group_column": None,
}


def _group_rows(groups, n, known=None):
    """Task of every row: (keys in order of first appearance, task index per row). With `known`
    (a fitted model's keys), rows must belong to those tasks."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.shape[0] != n:
        raise ValueError(f"groups must be 1-d with one task key per row of X ({n}), has shape {groups.shape}")
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
    if unknown:
        raise ValueError(f"groups {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not tasks of the fitted model: "
                         "fit new tasks with adapt(X, y, groups)")
    remap = np.array([index[k] for k in keys], dtype=np.int64)
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
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise ValueError(f"X must be real numbers, has dtype {X.dtype}")
        X = X.astype(np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n x d), has {X.ndim} dimensions")
    return X


def _as_y(y, X):
    y = np.asarray(y, dtype=X.dtype)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-d with one value per row of X ({X.shape[0]}), has shape {y.shape}")
    return y


class LRSRegressor:
    """theta_i = beta + U w_i + b_i fitted by AMHT-LRS with the empirical-Bayes prior (see the README).

    fit(X, y, groups): X (n x d) float32 or float64 and C-contiguous is used in place (no copy;
    other layouts and types are converted once); groups is one task key per row (ints or strings,
    rows of a task anywhere: rows not grouped by task are regrouped, which copies X once). The GIL
    is released while training; callback(info) is called after each outer iteration with a dict
    (iteration, training_loss, u_change, ...) and stops training by returning False; Ctrl-C stops
    it too (KeyboardInterrupt is raised).

    group_column: where scikit-learn's model selection (clone, GridSearchCV), which passes only X
    and y, is to reach the tasks: the index of the column of X holding each row's task key (it is
    then not a feature, and groups may be left out of fit, predict, score and adapt).

    Fitted attributes: U_ (d x r), W_ (t x r), B_index_ and B_value_ (t x k), beta_ (d, with the
    prior; else None), Sigma_, noise_variance_, groups_ (task keys), history_ (list of dicts),
    privacy_ (dict), notes_ (what the fit decided), n_features_in_.
    """

    def __init__(self, **params):
        unknown = set(params) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown parameters {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
        for name, default in _DEFAULTS.items():
            setattr(self, name, params.get(name, default))

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

    def __repr__(self):
        changed = {k: v for k, v in self.get_params().items() if v is not _DEFAULTS[k] and v != _DEFAULTS[k]}
        return "LRSRegressor(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _options(self):
        if (self.epsilon is None) != (self.delta is None):
            raise ValueError("differential privacy needs both epsilon and delta")
        return {k: v for k, v in self.get_params().items() if k not in ("callback", "group_column")}

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
        return np.ascontiguousarray(np.delete(X, c, axis=1)), X[:, c]

    def fit(self, X, y, groups=None):
        X, groups = self._split(X, groups)
        y = _as_y(y, X)
        keys, task = _group_rows(groups, X.shape[0])
        Xg, yg, offsets = _grouped(X, y, task, len(keys))
        model = _lrsmeta.fit(Xg, np.ascontiguousarray(yg), offsets, self._options(), self.callback)
        model.task_keys = keys
        self._set_fitted(model)
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
        self.groups_ = list(model.task_keys)
        self.history_ = model.history
        self.privacy_ = model.privacy
        self.notes_ = list(model.notes)
        self.n_features_in_ = model.d

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise RuntimeError("this LRSRegressor is not fitted yet: call fit(X, y, groups) first")

    def predict(self, X, groups=None):
        """<x, theta_task> for every row, in the rows' order; groups must be tasks of the fit."""
        self._check_fitted()
        X, groups = self._split(X, groups)
        _, task = _group_rows(groups, X.shape[0], known=self.groups_)
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
        X, groups = self._split(X, groups)
        y = _as_y(y, X)
        keys, task = _group_rows(groups, X.shape[0])
        Xg, yg, offsets = _grouped(X, y, task, len(keys))
        model = _lrsmeta.adapt(self.model_, Xg, np.ascontiguousarray(yg), offsets, {"threads": self.threads})
        model.task_keys = keys
        out = LRSRegressor(**self.get_params())
        out._set_fitted(model)
        return out

    def save(self, path):
        """The model folder format of `lrsmeta train` (readable by the CLI, and by load)."""
        self._check_fitted()
        _lrsmeta.save_model(self.model_, str(path))


def load(path):
    """A fitted LRSRegressor from a model folder (written by save or by `lrsmeta train`)."""
    model = _lrsmeta.load_model(str(path))
    out = LRSRegressor()
    out._set_fitted(model)
    return out
