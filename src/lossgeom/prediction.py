"""Predicting optimisation difficulty from an early look at training (report question 4).

The report claims that early curvature estimates predict whether a configuration will be easy
or hard to optimise. The test: from what the first steps show (the loss and its slope alone,
or the curvature with the gradient norm, or both), predict (a) whether a model fails (diverges
or never reaches the stopping criterion) and (b) how many steps it needs, and score the
predictions on configurations the predictor never saw. Every fold holds out one configuration
group (all seeds of one grid point; scikit-learn's ``LeaveOneGroupOut``), so a seed's twin never
informs its prediction. The verdict is whether curvature adds to what the loss alone predicts.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [0.1], [0.9]]); y = np.array([0, 1, 0, 1])
    >>> held_out_predictions(x, y, np.array([0, 0, 1, 1]), "failure").round(2).tolist()
    [0.3, 0.7, 0.37, 0.63]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: The feature sets compared (columns of the sweep table at the early point, without suffix).
#: Two references beside them: ``none`` (an intercept only: the level an uninformative
#: feature reaches under leave-one-group-out, which lies *below* chance, because holding a
#: group out shifts the training labels' mean away from it) and ``learning_rate`` (the
#: hyperparameter the stability ratio lambda_max eta / (2 (1 + beta)) carries).
FEATURE_SETS = {
    "early_loss": ("loss", "loss_slope"),
    "early_curvature": ("stability_ratio", "eig1", "trace", "grad_norm"),
    "both": ("loss", "loss_slope", "stability_ratio", "eig1", "trace", "grad_norm"),
    "learning_rate": ("lr",),
    "none": ("constant",),
}

#: Columns read as they are, not at the early point.
_STATIC = {"lr": lambda frame: np.log(frame["lr"].to_numpy(float)),
           "constant": lambda frame: np.zeros(len(frame))}  # fmt: skip

#: Features that are positive scales and enter as logarithms.
LOG_FEATURES = ("loss", "stability_ratio", "eig1", "trace", "grad_norm")

TASKS = {"failure": "auroc", "steps_to_criterion": "spearman"}


class LeakError(AssertionError):
    """A fold trained on the configuration group it predicts."""


def _estimator(task: str):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "failure":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if task == "steps_to_criterion":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")


def held_out_predictions(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    task: str,
    estimator: Callable[[], object] | None = None,
) -> np.ndarray:
    """Each model's prediction by a predictor fitted without its configuration group.

    Args:
        x: features, one row per model.
        y: 0/1 failure labels (``failure``) or log steps (``steps_to_criterion``).
        groups: each model's configuration group.
        task: ``failure`` (predicted probability of failing) or ``steps_to_criterion``.
        estimator: builds a fresh scikit-learn estimator (default: standardised logistic
            regression or ridge regression).

    Raises:
        LeakError: a fold's training rows include the group it predicts (never, by
            construction; checked so that a change in the splitting cannot leak silently).
    """
    from sklearn.model_selection import LeaveOneGroupOut

    x, y, groups = np.asarray(x, float), np.asarray(y), np.asarray(groups)
    make = estimator or (lambda: _estimator(task))
    out = np.full(len(y), math.nan)
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        if set(groups[train]) & set(groups[test]):
            raise LeakError(f"fold of group {groups[test][0]!r} trains on its own group")
        model = make()
        if task == "failure" and len(set(y[train])) < 2:  # one class left: predict its rate
            out[test] = float(np.mean(y[train]))
            continue
        model.fit(x[train], y[train])
        out[test] = (
            model.predict_proba(x[test])[:, 1] if task == "failure" else model.predict(x[test])
        )
    return out


def _auroc(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUROC of every resample (rows), ties counted half (the Mann-Whitney statistic)."""
    labels, scores = np.atleast_2d(labels), np.atleast_2d(scores)
    ranks = stats.rankdata(scores, axis=-1)
    positives = labels.sum(-1)
    negatives = labels.shape[-1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * labels).sum(-1) - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    rx = stats.rankdata(np.atleast_2d(x), axis=-1)
    ry = stats.rankdata(np.atleast_2d(y), axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(-1) / np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))


def score(
    task: str, truth: np.ndarray, predicted: np.ndarray, n_resamples: int = 2000, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:  # fmt: skip
    """AUROC (failure) or Spearman rho (steps) with a paired percentile-bootstrap interval."""
    statistic = _auroc if task == "failure" else _spearman
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    value = float(statistic(truth, predicted)[0])
    if len(truth) < 3 or math.isnan(value):
        return value, math.nan, math.nan
    result = stats.bootstrap(
        (truth, predicted), lambda a, b, axis=-1: np.nan_to_num(statistic(a, b), nan=0.5 if task == "failure" else 0.0),
        paired=True, vectorized=True, n_resamples=n_resamples, confidence_level=level,
        method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return value, float(result.confidence_interval.low), float(result.confidence_interval.high)


def features(frame: pd.DataFrame, names: Sequence[str], point: str) -> np.ndarray:
    """The early features ``<name>_<point>`` of every model (positive scales as logarithms).

    Two names are read as they are: ``lr`` (the log learning rate) and ``constant`` (zeros).
    """
    columns = []
    for name in names:
        if name in _STATIC:
            columns.append(_STATIC[name](frame))
            continue
        values = frame[f"{name}_{point}"].to_numpy(float)
        if name in LOG_FEATURES:
            values = np.log(np.maximum(np.abs(values), 1e-12))
        columns.append(values)
    return np.column_stack(columns)


def prediction_table(
    frame: pd.DataFrame, point: str = "tenth", n_resamples: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tasks with every feature set, scored on held-out configuration groups.

    Models without finite features at ``point`` (diverged before it) are left out and counted
    in the log. ``failure``: every model (label: not ``reached``); ``steps_to_criterion``: the
    models that reached the criterion (target: log steps).

    Returns:
        ``(table, predictions)``: rows ``task, features, metric, value, ci_low, ci_high,
        n_models``, and every model's held-out prediction per task and feature set.
    """
    all_names = sorted({n for names in FEATURE_SETS.values() for n in names})
    usable = frame[np.isfinite(features(frame, all_names, point)).all(1)]
    rows, predictions = [], []
    for task, metric in TASKS.items():
        data = usable if task == "failure" else usable[usable["status"] == "reached"]
        truth = ((data["status"] != "reached").to_numpy(float) if task == "failure"
                 else np.log(data["steps"].to_numpy(float)))  # fmt: skip
        for name, names in FEATURE_SETS.items():
            value, low, high, predicted = math.nan, math.nan, math.nan, np.full(len(data), math.nan)
            if len(data) >= 3 and len(set(truth)) > 1:
                predicted = held_out_predictions(features(data, names, point), truth,
                                                 data["config_group"].to_numpy(), task)  # fmt: skip
                value, low, high = score(task, truth, predicted, n_resamples, seed)
            rows.append({"task": task, "features": name, "metric": metric, "value": value,
                         "ci_low": low, "ci_high": high, "n_models": len(data)})  # fmt: skip
            predictions.append(pd.DataFrame({"model_id": data["model_id"].to_numpy(), "task": task,
                                             "features": name, "truth": truth,
                                             "predicted": predicted}))  # fmt: skip
    return pd.DataFrame(rows), pd.concat(predictions, ignore_index=True)


__all__ = [
    "FEATURE_SETS",
    "LeakError",
    "TASKS",
    "features",
    "held_out_predictions",
    "prediction_table",
    "score",
]
