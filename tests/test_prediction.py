"""Held-out prediction of optimisation difficulty: no leakage, scores against references."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from lossgeom.prediction import (
    FEATURE_SETS,
    LeakError,
    held_out_predictions,
    prediction_table,
    score,
)


class Spy:
    """Records the groups (column 0 of x) each fit saw; predicts 0.5."""

    seen: list[set] = []

    def fit(self, x, y):
        Spy.seen.append(set(x[:, 0].tolist()))
        return self

    def predict_proba(self, x):
        return np.full((len(x), 2), 0.5)


def test_no_fold_trains_on_the_group_it_predicts():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(6), 3)
    x = np.column_stack([groups, rng.normal(size=18)])
    y = rng.integers(0, 2, 18)
    Spy.seen = []
    held_out_predictions(x, y, groups, "failure", estimator=Spy)
    assert len(Spy.seen) == 6
    for held_out, seen in zip(range(6), Spy.seen, strict=True):
        assert held_out not in seen and seen == set(range(6)) - {held_out}


def test_a_splitter_that_leaks_is_caught(monkeypatch):
    import sklearn.model_selection as selection

    class Leaky:
        def split(self, x, y, groups):
            everything = np.arange(len(y))
            yield everything, everything[:2]

    monkeypatch.setattr(selection, "LeaveOneGroupOut", Leaky)
    with pytest.raises(LeakError, match="trains on its own group"):
        held_out_predictions(
            np.zeros((4, 1)), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]), "failure"
        )


def test_a_memoriser_scores_chance_on_held_out_groups():
    """Labels are a property of the group only: a leak would let 1-NN score near 1."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(40), 2)
    labels = np.repeat(rng.integers(0, 2, 40), 2)
    x = (groups + rng.normal(scale=0.01, size=80))[:, None]
    predicted = held_out_predictions(x, labels, groups, "failure",
                                     estimator=lambda: KNeighborsClassifier(1))  # fmt: skip
    assert abs(roc_auc_score(labels, predicted) - 0.5) < 0.2


def test_scores_match_sklearn_and_scipy():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 50)
    scores = labels + rng.normal(size=50)
    scores[:5] = scores[5]  # ties count half
    auc, low, high = score("failure", labels, scores, n_resamples=500)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert low < auc < high
    y, z = rng.normal(size=30), rng.normal(size=30)
    rho, low, high = score("steps_to_criterion", y, y + z, n_resamples=500)
    assert rho == pytest.approx(stats.spearmanr(y, y + z).statistic, abs=1e-12)
    assert low < rho < high


def synthetic_sweep(n_groups: int = 30, seed: int = 0) -> pd.DataFrame:
    """Failure and steps driven by the stability ratio; the loss carries no signal."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in range(n_groups):
        ratio = rng.uniform(0.1, 3.0)
        for s in range(2):
            noisy = ratio * np.exp(rng.normal(scale=0.05))
            reached = noisy < 1.5
            rows.append({"model_id": f"c{group}_s{s}", "config_group": f"c{group}", "lr": 0.1,
                         "status": "reached" if reached else "not_reached",
                         "steps": int(100 * np.exp(noisy)) if reached else 3000,
                         "loss_tenth": rng.uniform(1, 2), "loss_slope_tenth": rng.normal(),
                         "stability_ratio_tenth": noisy, "eig1_tenth": noisy * 10,
                         "trace_tenth": rng.uniform(10, 20), "grad_norm_tenth": rng.uniform(1, 2)})  # fmt: skip
    return pd.DataFrame(rows)


def test_curvature_that_drives_difficulty_is_found_and_the_loss_is_not():
    table, predictions = prediction_table(synthetic_sweep(), "tenth", n_resamples=300)
    value = table.set_index(["task", "features"])["value"]
    assert value["failure", "early_curvature"] > 0.9
    assert abs(value["failure", "early_loss"] - 0.5) < 0.25
    assert value["steps_to_criterion", "early_curvature"] > 0.8
    assert set(table["features"]) == set(FEATURE_SETS)
    assert predictions["predicted"].notna().all()


def test_the_intercept_only_reference_falls_below_chance_under_leave_one_group_out():
    """Why the table carries a "none" row: holding a group out biases an uninformative fit."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), 2)
    labels = np.repeat(rng.integers(0, 2, 30), 2)
    predicted = held_out_predictions(np.zeros((60, 1)), labels, groups, "failure")
    assert roc_auc_score(labels, predicted) < 0.2
