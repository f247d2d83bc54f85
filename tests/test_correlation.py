"""Rank correlations of measures (lossgeom.correlation) and Dinh et al.'s rescaling."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from test_hessian import exact_hessian

from lossgeom.correlation import _vectorised_tau, granulated_tau, kendall_tau, tau_interval
from lossgeom.hessian import top_eigenvalues
from lossgeom.models import build_model, rescale_layer


def brute_force_tau_b(x, y) -> float:
    """tau-b by counting every pair: (concordant - discordant) / sqrt(untied x * untied y)."""
    concordant = discordant = untied_x = untied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        untied_x += sx != 0
        untied_y += sy != 0
        concordant += sx * sy > 0
        discordant += sx * sy < 0
    return (concordant - discordant) / math.sqrt(untied_x * untied_y)


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_matches_scipy_and_a_pair_count(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=12).astype(float)  # ties on both sides
    y = x + rng.integers(-3, 4, size=12)
    expected = brute_force_tau_b(x, y)
    assert kendall_tau(x, y) == pytest.approx(expected, abs=1e-12)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert _vectorised_tau(x, y)[0] == pytest.approx(expected, abs=1e-12)
    batch = np.stack([x, y[::-1], -x])  # one row per resample
    assert _vectorised_tau(batch, np.stack([y, y, y])) == pytest.approx(
        [brute_force_tau_b(x, y), brute_force_tau_b(y[::-1], y), brute_force_tau_b(-x, y)]
    )


def test_kendall_tau_skips_missing_values_and_is_nan_without_ordered_pairs():
    assert kendall_tau([1, 2, np.nan, 4], [1, 2, 3, np.inf]) == 1.0  # two finite pairs left
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1.0], [2.0]))
    with pytest.raises(ValueError, match="one length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_granulated_tau_averages_within_groups_that_differ_in_one_axis():
    grid = pd.DataFrame(
        [(lr, width, seed) for lr in (0.01, 0.1) for width in (32, 64, 128) for seed in (0, 1)],
        columns=["lr", "width", "seed"],
    )
    rng = np.random.default_rng(0)
    grid["gap"] = rng.normal(size=len(grid))
    # The measure follows the gap along lr but runs against it along width.
    grid["measure"] = rng.normal(size=len(grid))
    result = granulated_tau(grid, "measure", "gap", ["lr", "width", "seed"])
    for axis in ("lr", "width", "seed"):
        others = [a for a in ("lr", "width", "seed") if a != axis]
        taus = [
            brute_force_tau_b(g.measure.to_numpy(), g.gap.to_numpy())
            for _, g in grid.groupby(others)
        ]
        assert result.axes[axis]["tau"] == pytest.approx(np.mean(taus), abs=1e-12)
        assert result.axes[axis]["n_groups"] == len(taus)
        size = grid[axis].nunique()
        assert result.axes[axis]["n_pairs"] == len(taus) * size * (size - 1) // 2
    assert result.psi == pytest.approx(np.mean([v["tau"] for v in result.axes.values()]))
    with pytest.raises(KeyError, match="depth"):
        granulated_tau(grid, "measure", "gap", ["depth"])


def test_the_bootstrap_interval_covers_the_true_tau_at_its_nominal_rate():
    # Bivariate normal with correlation rho: tau = (2 / pi) arcsin(rho) (Kendall 1938).
    rho, n, replicates = 0.6, 40, 200
    true_tau = 2 / math.pi * math.asin(rho)
    rng = np.random.default_rng(1)
    covered = 0
    for r in range(replicates):
        x, y = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n).T
        _, low, high = tau_interval(x, y, n_resamples=500, seed=r)
        covered += low <= true_tau <= high
    # Nominal 95%; a percentile interval of tau at n = 40 covers about 93% (binomial sd 1.7%).
    assert 0.89 <= covered / replicates <= 0.99


def test_the_interval_is_nan_with_too_few_models():
    tau, low, high = tau_interval([1, 2], [2, 3])
    assert tau == 1.0 and math.isnan(low) and math.isnan(high)


def two_layer_relu(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model({"name": "mlp", "input_dim": 6, "hidden": [5], "num_classes": 3})
    model = model.double()
    x = torch.randn(40, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    return model, x, y


@pytest.mark.parametrize("alpha", [0.1, 0.5, 3.0, 10.0])
def test_rescaling_keeps_the_function_and_moves_the_hessian_as_predicted(alpha):
    model, x, y = two_layer_relu()
    before = model(x)
    hessian = exact_hessian(model, x, y)
    sizes = [p.numel() for p in model.parameters()]  # W1, b1, W2, b2
    scale = torch.cat([torch.full((n,), f, dtype=torch.float64)
                       for n, f in zip(sizes, [1 / alpha, 1 / alpha, alpha, 1.0], strict=True)])  # fmt: skip
    predicted = scale[:, None] * hessian * scale[None, :]  # S H S
    rescale_layer(model, 0, alpha)
    assert torch.allclose(model(x), before, atol=1e-5 * before.abs().max().item(), rtol=0)
    exact_after = exact_hessian(model, x, y)
    assert torch.allclose(exact_after, predicted, atol=1e-9 * predicted.abs().max().item())
    batches = [(x, y)]
    measured = top_eigenvalues(model, F.cross_entropy, batches, k=1, tol=1e-10).values[0].item()
    expected = torch.linalg.eigvalsh(predicted)[-1].item()
    assert measured == pytest.approx(expected, rel=1e-6)
    # The trace moves by the predicted amount too: tr(S H S) = sum_i s_i^2 H_ii.
    assert torch.diagonal(exact_after).sum().item() == pytest.approx(
        (scale**2 * torch.diagonal(hessian)).sum().item(), rel=1e-9
    )
    assert abs(measured - torch.linalg.eigvalsh(hessian)[-1].item()) > 1e-3  # it did move


def test_rescaling_refuses_networks_whose_function_it_would_change():
    model = build_model({"name": "mlp", "input_dim": 6, "hidden": [5], "activation": "tanh"})
    with pytest.raises(ValueError, match="not positively homogeneous"):
        rescale_layer(model, 0, 2.0)
    model = build_model({"name": "mlp", "input_dim": 6, "hidden": [5, 5], "residual": True})
    with pytest.raises(ValueError, match="skips or normalisation"):
        rescale_layer(model, 0, 2.0)
    model = build_model({"name": "mlp", "input_dim": 6, "hidden": [5]})
    with pytest.raises(ValueError, match="next layer"):
        rescale_layer(model, 1, 2.0)
    with pytest.raises(ValueError, match="positive"):
        rescale_layer(model, 0, 0.0)


def test_measure_correlations_match_tau_and_psi_and_fix_the_seed():
    from lossgeom.correlation import granulated_tau, kendall_tau, measure_correlations

    rng = np.random.default_rng(3)
    frame = pd.DataFrame([{"lr": lr, "width": w, "seed": s} for lr in (0.1, 0.5)
                          for w in (8, 16, 32) for s in (0, 1)])  # fmt: skip
    frame["gap"] = frame.lr + 0.01 * frame.width + rng.normal(scale=0.05, size=len(frame))
    frame["m"] = frame.gap + rng.normal(scale=0.05, size=len(frame))
    overall, by_axis = measure_correlations(frame, ["m"], ["gap"], ["lr", "width"],
                                            fixed=["seed"], n_resamples=200)  # fmt: skip
    row = overall.iloc[0]
    assert row.tau == pytest.approx(kendall_tau(frame.m, frame.gap))
    assert row.tau_ci_low <= row.tau <= row.tau_ci_high and row.n_models == 12
    assert row.psi == pytest.approx(
        granulated_tau(frame, "m", "gap", ["lr", "width"], ["seed"]).psi
    )
    pairs = by_axis.set_index("axis").n_pairs
    assert pairs["lr"] == 6 * 1  # 3 widths x 2 seeds, each group 2 models: one pair
    assert pairs["width"] == 4 * 3  # 2 lrs x 2 seeds, each group 3 models: three pairs


def test_a_measure_constant_along_an_axis_scores_zero_there():
    """Like a parameter count that only depth moves: it cannot rank models of other axes."""
    grid = pd.DataFrame([(d, lr, s) for d in (1, 2) for lr in (0.1, 0.5) for s in (0, 1)],
                        columns=["depth", "lr", "seed"])  # fmt: skip
    grid["gap"] = grid.depth + 0.3 * grid.lr + 0.01 * grid.seed
    grid["params"] = grid.depth * 100.0
    result = granulated_tau(grid, "params", "gap", ["depth", "lr"], fixed=["seed"])
    assert result.axes["depth"]["tau"] == 1.0
    assert result.axes["lr"]["tau"] == 0.0 and result.axes["lr"]["n_groups"] == 4
    assert result.psi == 0.5
    grid["gap"] = grid.depth.astype(float)  # the target constant along lr: nothing to order
    assert math.isnan(
        granulated_tau(grid, "params", "gap", ["depth", "lr"], ["seed"]).axes["lr"]["tau"]
    )
