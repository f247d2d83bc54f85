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
import torch.nn.functional as F
from scipy import optimize, stats
from torch import nn

from lossgeom import bounds, certificates
from lossgeom.bounds import BoundError
from lossgeom.models import MLP, build_model, flat_parameters
from lossgeom.posterior import (
    GaussianPosterior,
    PerturbedAccuracy,
    monte_carlo_error,
    optimal_prior_sigma,
    perturbed_accuracy,
    train_posterior,
    unsupported_layer,
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
    assert bounds.kl_bernoulli(0.5, 0.25) == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), abs=1e-15
    )
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
    arguments = {
        "mc_error": 0.1,
        "trials": 10,
        "kl": 1.0,
        "n": 100,
        "delta": 0.05,
        "delta_prime": 0.01,
        "grid_size": 1,
        **kwargs,
    }
    with pytest.raises(BoundError, match=name.split(" ")[0]):
        bounds.certify(**arguments)


# --- Gaussians ---------------------------------------------------------------------------------


def test_kl_between_diagonal_gaussians_against_closed_forms():
    torch.manual_seed(0)
    mq, mp = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    sq, sp = torch.rand(50, dtype=torch.float64) + 0.1, torch.rand(50, dtype=torch.float64) + 0.1
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mq, sq), torch.distributions.Normal(mp, sp)
    ).sum()
    assert float(bounds.kl_diagonal_gaussians(mq, sq, mp, sp)) == pytest.approx(
        float(reference), rel=1e-12
    )
    # Equal scales: the KL is the squared distance over 2 sigma^2 (the centred certificate's KL).
    s = 0.07
    value = bounds.kl_diagonal_gaussians(mq, torch.full_like(mq, s), mp, s)
    assert float(value) == pytest.approx(float((mq - mp).pow(2).sum()) / (2 * s**2), rel=1e-12)
    # Isotropic prior, closed form per coordinate.
    k = mq.numel()
    closed = float(
        torch.log(torch.tensor(0.5) / sq).sum()
        + ((sq**2 + (mq - mp) ** 2) / (2 * 0.25)).sum()
        - k / 2
    )
    assert float(bounds.kl_diagonal_gaussians(mq, sq, mp, 0.5)) == pytest.approx(closed, rel=1e-12)
    with pytest.raises(BoundError):
        bounds.kl_diagonal_gaussians(mq, -sq, mp, 0.5)


def test_posterior_kl_and_the_optimal_prior_scale():
    model = MLP(input_dim=5, hidden=[4], num_classes=3).double()
    posterior = GaussianPosterior(model, 0.02)
    prior_mean = torch.zeros_like(posterior.flat_mean())
    with torch.no_grad():
        reference = bounds.kl_diagonal_gaussians(
            posterior.flat_mean(), posterior.flat_sigma(), prior_mean, 0.3
        )
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
    layer_norm = GaussianPosterior(
        build_model({"name": "mlp", "hidden": [8], "norm": "layernorm"}), 0.01
    )
    assert layer_norm(torch.randn(3, 784)).shape == (3, 10)


def explicit_samples(
    model: MLP, sigma: float, x: torch.Tensor, draws: int, seed: int
) -> torch.Tensor:
    """Logits of ``x`` under ``draws`` explicitly sampled weight sets (one per draw)."""
    g = torch.Generator().manual_seed(seed)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sample(name):
        w = params[name]
        return w + sigma * torch.randn((draws, *w.shape), generator=g, dtype=w.dtype)

    w1, b1, w2, b2 = (
        sample(n)
        for n in (
            "input_layer.weight",
            "input_layer.bias",
            "output_layer.weight",
            "output_layer.bias",
        )
    )
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


def test_convolution_noise_is_a_per_example_kernel_draw():
    """The grouped convolution equals drawing one kernel per example and convolving."""
    torch.manual_seed(0)
    model = build_model({"name": "cnn", "input_dim": 64, "channels": [3], "hidden": [5],
                         "kernel_size": 3}).double()  # fmt: skip
    posterior = GaussianPosterior(model, 0.3)
    conv = posterior.net.convs[0]
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    posterior.generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        noisy = posterior._conv_noise(conv, "convs.0.", x)
    replay = torch.Generator().manual_seed(5)
    kernels = 0.3 * torch.randn((4, *conv.weight.shape), generator=replay, dtype=torch.float64)
    biases = 0.3 * torch.randn((4, *conv.bias.shape), generator=replay, dtype=torch.float64)
    for i in range(4):
        expected = F.conv2d(x[i : i + 1], kernels[i], biases[i], padding=conv.padding)
        assert torch.allclose(noisy[i : i + 1], expected, atol=1e-12)


def test_convolution_noise_is_correlated_over_positions_as_one_kernel_makes_it():
    """Two output positions of one example share the kernel draw: their covariance is
    sigma^2 <patch_p, patch_q> (+ sigma^2 from the bias), which per-position noise would
    make 0."""
    torch.manual_seed(1)
    model = build_model({"name": "cnn", "input_dim": 16, "channels": [1], "hidden": [2],
                         "kernel_size": 3}).double()  # fmt: skip
    posterior = GaussianPosterior(model, 0.5)
    conv = posterior.net.convs[0]
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64).expand(20000, 1, 4, 4).contiguous()
    posterior.generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        noise = posterior._conv_noise(conv, "convs.0.", x)[:, 0]
    patches = F.unfold(x[:1], 3, padding=1)[0]  # (9, 16): each output position's patch
    p, q = 5, 6  # two neighbouring positions
    expected = 0.25 * float(patches[:, p] @ patches[:, q]) + 0.25
    measured = float(torch.cov(torch.stack([noise.flatten(1)[:, p], noise.flatten(1)[:, q]]))[0, 1])
    assert measured == pytest.approx(expected, rel=0.08)
    assert abs(expected) > 0.1


def test_a_cnn_runs_the_monte_carlo_error_and_other_models_are_refused_by_name():
    torch.manual_seed(2)
    model = build_model({"name": "cnn", "input_dim": 64, "channels": [2, 3], "hidden": [6],
                         "kernel_size": 3})  # fmt: skip
    x, y = torch.randn(40, 64), torch.randint(0, 10, (40,))
    mc = monte_carlo_error(GaussianPosterior(model, 0.05), x, y, m=3, seed=0, chunk_size=16)
    assert mc.trials == 120 and 0 <= mc.mean <= 1
    assert unsupported_layer(model) is None
    vit = build_model({"name": "vit", "dim": 8, "heads": 2, "depth": 1})
    assert "ViT" in unsupported_layer(vit)
    with pytest.raises(BoundError, match="ViT"):
        GaussianPosterior(vit, 0.01)


def test_monte_carlo_error_matches_weight_sampling_and_is_reproducible():
    torch.manual_seed(4)
    model = MLP(input_dim=3, hidden=[6], num_classes=3).double()
    x = torch.randn(60, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (60,))
    posterior = GaussianPosterior(model, 0.5)
    mc = monte_carlo_error(
        posterior, x, y, m=400, seed=7, chunk_size=16
    )  # chunks share a draw's noise
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
    result = train_posterior(
        posterior,
        prior_mean,
        0.05,
        x,
        y,
        n_bound=10**7,
        delta=0.025,
        epochs=30,
        lr=0.5,
        momentum=0.9,
        batch_size=64,
        seed=0,
    )
    history = result.history
    assert history[-1]["objective"] < 0.5 * history[0]["objective"]
    assert history[-1]["error"] < 0.1 < history[0]["error"]
    assert torch.equal(prior_mean, flat_parameters(model))
    assert result.prior_sigma == pytest.approx(
        float(optimal_prior_sigma(posterior, prior_mean)), rel=0.05
    )


# --- the report's proxy and Jiang et al.'s measures ---------------------------------------------


def test_proxy_and_jiang_closed_forms():
    assert bounds.report_proxy(4.0, 9.0, 100, 0.5) == pytest.approx(math.sqrt(36 / 25))
    assert math.isnan(bounds.report_proxy(4.0, -1.0, 100, 0.5))
    assert bounds.jiang_sharpness(8.0, 0.5, 1000) == pytest.approx(8 + math.log(2000) + 10)
    w, w0 = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.0, 0.0, 0.0])
    sigma, eps, n = 0.1, 1e-3, 1000
    mean_sq = 5.0 / 3
    expected = (
        0.25
        * sum(
            math.log((eps**2 + (sigma**2 + 1) * mean_sq) / (eps**2 + sigma**2 * d**2))
            for d in (1.0, 2.0, 0.0)
        )
        + math.log(n / sigma)
        + 10
    )
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


@pytest.mark.parametrize("norm", ["none", "layernorm"])
def test_cached_first_layer_gives_the_full_passes_accuracies(norm):
    """Isotropic noise on an MLP: x (W + s Z)^T == x W^T + s x Z^T, so the cached products
    (float64: round-off far below any logit gap) give the full passes' accuracy at every scale,
    over several chunks, with the weights restored; magnitude-aware noise takes full passes."""
    torch.manual_seed(0)
    spec = {"name": "mlp", "input_dim": 12, "hidden": [9, 7], "num_classes": 4, "norm": norm}
    model = build_model(spec).double()
    x, y = torch.randn(300, 12, dtype=torch.float64), torch.randint(0, 4, (300,))
    w = flat_parameters(model).clone()
    cached = PerturbedAccuracy(model, x, y, n_samples=3, seed=5, batch_size=128)
    assert cached._first_layer
    accuracies = []
    for sigma in (0.0, 0.05, 0.3, 1.0, 0.3):
        accuracies.append(cached(sigma))
        assert accuracies[-1] == perturbed_accuracy(model, x, y, sigma, 3, 5, batch_size=128)
        assert torch.equal(flat_parameters(model), w)
    assert accuracies[0] == (model(x).argmax(1) == y).double().mean().item()
    assert accuracies[1] > accuracies[3] and accuracies[2] == accuracies[4]  # noise hurts
    magnitude = PerturbedAccuracy(model, x, y, 3, 5, magnitude_eps=1e-3)
    assert not magnitude._first_layer
    assert magnitude(0.3) == perturbed_accuracy(model, x, y, 0.3, 3, 5, magnitude_eps=1e-3)
    with pytest.raises(BoundError, match="sigma must be >= 0"):
        cached(-0.1)
    with pytest.raises(BoundError, match="batch_size must be a positive integer"):
        PerturbedAccuracy(model, x, y, 3, 5, batch_size=0)


# --- the stage's steps: settings, measures, scale selection, priors and certificates --------------

SMALL = {
    "eps": 1.0,
    "delta": 0.025,
    "delta_prime": 0.01,
    "mc_samples": 6,
    "epoch_mc_samples": 3,
    "sample_convergence": "trials",
    "select_samples": 2,
    "sigma_min": 1e-3,
    "sigma_max": 0.1,
    "sigma_grid": 5,
    "seed": 3,
    "chunk_size": 64,
    "jiang_target": 0.1,
    "jiang_upper": 2.0,
    "jiang_steps": 4,
    "jiang_samples": 2,
    "jiang_eps": 1e-3,
    "prior": "data_dependent",
    "prior_fraction": 0.5,
    "prior_epochs": 1,
    "split_seed": 0,
    "posterior_sigma": 0.004,
    "objective": "quad",
    "posterior_epochs": 1,
    "posterior_lr": 0.01,
    "posterior_momentum": 0.95,
    "posterior_batch_size": 50,
    "pmin": 1e-4,
    "final_epoch": True,
}


def small_settings(**overrides) -> certificates.Settings:
    return certificates.Settings(**{**SMALL, **overrides})


def test_settings_are_the_bounds_section_of_the_configuration():
    import dataclasses

    import yaml

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = schema["properties"]["bounds"]["properties"]
    fields = {f.name for f in dataclasses.fields(certificates.Settings) if f.init}
    assert fields == (set(section) - {"track_seed"}) | {"final_epoch"}
    defaults = {key: entry["default"] for key, entry in section.items() if key != "track_seed"}
    final = certificates.Settings.from_mapping(
        {**defaults, "final_epoch": True, "output": "ignored"}
    )
    assert final.grid == tuple(
        bounds.scale_grid(defaults["sigma_min"], defaults["sigma_max"], defaults["sigma_grid"])
    )
    assert final.m == defaults["mc_samples"]
    assert dataclasses.replace(final, final_epoch=False).m == defaults["epoch_mc_samples"]
    assert final.trials(m=3, n=7) == 21
    assert dataclasses.replace(final, sample_convergence="passes").trials(m=3, n=7) == 3
    with pytest.raises(BoundError, match="bounds.prior must be one of"):
        small_settings(prior="both")
    with pytest.raises(BoundError, match="bounds.delta"):
        small_settings(delta=0.995)


def test_check_settings_returns_the_grid():
    assert bounds.check_settings(0.025, 0.01, 1e-4, 1.0, 21) == bounds.scale_grid(1e-4, 1.0, 21)
    assert bounds.check_settings(0.5, 0.2, 0.01, 0.01, 1) == [0.01]


@pytest.mark.parametrize(
    "arguments,message",
    [
        (
            (0.6, 0.4, 1e-3, 0.1, 5),
            "bounds.delta + bounds.delta_prime must be below 1, got 0.6 + 0.4",
        ),
        ((0.0, 0.01, 1e-3, 0.1, 5), "bounds.delta must lie in (0, 1)"),
        ((0.025, 1.0, 1e-3, 0.1, 5), "bounds.delta_prime must lie in (0, 1)"),
        ((0.025, 0.01, 0.0, 0.1, 5), "bounds.sigma_min must be positive and finite"),
        ((0.025, 0.01, 1e-3, math.inf, 5), "bounds.sigma_max must be positive and finite"),
        ((0.025, 0.01, 0.5, 0.1, 5), "bounds.sigma_min (0.5) exceeds bounds.sigma_max (0.1)"),
        ((0.025, 0.01, 1e-3, 0.1, 0), "bounds.sigma_grid must be a positive integer"),
        (
            (0.025, 0.01, 1e-3, 0.1, 1),
            "bounds.sigma_grid = 1 needs bounds.sigma_min == bounds.sigma_max",
        ),
    ],
)
def test_check_settings_names_the_configuration_key(arguments, message):
    with pytest.raises(BoundError) as error:
        bounds.check_settings(*arguments)
    assert message in str(error.value)


def test_table_frames_and_the_hessian_trace(tmp_path):
    table = certificates.Table()
    table.row("proxy", 2.0, n=10)
    table.term("proxy", "eps", 1.0)
    other = certificates.Table()
    other.row("test_error", 0.5)
    table.extend(other)
    rows, terms = table.frames({"experiment": "e", "seed": 1, "epoch": 2})
    assert (
        list(rows.columns) == certificates.COLUMNS
        and list(terms.columns) == certificates.TERM_COLUMNS
    )
    assert list(rows.quantity) == ["proxy", "test_error"] and rows.loc[0, "n"] == 10
    assert (
        math.isnan(rows.loc[1, "n"]) and (rows.epoch == 2).all() and terms.loc[0, "term"] == "eps"
    )
    pd.DataFrame(
        [
            {"epoch": 2, "quantity": "eig1", "value": 5.0},
            {"epoch": 2, "quantity": "trace", "value": 7.5},
        ]
    ).assign(experiment="e", seed=0, stderr=0.1, n_hvp=12, seconds=1.0)[
        ["experiment", "seed", "epoch", "quantity", "value", "stderr", "n_hvp", "seconds"]
    ].to_csv(tmp_path / "c.csv", index=False)
    assert certificates.hessian_trace(tmp_path / "c.csv", 2) == 7.5
    with pytest.raises(ValueError, match="no Hessian trace for epoch 3"):
        certificates.hessian_trace(tmp_path / "c.csv", 3)


TINY_SPEC = {
    "model": {"name": "mlp", "input_dim": 6, "hidden": [8], "num_classes": 3},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "epochs": 2,
    "batch_size": 32,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small three-class problem and a network trained on it, with its initial weights."""
    from lossgeom.data import Dataset
    from lossgeom.training import train

    g = torch.Generator().manual_seed(0)
    x, test_x = torch.randn(240, 6, generator=g), torch.randn(80, 6, generator=g)

    def label(inputs):
        return (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()

    data = Dataset(x, label(x), test_x, label(test_x))
    result = train(TINY_SPEC, data, 0, tmp_path_factory.mktemp("tiny"), progress=False)
    initial = build_model(TINY_SPEC["model"])
    initial.load_state_dict(result.states[0])
    return data, result.model.eval(), initial.eval()


def test_check_inputs_refuses_other_initial_weights_and_unsampled_layers(tiny):
    _, model, _ = tiny
    meta = {"experiment": "e", "seed": 0, "epoch": 2}
    certificates.check_inputs(model, meta, {**meta, "epoch": 0}, "w0.pt", small_settings())
    certificates.check_inputs(None, meta, {**meta, "epoch": 0}, "w0.pt", small_settings())
    with pytest.raises(ValueError, match="w0.pt is not the epoch-0 weights of e seed 0"):
        certificates.check_inputs(
            model, meta, {**meta, "epoch": 0, "seed": 1}, "w0.pt", small_settings()
        )
    batchnorm = build_model({"name": "mlp", "hidden": [8], "norm": "batchnorm"})
    with pytest.raises(BoundError, match="BatchNorm"):
        certificates.check_inputs(batchnorm, meta, {**meta, "epoch": 0}, "w0.pt", small_settings())


def test_error_measures_and_the_proxy(tiny):
    from lossgeom.training import evaluate

    data, model, _ = tiny
    table = certificates.error_measures(model, data, trace=4.0, eps=0.5)
    rows = {r["quantity"]: r for r in table.rows}
    assert list(rows) == ["test_error", "train_error", "proxy"]
    assert rows["test_error"]["value"] == 1 - evaluate(model, data.test_x, data.test_y)[1]
    assert rows["train_error"]["n"] == 240 and rows["test_error"]["n"] == 80
    norm_sq = float(flat_parameters(model).double().pow(2).sum())
    assert rows["proxy"]["value"] == pytest.approx(
        math.sqrt(norm_sq * 4.0 / (240 * 0.25)), rel=1e-12
    )
    assert [t["term"] for t in table.terms] == ["parameter_norm_sq", "hessian_trace", "eps"]


def test_jiang_measures_repeat_the_bisection(tiny):
    data, model, initial = tiny
    settings = small_settings()
    w, w0 = flat_parameters(model), flat_parameters(initial)
    x, y = data.train_x[:100], data.train_y[:100]
    table = certificates.jiang_measures(model, w0, x, y, 240, settings)
    rows = {r["quantity"]: r["value"] for r in table.rows}
    terms = {(t["quantity"], t["term"]): t["value"] for t in table.terms}
    clean = (model(x).argmax(1) == y).float().mean().item()
    sigma, searched = bounds.sharpness_sigma(
        lambda s: clean - perturbed_accuracy(model, x, y, s, 2, 3), 0.1, 2.0, 4
    )
    assert terms[("jiang_sharpness", "sigma")] == sigma > 0
    assert terms[("jiang_sharpness", "searched_points")] == len(searched)
    assert (
        terms[("jiang_sharpness", "subset")] == 100
        and terms[("jiang_magnitude_aware", "mc_seed")] == 3
    )
    distance_sq = float((w - w0).double().pow(2).sum())
    assert terms[("jiang_sharpness", "distance_sq")] == distance_sq
    assert rows["jiang_sharpness"] == bounds.jiang_sharpness(distance_sq, sigma, 240)
    magnitude_sigma = terms[("jiang_magnitude_aware", "sigma")]
    assert rows["jiang_magnitude_aware"] == bounds.jiang_magnitude_aware(
        w, w0, magnitude_sigma, 240, 1e-3
    )
    assert torch.equal(flat_parameters(model), w)  # weights restored


@pytest.mark.parametrize("final", [True, False])
def test_the_centred_scale_is_the_grid_point_with_the_smallest_predicted_certificate(tiny, final):
    data, model, initial = tiny
    settings = small_settings(final_epoch=final)
    distance_sq = float((flat_parameters(model) - flat_parameters(initial)).double().pow(2).sum())
    x, y = data.train_x[:100], data.train_y[:100]
    sigma, choice = certificates.select_centred_sigma(model, distance_sq, x, y, 240, settings)
    assert [s for _, s in choice] == list(settings.grid) and sigma == min(choice)[1]
    m = 6 if final else 3
    for value, s in choice:
        estimate = monte_carlo_error(GaussianPosterior(model, s), x, y, 2, 3, 64).mean
        expected = bounds.certify(
            estimate, m * 240, distance_sq / (2 * s**2), 240, 0.025, 0.01, 5
        ).value
        assert value == expected


def test_certify_posterior_chains_the_monte_carlo_and_pac_bayes_steps(tiny):
    data, model, _ = tiny
    settings = small_settings(final_epoch=False)
    posterior = GaussianPosterior(model, 0.01)
    table = certificates.certify_posterior(
        "centered",
        posterior,
        12.5,
        data.train_x[:200],
        data.train_y[:200],
        data,
        settings,
        seeds=(7, 8),
    )
    rows = {r["quantity"]: r for r in table.rows}
    terms = {t["term"]: t["value"] for t in table.terms if t["quantity"] == "certificate_centered"}
    mc = monte_carlo_error(posterior, data.train_x[:200], data.train_y[:200], 3, 7, 64)
    expected = bounds.certify(mc.mean, 600, 12.5, 200, 0.025, 0.01, 5)
    assert rows["certificate_centered"]["value"] == expected.value
    assert (rows["certificate_centered"]["n"], rows["certificate_centered"]["mc_samples"]) == (
        200,
        3,
    )
    assert rows["certificate_centered"]["delta"] == 0.025
    test = monte_carlo_error(posterior, data.test_x, data.test_y, 3, 8, 64)
    assert rows["stochastic_test_error_centered"]["value"] == test.mean
    assert {k: terms[k] for k in expected.as_dict()} == expected.as_dict()
    assert terms["mc_seed"] == 7 and terms["mc_passes"] == 3 and "mc_seconds" in terms
    assert terms["empirical_bound_per_pass"] == bounds.sample_convergence_bound(mc.mean, 3, 0.01)
    assert table.terms[-1] == {
        "quantity": "stochastic_test_error_centered",
        "term": "mc_seed",
        "value": 8,
    }


def test_centred_certificate_uses_the_selected_scale_for_prior_and_posterior(tiny):
    data, model, initial = tiny
    settings = small_settings()
    w0 = flat_parameters(initial)
    table = certificates.centred_certificate(
        model, w0, data.train_x[:100], data.train_y[:100], data, settings
    )
    terms = {t["term"]: t["value"] for t in table.terms if t["quantity"] == "certificate_centered"}
    distance_sq = float((flat_parameters(model) - w0).double().pow(2).sum())
    sigma, _ = certificates.select_centred_sigma(
        model, distance_sq, data.train_x[:100], data.train_y[:100], 240, settings
    )
    assert terms["prior_sigma"] == terms["posterior_sigma"] == sigma
    assert terms["kl"] == distance_sq / (2 * sigma**2)
    assert terms["n"] == 240 and terms["mc_seed"] == 4 and terms["grid_size"] == 5


def test_split_for_prior_is_a_seeded_partition():
    prior, bound = certificates.split_for_prior(101, 0.3, 5)
    assert prior.numel() == 30 and bound.numel() == 71
    assert sorted(torch.cat([prior, bound]).tolist()) == list(range(101))
    again, _ = certificates.split_for_prior(101, 0.3, 5)
    other, _ = certificates.split_for_prior(101, 0.3, 6)
    assert torch.equal(prior, again) and not torch.equal(prior, other)


def test_train_prior_starts_at_w0_and_keys_its_checkpoints_by_split_and_data(
    tmp_path, tiny, monkeypatch
):
    import dataclasses

    data, _, initial = tiny
    seen = []
    real_train = certificates.train

    def spy(*args, **kwargs):
        seen.append((args[0], kwargs["identity"]))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(certificates, "train", spy)
    settings = small_settings(prior_epochs=2)
    recipe = certificates.PriorRecipe(
        TINY_SPEC, TINY_SPEC["model"], 0, tmp_path, {"data_md5": "a", "dataset": "t"}
    )
    prior_index, _ = certificates.split_for_prior(240, 0.5, 0)
    w0 = flat_parameters(initial)
    prior = certificates.train_prior(recipe, data, prior_index, w0, settings, "cpu")
    spec, identity = seen[0]
    assert spec["epochs"] == 2 and spec["model"] == TINY_SPEC["model"]
    assert identity == {"prior_fraction": 0.5, "split_seed": 0, "data_md5": "a", "dataset": "t"}
    assert not prior.training and not torch.equal(flat_parameters(prior), w0)
    again = certificates.train_prior(
        recipe, data, prior_index, w0, settings, "cpu"
    )  # resumed, same weights
    assert torch.equal(flat_parameters(again), flat_parameters(prior))
    other_data = dataclasses.replace(recipe, identity={"data_md5": "b", "dataset": "t"})
    certificates.train_prior(other_data, data, prior_index, w0, settings, "cpu")
    certificates.train_prior(
        recipe, data, prior_index, w0, small_settings(prior_epochs=2, split_seed=1), "cpu"
    )
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3  # one keyed folder per identity
    with pytest.raises(RuntimeError, match="did not start from this run's initial weights"):
        certificates.train_prior(recipe, data, prior_index, w0 + 1, settings, "cpu")


@pytest.mark.parametrize("prior", ["data_dependent", "init"])
def test_optimised_certificate_against_either_prior(tmp_path, tiny, prior):
    data, model, initial = tiny
    settings = small_settings(prior=prior)
    recipe = certificates.PriorRecipe(TINY_SPEC, TINY_SPEC["model"], 0, tmp_path / "prior", {})
    table = certificates.optimised_certificate(model, initial, data, settings, recipe, "cpu")
    rows = {r["quantity"]: r for r in table.rows}
    terms = {t["term"]: t["value"] for t in table.terms if t["quantity"] == "certificate_optimized"}
    n_prior = 120 if prior == "data_dependent" else 0
    assert list(rows) == certificates.OPTIMIZED
    assert rows["certificate_optimized"]["n"] == 240 - n_prior and terms["n_prior"] == n_prior
    assert terms["prior_data_dependent"] == float(prior == "data_dependent")
    assert terms["prior_sigma"] in settings.grid and terms["mc_seed"] == 6
    assert terms["mc_error"] <= rows["certificate_optimized"]["value"] <= 1
    assert (tmp_path / "prior").exists() == (prior == "data_dependent")


@pytest.mark.parametrize("final", [True, False])
def test_bound_checkpoint_orders_the_rows_and_writes_nan_for_a_diverged_epoch(
    tmp_path, tiny, final
):
    data, model, initial = tiny
    settings = small_settings(final_epoch=final)
    recipe = certificates.PriorRecipe(TINY_SPEC, TINY_SPEC["model"], 0, tmp_path / "prior", {})
    expected = certificates.QUANTITIES + (certificates.OPTIMIZED if final else [])
    subset = (data.train_x[:100], data.train_y[:100])
    diverged = certificates.bound_checkpoint(
        None, initial, data, subset, 1.0, settings, recipe, "cpu"
    )
    assert [r["quantity"] for r in diverged.rows] == expected and not diverged.terms
    assert all(math.isnan(r["value"]) for r in diverged.rows)
    table = certificates.bound_checkpoint(
        model, initial, data, subset, 1.0, settings, recipe, "cpu"
    )
    assert [r["quantity"] for r in table.rows] == expected
    assert all(math.isfinite(r["value"]) for r in table.rows)


# --- the script: reproducible, and bad input refused before any sampling -------------------------


@pytest.fixture(scope="module")
def bounds_run(tmp_path_factory, synthetic_mirror):
    """A tiny run trained through the library: weights of epochs 0 and 2 and a curvature table."""
    from lossgeom.data import load_dataset, prepare_dataset
    from lossgeom.runs import save_weights
    from lossgeom.training import train

    folder, checksums = synthetic_mirror
    root = tmp_path_factory.mktemp("bounds")
    prepare_dataset("mnist", root, root / "mnist.pt", mirror=folder, checksums=checksums)
    data = load_dataset(root / "mnist.pt")
    spec = {
        "model": {"name": "mlp", "hidden": [16]},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "epochs": 2,
        "batch_size": 32,
    }
    result = train(spec, data, 0, root / "ckpt", progress=False)
    for epoch in (0, 2):
        save_weights(
            root / f"epoch{epoch}.pt",
            result.states[epoch],
            spec["model"],
            experiment="e",
            seed=0,
            epoch=epoch,
            status="completed",
        )
    pd.DataFrame(
        [
            {"experiment": "e", "seed": 0, "epoch": 2, "quantity": "trace", "value": 3.0}
            | {"stderr": 0.1, "n_hvp": 12, "seconds": 1.0}
        ]
    ).to_csv(root / "curvature.csv", index=False)
    return root, spec


def script_command(root, out, spec, final=True, **overrides):
    """The bounds script on the tiny run; every flag the workflow passes, as it passes them."""
    options = {
        "--data": root / "mnist.pt",
        "--dataset": "mnist",
        "--device": "cpu",
        "--threads": 0,
        "--weights": root / "epoch2.pt",
        "--initial": root / "epoch0.pt",
        "--curvature": root / "curvature.csv",
        "--subset": 200,
        "--subset-seed": 0,
        "--eps": 1.0,
        "--jiang-target": 0.1,
        "--jiang-upper": 2.0,
        "--jiang-steps": 4,
        "--jiang-samples": 2,
        "--jiang-eps": 1e-3,
        "--delta": 0.025,
        "--delta-prime": 0.01,
        "--mc-samples": 10,
        "--epoch-mc-samples": 4,
        "--sample-convergence": "trials",
        "--select-samples": 1,
        "--sigma-min": 1e-3,
        "--sigma-max": 0.1,
        "--sigma-grid": 5,
        "--seed": 3,
        "--chunk-size": 1000,
        "--prior": "data_dependent",
        "--prior-fraction": 0.5,
        "--prior-epochs": 1,
        "--split-seed": 0,
        "--posterior-sigma": 0.004,
        "--objective": "quad",
        "--posterior-epochs": 1,
        "--posterior-lr": 0.01,
        "--posterior-momentum": 0.95,
        "--posterior-batch-size": 250,
        "--pmin": 1e-4,
        "--spec": json.dumps(spec),
        "--checkpoint-dir": out / "prior",
        "--output": out / "bounds.csv",
        "--terms": out / "terms.csv",
    }
    options.update(overrides)
    command = [sys.executable, str(REPO / "scripts" / "bounds.py")]
    if final is not None:
        command.append("--final-epoch" if final else "--no-final-epoch")
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
    assert list(table.columns) == [
        "experiment",
        "seed",
        "epoch",
        "quantity",
        "value",
        "delta",
        "n",
        "mc_samples",
    ]
    assert set(table.quantity) == {
        "test_error",
        "train_error",
        "proxy",
        "jiang_sharpness",
        "jiang_magnitude_aware",
        "certificate_centered",
        "stochastic_test_error_centered",
        "certificate_optimized",
        "stochastic_test_error_optimized",
    }
    pd.testing.assert_frame_equal(table, again)
    timing = terms.term.str.endswith("seconds")
    pd.testing.assert_frame_equal(
        terms[~timing].reset_index(drop=True), terms_again[~timing].reset_index(drop=True)
    )
    value = table.set_index("quantity")
    assert value.loc["certificate_optimized", "n"] == 300  # the half the prior never saw
    assert value.loc["certificate_centered", "n"] == 600
    assert value.loc["certificate_optimized", "mc_samples"] == 10
    assert value.loc["certificate_optimized", "delta"] == 0.025
    for kind in ("centered", "optimized"):
        assert 0 <= value.loc[f"certificate_{kind}", "value"] <= 1
        cert_terms = terms[terms.quantity == f"certificate_{kind}"].set_index("term").value
        assert (
            cert_terms["mc_seed"] in (4, 6)
            and cert_terms["mc_passes"] == 10
            and cert_terms["grid_size"] == 5
        )
        assert (
            cert_terms["trials"] == 10 * value.loc[f"certificate_{kind}", "n"]
        )  # per-example draws
        assert cert_terms["empirical_bound"] < cert_terms["empirical_bound_per_pass"]
        assert value.loc[f"certificate_{kind}", "value"] >= cert_terms["mc_error"]
    assert math.isnan(value.loc["proxy", "delta"]) and value.loc["proxy", "value"] > 0
    meta = json.loads((tmp_path / "a" / "bounds.csv.meta.json").read_text())
    assert meta["config"]["seed"] == 3 and meta["config"]["mc_samples"] == 10
    # The prior's checkpoints live in one keyed subfolder of the folder the workflow names.
    (keyed,) = (tmp_path / "a" / "prior").iterdir()
    assert keyed.is_dir() and sorted(p.name for p in keyed.glob("epoch*.pt")) == [
        "epoch000.pt",
        "epoch001.pt",
    ]


def test_script_at_an_earlier_epoch_certifies_the_centred_posterior_with_epoch_mc_samples(
    tmp_path, bounds_run
):
    root, spec = bounds_run
    result = subprocess.run(
        script_command(root, tmp_path, spec, final=False), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "bounds.csv").set_index("quantity")
    assert list(table.index) == certificates.QUANTITIES
    assert (
        table.loc["certificate_centered", "mc_samples"] == 4
    )  # --epoch-mc-samples, not --mc-samples
    assert table.loc["stochastic_test_error_centered", "mc_samples"] == 4
    assert not (tmp_path / "prior").exists()  # no prior network was trained


@pytest.mark.parametrize(
    "override,message",
    [
        ({"--delta": 1.5}, "--delta: must lie in the open interval (0, 1)"),
        ({"--delta": 0}, "--delta: must lie in the open interval (0, 1)"),
        ({"--delta-prime": -0.2}, "--delta-prime: must lie in the open interval (0, 1)"),
        ({"--mc-samples": 0}, "--mc-samples: must be a positive integer"),
        (
            {"--delta": 0.6, "--delta-prime": 0.5},
            "bounds.delta + bounds.delta_prime must be below 1",
        ),
        (
            {"--sigma-min": 0.5, "--sigma-max": 0.1},
            "bounds.sigma_min (0.5) exceeds bounds.sigma_max (0.1)",
        ),
        ({"--sigma-grid": 1}, "bounds.sigma_grid = 1 needs bounds.sigma_min == bounds.sigma_max"),
        ({"--prior-epochs": None}, "the following arguments are required: --prior-epochs"),
        ({"--checkpoint-dir": None}, "the following arguments are required: --checkpoint-dir"),
        ({"--posterior-momentum": 1.0}, "--posterior-momentum: must lie in [0, 1)"),
        ({"--objective": "mse"}, "--objective: invalid choice"),
        ({"final": None}, "the following arguments are required: --final-epoch/--no-final-epoch"),
    ],
)
def test_script_rejects_bad_numbers_before_any_work(tmp_path, bounds_run, override, message):
    root, spec = bounds_run
    result = subprocess.run(
        script_command(root, tmp_path, spec, **override), capture_output=True, text=True
    )
    assert result.returncode != 0 and message in result.stderr
    assert not list(tmp_path.iterdir())


def test_script_rejects_a_checkpoint_of_another_architecture(tmp_path, bounds_run):
    from lossgeom.runs import save_weights

    root, spec = bounds_run
    other = {"name": "mlp", "hidden": [8]}
    save_weights(
        tmp_path / "other.pt",
        build_model(other).state_dict(),
        other,
        experiment="e",
        seed=0,
        epoch=2,
        status="completed",
    )
    out = tmp_path / "out"
    result = subprocess.run(
        script_command(root, out, spec, **{"--weights": tmp_path / "other.pt"}),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "architectures differ" in result.stderr
    assert "certificate" not in result.stderr  # no estimate was made
    assert not out.exists()


def test_script_optimises_against_the_initial_weights_with_the_whole_training_set(
    tmp_path, bounds_run
):
    root, spec = bounds_run
    result = subprocess.run(
        script_command(root, tmp_path, spec, **{"--prior": "init"}), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "bounds.csv").set_index("quantity")
    terms = pd.read_csv(tmp_path / "terms.csv")
    optimised = terms[terms.quantity == "certificate_optimized"].set_index("term").value
    assert table.loc["certificate_optimized", "n"] == 600 and optimised["n_prior"] == 0
    assert optimised["prior_data_dependent"] == 0
    assert table.loc["certificate_optimized", "value"] >= optimised["mc_error"]
    assert not (tmp_path / "prior").exists()  # no prior network was trained
