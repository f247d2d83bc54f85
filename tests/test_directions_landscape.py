"""Directions (report's and filter-normalised) and batched slice evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossgeom.directions import (
    filter_normalized_direction,
    filter_norms,
    random_direction,
    slice_directions,
)
from lossgeom.landscape import (
    evaluate_slice,
    evaluate_slice_reference,
    grid_1d,
    grid_2d,
    slice_records,
    slice_records_by_kind,
)
from lossgeom.models import build_model, flat_parameters
from lossgeom.training import evaluate


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return build_model({"name": "mlp", "input_dim": 20, "hidden": [16, 8], "num_classes": 5})


def test_filter_normalised_direction_has_the_weights_filter_norms(mlp):
    d = filter_normalized_direction(mlp, seed=3)
    weights = flat_parameters(mlp)
    for d_norm, w_norm in zip(filter_norms(mlp, d), filter_norms(mlp, weights), strict=True):
        torch.testing.assert_close(d_norm, w_norm, rtol=1e-5, atol=0)
    offset = 0
    for p in mlp.parameters():  # biases are ignored (zero) by default
        if p.ndim == 1:
            assert torch.count_nonzero(d[offset : offset + p.numel()]) == 0
        offset += p.numel()
    with_bias = filter_normalized_direction(mlp, seed=3, include_bias=True)
    assert torch.count_nonzero(with_bias) == with_bias.numel()


def test_filter_normalisation_covers_convolution_filters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    d = filter_normalized_direction(model, seed=0)
    conv_weight = model[0].weight.detach()
    d_conv = d[: conv_weight.numel()].view_as(conv_weight)
    torch.testing.assert_close(d_conv.flatten(1).norm(dim=1), conv_weight.flatten(1).norm(dim=1))


def test_random_direction_is_reproducible_and_tensorwise_unit(mlp):
    d = random_direction(mlp, seed=5)
    assert torch.equal(d, random_direction(mlp, seed=5))
    assert not torch.equal(d, random_direction(mlp, seed=6))
    offset = 0
    for p in mlp.parameters():
        assert float(d[offset : offset + p.numel()].norm()) == pytest.approx(1.0, rel=1e-5)
        offset += p.numel()


def test_grids():
    assert grid_1d(5, 2.0).tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    g = grid_2d(3, 1.0)
    assert g.shape == (9, 2) and g[4].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="at least 2"):
        grid_1d(1, 1.0)
    with pytest.raises(ValueError, match="span"):
        grid_2d(3, -1.0)


@pytest.mark.parametrize(
    "residual,norm", [(False, "none"), (True, "layernorm"), (False, "batchnorm")]
)
def test_fast_slice_matches_per_point_loop(residual, norm):
    torch.manual_seed(1)
    model = build_model(
        {
            "name": "mlp",
            "input_dim": 30,
            "hidden": [24, 24],
            "num_classes": 4,
            "residual": residual,
            "norm": norm,
        }
    )
    x, y = torch.randn(333, 30), torch.randint(0, 4, (333,))
    if norm == "batchnorm":
        model.train()
        model(x)
    model.train()
    directions = [filter_normalized_direction(model, 0), random_direction(model, 1)]
    points = grid_2d(7, 1.0)
    before = flat_parameters(model)
    loss, acc = evaluate_slice(model, directions, points, x, y, chunk_size=100)
    ref_loss, ref_acc = evaluate_slice_reference(model, directions, points, x, y)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acc, ref_acc, atol=1e-9)
    assert torch.equal(flat_parameters(model), before) and model.training
    centre = evaluate(model, x, y)
    assert loss[24] == pytest.approx(centre[0], rel=1e-5) and acc[24] == pytest.approx(centre[1])


def test_generic_models_use_the_per_point_path():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(50, 12), torch.randint(0, 3, (50,))
    directions = [random_direction(model, 0)]
    points = grid_1d(5, 0.5)[:, None]
    loss, _ = evaluate_slice(model, directions, points, x, y)
    ref, _ = evaluate_slice_reference(model, directions, points, x, y)
    np.testing.assert_allclose(loss, ref, rtol=1e-5)


def test_slice_along_a_quadratic_direction_has_the_hessian_curvature():
    """Along a unit eigenvector u, L(theta + c u) ~ L + c^2 lambda / 2 near c = 0."""
    from lossgeom import hessian

    torch.manual_seed(0)
    model = build_model({"name": "mlp", "input_dim": 6, "hidden": [5], "num_classes": 3}).double()
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.randint(0, 3, (64,))
    top = hessian.top_eigenvalues(model, F.cross_entropy, [(x, y)], k=1, tol=1e-8)
    h = 1e-3
    loss, _ = evaluate_slice(model, [top.vectors[0]], np.array([[-h], [0.0], [h]]), x, y)
    second_difference = (loss[0] - 2 * loss[1] + loss[2]) / h**2
    assert second_difference == pytest.approx(float(top.values[0]), rel=1e-3)


def test_slice_directions_per_kind(mlp):
    pair, seeds = slice_directions("random", mlp, 4)
    assert seeds == [4, 5] and torch.equal(pair[1], random_direction(mlp, 5))
    pair, seeds = slice_directions("filter", mlp, 4, include_bias=True)
    assert torch.equal(pair[0], filter_normalized_direction(mlp, 4, True))
    vectors = torch.randn(3, flat_parameters(mlp).numel())
    pair, seeds = slice_directions("hessian", mlp, 4, eigenvectors=vectors)
    assert seeds is None and torch.equal(pair[1], vectors[1])
    with pytest.raises(ValueError, match="fewer than two Hessian eigenvectors"):
        slice_directions("hessian", mlp, 4, eigenvectors=vectors[:1])
    with pytest.raises(ValueError, match="unknown"):
        slice_directions("diagonal", mlp, 4)


def test_slice_records_are_the_slices_on_every_split(mlp):
    x, y = torch.randn(40, 20), torch.randint(0, 5, (40,))
    directions, _ = slice_directions("random", mlp, 0)
    records = slice_records(mlp, directions, 3, 5, 0.5, {"train": (x, y), "test": (x[:10], y[:10])})
    assert [(r["slice"], r["split"], r["metric"]) for r in records][:4] == [
        ("2d", "train", "loss"), ("2d", "train", "accuracy"), ("2d", "test", "loss"),
        ("2d", "test", "accuracy")]  # fmt: skip
    assert len(records) == 3 * 2 * 2 and len(records[0]["value"]) == 9
    profile = next(r for r in records if r["slice"] == "1d_beta" and r["split"] == "train")
    assert np.array_equal(profile["alpha"], np.zeros(5)) and np.allclose(
        profile["beta"], grid_1d(5, 0.5)
    )
    loss, _ = evaluate_slice(
        mlp, directions, np.stack([profile["alpha"], profile["beta"]], 1), x, y
    )
    assert np.array_equal(profile["value"], loss)


@pytest.mark.parametrize(
    "spec",
    [
        {"hidden": [16, 8]},
        {"hidden": [8, 8], "residual": True, "activation": "tanh"},
        {"hidden": [8], "norm": "layernorm"},
        {"hidden": []},
    ],
)
def test_all_kinds_in_one_pass_equal_separate_slices_bitwise(spec):
    """One pass over every kind's slices (shared first-layer products, the direct tail of
    plain MLPs) writes the values that a slice per kind through functional_call wrote."""
    torch.manual_seed(1)
    model = build_model({"name": "mlp", "input_dim": 20, "num_classes": 5, **spec})
    x, y = torch.randn(50, 20), torch.randint(0, 5, (50,))
    pairs = {kind: slice_directions(kind, model, 3)[0] for kind in ("random", "filter")}
    splits = {"train": (x, y), "test": (x[:7], y[:7])}
    together = slice_records_by_kind(model, pairs, 3, 4, 0.5, splits, chunk_size=16)
    for kind, directions in pairs.items():
        alone = slice_records(model, directions, 3, 4, 0.5, splits, chunk_size=16)
        assert len(together[kind]) == len(alone) == 12
        for a, b in zip(together[kind], alone, strict=True):
            assert {k: a[k] for k in ("slice", "split", "metric")} == {
                k: b[k] for k in ("slice", "split", "metric")
            }
            assert np.array_equal(a["value"], b["value"]) and np.array_equal(a["beta"], b["beta"])
        for record in alone:  # and both equal the per-point loop of the report
            if record["slice"] == "2d" and record["metric"] == "loss":
                x_split, y_split = splits[record["split"]]
                points = np.stack([record["alpha"], record["beta"]], 1)
                reference, _ = evaluate_slice_reference(model, directions, points, x_split, y_split)
                np.testing.assert_allclose(record["value"], reference, rtol=1e-5)


def test_the_batched_tail_is_the_models_forward_per_point():
    from torch.func import functional_call

    from lossgeom.landscape import _mlp_tail_batched, _plain_tail

    for spec in ({"hidden": [16, 8]}, {"hidden": [8, 8], "residual": True, "activation": "gelu"},
                 {"hidden": [6]}):  # fmt: skip
        torch.manual_seed(2)
        model = build_model({"name": "mlp", "input_dim": 20, "num_classes": 5, **spec}).eval()
        assert _plain_tail(model)
        points = [{n: p.detach() + 0.1 * k for n, p in model.named_parameters()}
                  for k in range(3)]  # fmt: skip
        z = torch.randn(3, 30, spec["hidden"][0])
        stacked = {n: torch.stack([point[n] for point in points]) for n in points[0]}
        logits = _mlp_tail_batched(model, stacked, z.clone())
        for k, point in enumerate(points):
            expected = functional_call(model, point, (None,), {"first_preactivation": z[k].clone()})
            torch.testing.assert_close(logits[k], expected, rtol=1e-6, atol=1e-6)
    assert not _plain_tail(build_model({"name": "mlp", "input_dim": 20, "norm": "batchnorm"}))


def test_slice_plan_walks_grid_rows_and_profiles_in_blocks():
    from lossgeom.landscape import BLOCK_POINTS, _slice_plan

    varying, runs = _slice_plan(grid_2d(3, 1.0))  # alpha slowest: rows of fixed alpha
    assert varying == 1 and runs == [[(0, 3)], [(3, 6)], [(6, 9)]]
    axis = grid_1d(2 * BLOCK_POINTS + 1, 0.5)
    profile = np.stack([np.zeros_like(axis), axis], 1)  # beta varies, alpha fixed at 0
    varying, runs = _slice_plan(profile[:, ::-1].copy())  # now alpha varies
    assert varying == 0
    assert runs == [[(0, BLOCK_POINTS), (BLOCK_POINTS, 2 * BLOCK_POINTS),
                     (2 * BLOCK_POINTS, 2 * BLOCK_POINTS + 1)]]  # fmt: skip
    assert _slice_plan(np.zeros((2, 0))) == (None, [[(0, 2)]])
    scattered = np.array([[0.1, 0.2], [0.3, 0.4], [0.3, 0.5]])  # no shared coefficients
    assert _slice_plan(scattered) == (1, [[(0, 1)], [(1, 3)]])


@pytest.mark.parametrize("points", [
    grid_1d(11, 0.7)[:, None],                                        # a 1D slice
    np.stack([grid_1d(11, 0.7), np.zeros(11)], 1),                   # a profile in a 2D plane
    np.random.default_rng(0).normal(size=(13, 2)),                    # points with no structure
    np.stack([np.linspace(0, 1, 9), np.linspace(0, 1, 9) ** 2], 1),  # a Bezier curve's (t, t^2)
])  # fmt: skip
def test_blocked_plain_mlp_slices_match_the_per_point_loop(points):
    torch.manual_seed(3)
    model = build_model({"name": "mlp", "input_dim": 20, "hidden": [32], "num_classes": 5})
    x, y = torch.randn(90, 20), torch.randint(0, 5, (90,))
    directions = [random_direction(model, s) for s in range(points.shape[1])]
    loss, acc = evaluate_slice(model, directions, points, x, y, chunk_size=40)
    ref_loss, ref_acc = evaluate_slice_reference(model, directions, points, x, y)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acc, ref_acc, atol=1e-9)
