"""Bounds and measures against closed forms, brute force and a toy model with a known answer."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import optimize, stats
from torch import nn

from lossgeom import bounds
from lossgeom.bounds import BoundError
from lossgeom.models import MLP, build_model, flat_parameters
from lossgeom.posterior import (
    GaussianPosterior,
    monte_carlo_error,
    optimal_prior_sigma,
    perturbed_accuracy,
    train_posterior,
)
from tests.conftest import REPO


def brute_kl(q: float, p: float) -> float:
    """kl(q || p) straight from the definition, with numpy's xlogy."""
    from scipy.special import xlogy

    return float(xlogy(q, q) - xlogy(q, p) + xlogy(1 - q, 1 - q) - xlogy(1 - q, 1 - p))


def brute_inverse(q: float, c: float) -> float:
    """The upper kl inverse by Brent's method on kl(q || p) - c over (q, 1)."""
    if c == 0:
        return q
    return optimize.brentq(lambda p: brute_kl(q, p) - c, q, 1 - 1e-300, xtol=1e-15)


# --- the binary kl and its inverse ---------------------------------------------------------


def test_kl_closed_forms():
    assert bounds.kl_bernoulli(0.5, 0.25) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), abs=1e-15)
    assert bounds.kl_bernoulli(0.0, 0.3) == pytest.approx(-math.log(0.7), abs=1e-15)
    assert bounds.kl_bernoulli(1.0, 0.3) == pytest.approx(-math.log(0.3), abs=1e-15)
    assert bounds.kl_bernoulli(0.2, 0.2) == 0.0
    assert bounds.kl_bernoulli(0.1, 1.0) == math.inf and bounds.kl_bernoulli(0.1, 0.0) == math.inf
    for q, p in [(0.01, 0.3), (0.3, 0.01), (0.999, 0.5), (0.05, 0.0501)]:
        assert bounds.kl_bernoulli(q, p) == pytest.approx(brute_kl(q, p), abs=1e-12)


@pytest.mark.parametrize("q", [0.0, 1e-4, 0.02, 0.3, 0.9, 0.999])
@pytest.mark.parametrize("c", [0.0, 1e-6, 1e-3, 0.05, 0.7, 5.0])
def test_kl_inverse_matches_brute_force(q, c):
    value = bounds.kl_inverse_upper(q, c)
    assert value == pytest.approx(brute_inverse(q, c), abs=1e-9)
    assert value >= q
    if value < 1 - 1e-9:  # on the boundary: kl(q || p*) = c
        assert bounds.kl_bernoulli(q, value) == pytest.approx(c, abs=1e-8)


def test_kl_inverse_closed_form_at_zero_error():
    for c in (1e-5, 0.01, 0.3, 2.0):
        assert bounds.kl_inverse_upper(0.0, c) == pytest.approx(1 - math.exp(-c), abs=1e-11)


def test_kl_inverse_is_monotone_in_both_arguments():
    qs = np.linspace(0, 0.99, 60)
    cs = np.geomspace(1e-6, 3, 60)
    by_q = [bounds.kl_inverse_upper(float(q), 0.05) for q in qs]
    by_c = [bounds.kl_inverse_upper(0.03, float(c)) for c in cs]
    assert all(b > a for a, b in zip(by_q, by_q[1:], strict=False))
    assert all(b > a for a, b in zip(by_c, by_c[1:], strict=False))


# --- the certificate chains every step ---------------------------------------------------------


def test_certificate_applies_sample_convergence_and_union_bound():
    mc, m, kl, n, delta, delta_prime, grid = 0.03, 1000, 250.0, 30000, 0.025, 0.01, 21
    cert = bounds.certify(mc, m, kl, n, delta, delta_prime, grid)
    # Each step recomputed independently by brute force.
    empirical = brute_inverse(mc, math.log(2 / delta_prime) / m)
    budget = (kl + math.log(2 * math.sqrt(n) * grid / delta)) / n
    assert cert.empirical_bound == pytest.approx(empirical, abs=1e-9)
    assert cert.budget == pytest.approx(budget, rel=1e-14)
    assert cert.value == pytest.approx(brute_inverse(empirical, budget), abs=1e-9)
    assert cert.confidence == pytest.approx(1 - delta - delta_prime)
    # Dropping the sample-convergence step (using the raw estimate) gives a smaller number...
    without_mc_step = brute_inverse(mc, budget)
    assert cert.value > without_mc_step + 1e-3
    # ...as does dropping the union bound over the grid of prior scales.
    without_union = brute_inverse(empirical, (kl + math.log(2 * math.sqrt(n) / delta)) / n)
    assert cert.value > without_union + 1e-5
    # More draws tighten the Monte-Carlo step; more priors loosen the union bound.
    assert bounds.certify(mc, 10 * m, kl, n, delta, delta_prime, grid).value < cert.value
    assert bounds.certify(mc, m, kl, n, delta, delta_prime, 10 * grid).value > cert.value


def test_certificate_is_at_least_the_monte_carlo_error_and_never_clipped():
    cert = bounds.certify(0.5, 10, 1e6, 100, 0.025, 0.01, 5)
    assert cert.value == pytest.approx(1.0, abs=1e-9)  # vacuous, reported as computed
    for mc in (0.0, 0.01, 0.2):
        assert bounds.certify(mc, 100, 10.0, 1000, 0.05, 0.01).value >= mc


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": -0.1}, "delta"),
        ({"delta_prime": 1.5}, "delta_prime"),
        ({"trials": 0}, "trials"),
        ({"trials": 2.5}, "trials"),
        ({"n": 0}, "n"),
        ({"kl": -1.0}, "KL"),
        ({"mc_error": 1.2}, "Monte-Carlo error"),
        ({"grid_size": 0}, "grid_size"),
    ],
)
def test_certificate_rejects_bad_input_by_name(kwargs, name):
    arguments = {"mc_error": 0.1, "trials": 10, "kl": 1.0, "n": 100, "delta": 0.05, "delta_prime": 0.01,
                 "grid_size": 1, **kwargs}
    with pytest.raises(BoundError, match=name.split(" ")[0]):
        bounds.certify(**arguments)


# --- Gaussians ---------------------------------------------------------------------------------


def test_kl_between_diagonal_gaussians_against_closed_forms():
    torch.manual_seed(0)
    mq, mp = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    sq, sp = torch.rand(50, dtype=torch.float64) + 0.1, torch.rand(50, dtype=torch.float64) + 0.1
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mq, sq),
                                                  torch.distributions.Normal(mp, sp)).sum()
    assert float(bounds.kl_diagonal_gaussians(mq, sq, mp, sp)) == pytest.approx(float(reference), rel=1e-12)
    # Equal scales: the KL is the squared distance over 2 sigma^2 (the centred certificate's KL).
    s = 0.07
    value = bounds.kl_diagonal_gaussians(mq, torch.full_like(mq, s), mp, s)
    assert float(value) == pytest.approx(float((mq - mp).pow(2).sum()) / (2 * s**2), rel=1e-12)
    # Isotropic prior, closed form per coordinate.
    k = mq.numel()
    closed = float(torch.log(torch.tensor(0.5) / sq).sum() + ((sq**2 + (mq - mp) ** 2) / (2 * 0.25)).sum() - k / 2)
    assert float(bounds.kl_diagonal_gaussians(mq, sq, mp, 0.5)) == pytest.approx(closed, rel=1e-12)
    with pytest.raises(BoundError):
        bounds.kl_diagonal_gaussians(mq, -sq, mp, 0.5)


def test_posterior_kl_and_the_optimal_prior_scale():
    model = MLP(input_dim=5, hidden=[4], num_classes=3).double()
    posterior = GaussianPosterior(model, 0.02)
    prior_mean = torch.zeros_like(posterior.flat_mean())
    with torch.no_grad():
        reference = bounds.kl_diagonal_gaussians(posterior.flat_mean(), posterior.flat_sigma(), prior_mean, 0.3)
        kl = float(posterior.kl(prior_mean, 0.3))
    assert kl == pytest.approx(float(reference), rel=1e-12)
    assert torch.allclose(posterior.flat_sigma(), torch.full_like(prior_mean, 0.02))
    best = float(optimal_prior_sigma(posterior, prior_mean))
    with torch.no_grad():
        scan = [float(posterior.kl(prior_mean, best * f)) for f in (0.9, 0.99, 1.0, 1.01, 1.1)]
    assert scan[2] == min(scan)


def test_scale_grid_and_nearest_scale():
    grid = bounds.scale_grid(1e-4, 1.0, 21)
    assert grid[0] == 1.0 and grid[-1] == pytest.approx(1e-4, rel=1e-12) and len(grid) == 21
    assert np.allclose(np.diff(np.log10(grid)), -0.2)
    assert bounds.nearest_scale(grid, 0.0035) == pytest.approx(10**-2.4)
    with pytest.raises(BoundError):
        bounds.scale_grid(1.0, 0.1, 5)


def test_posterior_refuses_layers_it_cannot_sample():
    with pytest.raises(BoundError, match="BatchNorm"):
        GaussianPosterior(build_model({"name": "mlp", "hidden": [8], "norm": "batchnorm"}), 0.01)
    layer_norm = GaussianPosterior(build_model({"name": "mlp", "hidden": [8], "norm": "layernorm"}), 0.01)
    assert layer_norm(torch.randn(3, 784)).shape == (3, 10)


def explicit_samples(model: MLP, sigma: float, x: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """Logits of ``x`` under ``draws`` explicitly sampled weight sets (one per draw)."""
    g = torch.Generator().manual_seed(seed)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sample(name):
        w = params[name]
        return w + sigma * torch.randn((draws, *w.shape), generator=g, dtype=w.dtype)

    w1, b1, w2, b2 = (sample(n) for n in ("input_layer.weight", "input_layer.bias", "output_layer.weight",
                                          "output_layer.bias"))
    h = torch.relu(torch.einsum("dij,nj->dni", w1, x) + b1[:, None])
    return torch.einsum("dij,dnj->dni", w2, h) + b2[:, None]


def test_local_reparameterisation_matches_weight_sampling():
    torch.manual_seed(1)
    model = MLP(input_dim=3, hidden=[4], num_classes=2).double()
    posterior = GaussianPosterior(model, 0.4)
    x = torch.randn(1, 3, dtype=torch.float64)
    posterior.generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        local = posterior(x.expand(20000, 3))
    explicit = explicit_samples(model, 0.4, x, 20000, seed=3)[:, 0]
    for k in range(2):
        result = stats.ks_2samp(local[:, k].numpy(), explicit[:, k].numpy())
        assert result.pvalue > 1e-3, (k, result)
    assert float(local[:, 0].std()) == pytest.approx(float(explicit[:, 0].std()), rel=0.05)


def test_monte_carlo_error_matches_weight_sampling_and_is_reproducible():
    torch.manual_seed(4)
    model = MLP(input_dim=3, hidden=[6], num_classes=3).double()
    x = torch.randn(60, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (60,))
    posterior = GaussianPosterior(model, 0.5)
    mc = monte_carlo_error(posterior, x, y, m=400, seed=7, chunk_size=16)  # chunks share a draw's noise
    explicit = explicit_samples(model, 0.5, x, 4000, seed=8)
    reference = float((explicit.argmax(-1) != y).double().mean())
    assert mc.mean == pytest.approx(reference, abs=0.02)
    assert 0.15 < reference < 0.85  # a test with something to get wrong
    again = monte_carlo_error(posterior, x, y, m=400, seed=7, chunk_size=16)
    assert again.per_draw == mc.per_draw and (again.seed, again.m, again.n) == (7, 400, 60)
    other = monte_carlo_error(posterior, x, y, m=400, seed=8, chunk_size=16)
    assert other.per_draw != mc.per_draw
    with pytest.raises(BoundError, match="m"):
        monte_carlo_error(posterior, x, y, m=0, seed=7)


def test_every_example_of_every_pass_has_its_own_draw():
    """Identical examples near the decision boundary: errors are independent Bernoulli trials.

    Shared noise between examples (one draw for a whole pass, or noise reused across chunks)
    would correlate their errors and inflate the variance of a pass's mean error far above
    the binomial p (1 - p) / n that the per-example sample-convergence bound relies on.
    """
    torch.manual_seed(0)
    model = MLP(input_dim=3, hidden=[], num_classes=2).double()  # all the noise in the first layer
    x = torch.randn(1, 3, dtype=torch.float64).expand(500, 3).contiguous()
    with torch.no_grad():
        y = model(x).argmax(1)
    posterior = GaussianPosterior(model, 1.0)
    mc = monte_carlo_error(posterior, x, y, m=400, seed=0, chunk_size=50)
    p = mc.mean
    assert 0.2 < p < 0.8 and mc.trials == 500 * 400
    ratio = float(np.var(mc.per_draw, ddof=1)) / (p * (1 - p) / 500)
    assert 0.75 < ratio < 1.3, ratio  # chi-square with 399 degrees of freedom: sd of the ratio 0.07


def test_pac_bayes_training_lowers_the_objective_and_keeps_the_prior_fixed():
    torch.manual_seed(0)
    x = torch.randn(512, 6)
    y = (x[:, 0] > 0).long()
    model = MLP(input_dim=6, hidden=[16], num_classes=2)
    prior_mean = flat_parameters(model)
    posterior = GaussianPosterior(model, 0.05)
    # A large n makes the KL cheap, so the data term must drive the means away from the prior.
    result = train_posterior(posterior, prior_mean, 0.05, x, y, n_bound=10**7, delta=0.025, epochs=30,
                             lr=0.5, momentum=0.9, batch_size=64, seed=0)
    history = result.history
    assert history[-1]["objective"] < 0.5 * history[0]["objective"]
    assert history[-1]["error"] < 0.1 < history[0]["error"]
    assert torch.equal(prior_mean, flat_parameters(model))
    assert result.prior_sigma == pytest.approx(float(optimal_prior_sigma(posterior, prior_mean)), rel=0.05)


# --- the report's proxy and Jiang et al.'s measures ---------------------------------------------


def test_proxy_and_jiang_closed_forms():
    assert bounds.report_proxy(4.0, 9.0, 100, 0.5) == pytest.approx(math.sqrt(36 / 25))
    assert math.isnan(bounds.report_proxy(4.0, -1.0, 100, 0.5))
    assert bounds.jiang_sharpness(8.0, 0.5, 1000) == pytest.approx(8 + math.log(2000) + 10)
    w, w0 = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.0, 0.0, 0.0])
    sigma, eps, n = 0.1, 1e-3, 1000
    mean_sq = 5.0 / 3
    expected = 0.25 * sum(math.log((eps**2 + (sigma**2 + 1) * mean_sq) / (eps**2 + sigma**2 * d**2))
                          for d in (1.0, 2.0, 0.0)) + math.log(n / sigma) + 10
    assert bounds.jiang_magnitude_aware(w, w0, sigma, n, eps) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(BoundError):
        bounds.report_proxy(1.0, 1.0, 100, 0.0)


def toy_linear(d: int, a: float) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Logits (a + u0_i, u1_i) for input e_i: wrong with probability Phi(-a / (sigma sqrt 2))."""
    model = nn.Linear(d, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0] = a
    return model, torch.eye(d), torch.zeros(d, dtype=torch.long)


def test_sharpness_sigma_finds_the_known_scale_on_a_toy_model():
    a, target = 0.3, 0.1
    model, x, y = toy_linear(2000, a)
    z = stats.norm.ppf(1 - target)

    def drop(sigma, eps=None):
        return 1 - perturbed_accuracy(model, x, y, sigma, n_samples=50, seed=0, magnitude_eps=eps)

    sigma, searched = bounds.sharpness_sigma(drop, target, upper=2.0, steps=20)
    assert sigma == pytest.approx(a / (math.sqrt(2) * z), rel=0.03)
    assert len(searched) == 21 and all(d <= target for s, d in searched if s == sigma)
    # Magnitude-aware noise N(0, sigma^2 w^2 + eps^2): wrong with probability
    # Phi(-a / sqrt(sigma^2 a^2 + 2 eps^2)).
    eps = 0.05
    magnitude, _ = bounds.sharpness_sigma(lambda s: drop(s, eps), target, upper=2.0, steps=20)
    assert magnitude == pytest.approx(math.sqrt((a**2 / z**2 - 2 * eps**2) / a**2), rel=0.03)
    assert torch.all(model.weight[0] == a) and torch.all(model.weight[1] == 0)  # weights restored


def test_sharpness_sigma_edge_cases():
    assert bounds.sharpness_sigma(lambda s: 0.0, 0.1, upper=2.0)[0] == 2.0
    assert bounds.sharpness_sigma(lambda s: 1.0, 0.1, upper=2.0, steps=5)[0] == 0.0
    with pytest.raises(BoundError):
        bounds.sharpness_sigma(lambda s: 0.0, 1.5)


# --- the script: reproducible, and bad input refused before any sampling -------------------------


@pytest.fixture(scope="module")
def bounds_run(tmp_path_factory, synthetic_mirror):
    """A tiny run trained through the library: weights of epochs 0 and 2 and a curvature table."""
    from lossgeom.data import load_mnist, prepare_mnist
    from lossgeom.runs import save_weights
    from lossgeom.training import train

    folder, checksums = synthetic_mirror
    root = tmp_path_factory.mktemp("bounds")
    prepare_mnist(root, root / "mnist.pt", mirror=folder, checksums=checksums)
    data = load_mnist(root / "mnist.pt", 0.1307, 0.3081)
    spec = {"model": {"name": "mlp", "hidden": [16]}, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "epochs": 2, "batch_size": 32}
    result = train(spec, data, 0, root / "ckpt", progress=False)
    for epoch in (0, 2):
        save_weights(root / f"epoch{epoch}.pt", result.states[epoch], spec["model"], experiment="e", seed=0,
                     epoch=epoch, status="completed")
    pd.DataFrame([{"experiment": "e", "seed": 0, "epoch": 2, "quantity": "trace", "value": 3.0}]).to_csv(
        root / "curvature.csv", index=False)
    return root, spec


def script_command(root, out, spec, **overrides):
    options = {
        "--data": root / "mnist.pt", "--mean": 0.1307, "--std": 0.3081, "--device": "cpu",
        "--weights": root / "epoch2.pt", "--initial": root / "epoch0.pt", "--curvature": root / "curvature.csv",
        "--subset": 200, "--subset-seed": 0, "--eps": 1.0, "--jiang-target": 0.1, "--jiang-upper": 2.0,
        "--jiang-steps": 4, "--jiang-samples": 2, "--jiang-eps": 1e-3, "--delta": 0.025, "--delta-prime": 0.01,
        "--mc-samples": 10, "--select-samples": 1, "--sigma-min": 1e-3, "--sigma-max": 0.1, "--sigma-grid": 5,
        "--seed": 3, "--spec": json.dumps(spec), "--prior-epochs": 1, "--posterior-epochs": 1,
        "--checkpoint-dir": out / "prior", "--output": out / "bounds.csv", "--terms": out / "terms.csv",
    }
    options.update(overrides)
    command = [sys.executable, str(REPO / "scripts" / "bounds.py"), "--optimize"]
    for key, value in options.items():
        if value is not None:
            command += [key, str(value)]
    return command


def test_script_writes_the_stable_table_and_reruns_identically(tmp_path, bounds_run):
    root, spec = bounds_run
    tables = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = subprocess.run(script_command(root, out, spec), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        tables.append((pd.read_csv(out / "bounds.csv"), pd.read_csv(out / "terms.csv")))
    (table, terms), (again, terms_again) = tables
    assert list(table.columns) == ["experiment", "seed", "epoch", "quantity", "value", "delta", "n", "mc_samples"]
    assert set(table.quantity) == {"test_error", "train_error", "proxy", "jiang_sharpness", "jiang_magnitude_aware",
                                   "certificate_centered", "stochastic_test_error_centered",
                                   "certificate_optimized", "stochastic_test_error_optimized"}
    pd.testing.assert_frame_equal(table, again)
    timing = terms.term.str.endswith("seconds")
    pd.testing.assert_frame_equal(terms[~timing].reset_index(drop=True), terms_again[~timing].reset_index(drop=True))
    value = table.set_index("quantity")
    assert value.loc["certificate_optimized", "n"] == 300  # the half the prior never saw
    assert value.loc["certificate_centered", "n"] == 600
    assert value.loc["certificate_optimized", "mc_samples"] == 10
    assert value.loc["certificate_optimized", "delta"] == 0.025
    for kind in ("centered", "optimized"):
        assert 0 <= value.loc[f"certificate_{kind}", "value"] <= 1
        cert_terms = terms[terms.quantity == f"certificate_{kind}"].set_index("term").value
        assert cert_terms["mc_seed"] in (4, 6) and cert_terms["mc_passes"] == 10 and cert_terms["grid_size"] == 5
        assert cert_terms["trials"] == 10 * value.loc[f"certificate_{kind}", "n"]  # per-example draws
        assert cert_terms["empirical_bound"] < cert_terms["empirical_bound_per_pass"]
        assert value.loc[f"certificate_{kind}", "value"] >= cert_terms["mc_error"]
    assert math.isnan(value.loc["proxy", "delta"]) and value.loc["proxy", "value"] > 0
    meta = json.loads((tmp_path / "a" / "bounds.csv.meta.json").read_text())
    assert meta["config"]["seed"] == 3 and meta["config"]["mc_samples"] == 10


@pytest.mark.parametrize(
    "override,message",
    [
        ({"--delta": 1.5}, "--delta: must lie in the open interval (0, 1)"),
        ({"--delta": 0}, "--delta: must lie in the open interval (0, 1)"),
        ({"--delta-prime": -0.2}, "--delta-prime: must lie in the open interval (0, 1)"),
        ({"--mc-samples": 0}, "--mc-samples: must be a positive integer"),
        ({"--delta": 0.6, "--delta-prime": 0.5}, "delta + delta' must be below 1"),
        ({"--sigma-min": 0.5, "--sigma-max": 0.1}, "prior scale grid"),
    ],
)
def test_script_rejects_bad_numbers_before_any_work(tmp_path, bounds_run, override, message):
    root, spec = bounds_run
    result = subprocess.run(script_command(root, tmp_path, spec, **override), capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr
    assert not list(tmp_path.iterdir())


def test_script_rejects_a_checkpoint_of_another_architecture(tmp_path, bounds_run):
    from lossgeom.runs import save_weights

    root, spec = bounds_run
    other = {"name": "mlp", "hidden": [8]}
    save_weights(tmp_path / "other.pt", build_model(other).state_dict(), other, experiment="e", seed=0, epoch=2,
                 status="completed")
    out = tmp_path / "out"
    result = subprocess.run(script_command(root, out, spec, **{"--weights": tmp_path / "other.pt"}),
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "architectures differ" in result.stderr
    assert "certificate" not in result.stderr  # no estimate was made
    assert not out.exists()


def test_script_optimises_against_the_initial_weights_with_the_whole_training_set(tmp_path, bounds_run):
    root, spec = bounds_run
    result = subprocess.run(script_command(root, tmp_path, spec, **{"--prior": "init"}), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "bounds.csv").set_index("quantity")
    terms = pd.read_csv(tmp_path / "terms.csv")
    optimised = terms[terms.quantity == "certificate_optimized"].set_index("term").value
    assert table.loc["certificate_optimized", "n"] == 600 and optimised["n_prior"] == 0
    assert optimised["prior_data_dependent"] == 0
    assert table.loc["certificate_optimized", "value"] >= optimised["mc_error"]
    assert not (tmp_path / "prior").exists()  # no prior network was trained
