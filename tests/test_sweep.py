"""The generalisation sweep's grid, training to the criterion and norm / margin / noise measures."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossgeom.sweep import (
    AXES,
    SweepError,
    SweepSettings,
    build_sweep_model,
    gradient_noise,
    job_groups,
    norm_measures,
    output_margin,
    path_norm,
    sweep_models,
    train_to_criterion,
    varied_axes,
)

GRID = {"dataset": ["mnist", "fashion_mnist"], "lr": [0.05, 0.2], "batch_size": [32],
        "width": [16], "depth": [1, 2], "weight_decay": [0.0], "train_size": [200, 400],
        "init_scale": [1.0]}  # fmt: skip


def test_the_grid_is_the_product_of_the_axes_times_the_seeds():
    models = sweep_models({"axes": GRID, "seeds": [0, 1]})
    assert len(models) == 2 * 2 * 2 * 2 * 2
    assert len({m.model_id for m in models}) == len(models)
    assert {m.config_group for m in models} == {m.model_id[:-3] for m in models}
    expected = list(itertools.product(*(GRID[a] for a in AXES), [0, 1]))
    assert [(*m.axes().values(), m.seed) for m in models] == expected
    assert models[0].model_id == "mnist_lr0.05_bs32_w16_d1_wd0_n200_init1_s0"
    assert varied_axes({"axes": GRID}) == ["dataset", "lr", "depth", "train_size"]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"lr": []}, "sweep.axes.lr has no values"),
        ({"depth": None}, "sweep.axes.depth has no values"),
        ({"momentum": [0.9]}, "sweep.axes.momentum is not an axis"),
        ({"width": [16, 16]}, "sweep.axes.width repeats a value"),
    ],
)
def test_bad_grids_name_the_key(change, message):
    with pytest.raises(SweepError, match=message):
        sweep_models({"axes": {**GRID, **change}, "seeds": [0]})


def test_seeds_are_required_and_distinct():
    for seeds in ([], [1, 1]):
        with pytest.raises(SweepError, match="sweep.seeds must be distinct"):
            sweep_models({"axes": GRID, "seeds": seeds})


def test_job_groups_cover_every_model_once_in_order():
    models = sweep_models({"axes": GRID, "seeds": [0, 1]})
    groups = job_groups(models, 5)
    assert list(groups) == [f"g{i:03d}" for i in range(7)]
    assert [m for group in groups.values() for m in group] == models
    assert max(len(g) for g in groups.values()) == 5
    with pytest.raises(SweepError, match="sweep.group_size must be at least 1"):
        job_groups(models, 0)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"stop_loss": 3.0}, "sweep.stop_loss: 3.0 can never mark a trained model"),
        ({"stop_loss": 0.0}, "sweep.stop_loss: 0.0 can never"),
        ({"stop_loss": 0.5, "divergence_loss": 0.4}, "sweep.divergence_loss: 0.4 must exceed"),
    ],
)
def test_criteria_that_can_never_hold_are_refused(options, message):
    with pytest.raises(SweepError, match=message):
        SweepSettings(**options)


def tiny_mlp(biases: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4, bias=biases), nn.ReLU(), nn.Linear(4, 2, bias=biases))


def test_path_norm_sums_squared_weight_products_over_every_path():
    model = tiny_mlp(biases=False)
    w1, w2 = model[0].weight.detach().double(), model[2].weight.detach().double()
    paths = sum(float(w2[k, j] ** 2 * w1[j, i] ** 2)
                for i, j, k in itertools.product(range(3), range(4), range(2)))  # fmt: skip
    assert path_norm(model) == pytest.approx(paths, rel=1e-12)
    biased = tiny_mlp(biases=True)
    w1, b1 = biased[0].weight.double(), biased[0].bias.double()
    w2, b2 = biased[2].weight.double(), biased[2].bias.double()
    hidden = w1.pow(2).sum(1) + b1.pow(2)  # the input of ones through squared parameters
    expected = float((w2.pow(2) @ hidden + b2.pow(2)).sum())
    assert path_norm(biased) == pytest.approx(expected, rel=1e-12)


def test_norm_measures_match_their_definitions():
    model = tiny_mlp(biases=True)
    initial = torch.cat([p.detach().flatten() for p in model.parameters()]) * 0.5
    measures = norm_measures(model, initial)
    weights = [model[0].weight.double(), model[2].weight.double()]
    assert measures["frobenius_sq"] == pytest.approx(sum(float((w**2).sum()) for w in weights))
    singular = [float(torch.linalg.svdvals(w)[0]) for w in weights]
    assert measures["spectral_product"] == pytest.approx(math.prod(s**2 for s in singular))
    everything = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    assert measures["distance_sq"] == pytest.approx(float((0.5 * everything).pow(2).sum()))


def test_output_margin_is_the_quantile_of_true_minus_best_other_logit():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.5], [1.0, 1.0, 4.0], [0.0, 5.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 1])
    margins = torch.tensor([2.0, 0.5, -3.0, 5.0], dtype=torch.float64)
    for q in (0.0, 0.1, 0.5, 1.0):
        assert output_margin(nn.Identity(), logits, labels, q) == pytest.approx(
            float(torch.quantile(margins, q))
        )


def test_gradient_noise_is_the_trace_of_the_per_sample_gradient_covariance():
    torch.manual_seed(1)
    model = tiny_mlp(biases=True).double()
    x, y = torch.randn(9, 3, dtype=torch.float64), torch.randint(0, 2, (9,))
    grads = []
    for i in range(9):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    g = torch.stack(grads)
    expected = float(torch.trace(torch.cov(g.T)))  # unbiased, n - 1
    assert gradient_noise(model, x, y, chunk_size=4) == pytest.approx(expected, rel=1e-10)


def blobs(n: int, seed: int = 0):
    """Two well separated Gaussian classes in 12 dimensions."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 12, generator=generator) * 0.5
    x[:, 0] += 3.0 * (2 * y - 1)
    return x, y


def spec(**options):
    values = {"dataset": "mnist", "lr": 0.05, "batch_size": 16, "width": 8, "depth": 1,
              "weight_decay": 0.0, "train_size": 64, "init_scale": 1.0, "seed": 0, **options}  # fmt: skip
    return sweep_models({"axes": {a: [values[a]] for a in AXES}, "seeds": [values["seed"]]})[0]


def test_training_stops_at_the_criterion_with_the_early_look_recorded():
    x, y = blobs(64)
    settings = SweepSettings(stop_loss=0.05, max_steps=2000, measure_size=64)
    run = train_to_criterion(spec(), x, y, 2, settings, log=lambda line: None)
    assert run.status == "reached" and run.reached
    loss = F.cross_entropy(run.model(x), y).item()
    assert loss <= 0.05
    assert run.steps == run.epochs * 4  # stopped at the end of an epoch of 4 minibatches
    assert set(run.early) == {"tenth", "epoch1"}
    early = run.early["epoch1"]
    assert early["stability_ratio"] == pytest.approx(early["eig1"] * 0.05 / (2 * 1.9))
    assert early["eig1"] > 0 and math.isfinite(early["trace"]) and early["grad_norm"] > 0
    # One more epoch of training would have been an epoch past the criterion: the previous
    # epoch's loss was above it (the run stopped at the first epoch that met it).
    again = train_to_criterion(spec(), x, y, 2, SweepSettings(
        stop_loss=0.05, max_steps=run.steps - 4, measure_size=64), log=lambda line: None)  # fmt: skip
    assert again.status == "not_reached"
    assert F.cross_entropy(again.model(x), y).item() > 0.05


def test_the_early_look_matches_the_exact_hessian_and_gradient():
    from test_hessian import exact_hessian

    from lossgeom.sweep import _early_look

    x, y = blobs(40)
    model = build_sweep_model(spec(width=5), 12, 2).double().eval()
    x = x.double()
    settings = SweepSettings(early_eig_tol=1e-8, eig_max_iter=200, early_trace_matvecs=200)
    look = _early_look(model, [(x, y)], 0.05, 0.9, settings, seed=0, loss_before=1.0, steps=4)
    hessian = exact_hessian(model, x, y)
    loss = F.cross_entropy(model(x), y)
    gradient = torch.autograd.grad(loss, list(model.parameters()))
    assert look["loss"] == pytest.approx(float(loss), rel=1e-12)
    assert look["loss_slope"] == pytest.approx((float(loss) - 1.0) / 4, rel=1e-12)
    assert look["grad_norm"] == pytest.approx(
        float(torch.cat([g.flatten() for g in gradient]).norm()), rel=1e-9
    )
    assert look["eig1"] == pytest.approx(float(torch.linalg.eigvalsh(hessian)[-1]), rel=1e-6)
    # Hutch++ with more products than the 77 parameters sketches the whole range: exact.
    assert look["trace"] == pytest.approx(float(torch.trace(hessian)), rel=1e-6)


def test_runs_that_blow_up_are_diverged_and_short_caps_not_reached():
    x, y = blobs(64)
    settings = SweepSettings(stop_loss=0.01, max_steps=200, measure_size=64)
    diverged = train_to_criterion(spec(lr=50.0, init_scale=5.0), x, y, 2, settings,
                                  log=lambda line: None)  # fmt: skip
    assert diverged.status == "diverged"
    capped = train_to_criterion(spec(lr=1e-4), x, y, 2, settings, log=lambda line: None)
    assert capped.status == "not_reached" and capped.steps == 200


def test_reparametrisation_keeps_the_function_and_moves_sharpness_not_the_path_norm():
    from test_bounds import small_settings

    from lossgeom.data import Dataset
    from lossgeom.sweep import MEASURES, reparametrisation_rows

    x, y = blobs(64)
    settings = SweepSettings(stop_loss=0.05, max_steps=500, measure_size=64, noise_size=16,
                             trace_matvecs=6, early_trace_matvecs=6)  # fmt: skip
    run = train_to_criterion(spec(width=6), x, y, 2, settings, log=lambda line: None)
    initial = run.initial.clone()
    rows = reparametrisation_rows(run, Dataset(x, y, x, y, name="blobs"), settings,
                                  small_settings(), [0.5, 1.0, 3.0], seed=0)  # fmt: skip
    assert torch.equal(run.initial, initial)  # every alpha starts from the run's own w0
    wide = {(r["alpha"], r["quantity"]): r["value"] for r in rows}
    assert {q for _, q in wide} == {"test_error", "train_error", "output_change", *MEASURES}
    unscaled = norm_measures(run.model, run.initial)
    assert wide[1.0, "distance_sq"] == pytest.approx(unscaled["distance_sq"], rel=1e-9)
    for alpha in (0.5, 3.0):
        assert wide[alpha, "test_error"] == wide[1.0, "test_error"]
        assert wide[alpha, "output_change"] < 1e-5
        assert wide[alpha, "path_norm"] == pytest.approx(wide[1.0, "path_norm"], rel=1e-5)
        assert wide[alpha, "params"] == wide[1.0, "params"]
        assert abs(wide[alpha, "eig1"] / wide[1.0, "eig1"] - 1) > 0.05  # sharpness is not
        assert abs(wide[alpha, "frobenius_sq"] / wide[1.0, "frobenius_sq"] - 1) > 0.05
