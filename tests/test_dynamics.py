"""The optimisation-dynamics library against dense float64 references on small models.

lossgeom.noise (per-sample gradients, Tr(H Sigma), the top-k noise fraction), lossgeom.eos
(thresholds, warm-started sharpness, gradient descent, the edge summary), lossgeom.escape (the
noise samplers' covariances, the dynamics) and lossgeom.temperature (the grid's statistics).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch.func import functional_call

from lossgeom import eos, escape, noise, temperature
from lossgeom.models import build_model, flat_parameters

SPEC = {"name": "mlp", "input_dim": 5, "hidden": [4], "num_classes": 3, "activation": "tanh"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def problem(n: int = 40, seed: int = 0, spec: dict = SPEC):
    torch.manual_seed(seed)
    model = build_model(spec).double()
    x = torch.randn(n, spec["input_dim"], dtype=torch.float64)
    y = torch.randint(0, spec["num_classes"], (n,))
    return model, x, y


def flat_loss(model, x, y, loss_fn=F.cross_entropy):
    named = list(model.named_parameters())
    theta = torch.nn.utils.parameters_to_vector([p for _, p in named]).detach()

    def loss(vector):
        params, offset = {}, 0
        for name, p in named:
            params[name] = vector[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return loss_fn(functional_call(model, params, (x,)), y)

    return loss, theta


def dense_hessian(model, x, y, loss_fn=F.cross_entropy):
    loss, theta = flat_loss(model, x, y, loss_fn)
    return torch.autograd.functional.hessian(loss, theta)


def looped_gradients(model, x, y):
    rows = []
    for i in range(x.shape[0]):
        loss, theta = flat_loss(model, x[i : i + 1], y[i : i + 1])
        rows.append(torch.autograd.functional.jacobian(loss, theta))
    return torch.stack(rows)


def relative(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


# ----- noise -----


def test_per_sample_gradients_equal_a_loop_of_single_sample_gradients():
    model, x, y = problem(n=13)
    model.train()
    fast = noise.per_sample_gradients(model, F.cross_entropy, x, y, chunk_size=5)
    assert model.training  # modes restored
    assert torch.allclose(fast, looped_gradients(model, x, y), rtol=1e-10, atol=1e-12)


def test_per_sample_gradients_skip_frozen_parameters():
    model, x, y = problem(n=6)
    model.input_layer.bias.requires_grad_(False)
    fast = noise.per_sample_gradients(model, F.cross_entropy, x, y)
    full = looped_gradients(model, x, y)
    keep = torch.ones(full.shape[1], dtype=torch.bool)
    start = model.input_layer.weight.numel()
    keep[start : start + model.input_layer.bias.numel()] = False
    assert torch.allclose(fast, full[:, keep], rtol=1e-10, atol=1e-12)


def test_noise_geometry_matches_dense_covariance_and_hessian():
    model, x, y = problem(n=40)
    hx, hy = x[:25], y[:25]
    batches = [(hx[:10], hy[:10]), (hx[10:], hy[10:])]
    k = 3
    result = noise.noise_geometry(model, F.cross_entropy, x, y, batches, k=k,
                                  trace_matvecs=300, tol=1e-10, chunk_size=7)  # fmt: skip
    G = looped_gradients(model, x, y)
    sigma = torch.cov(G.T)  # unbiased
    H = dense_hessian(model, hx, hy)
    D = H.shape[0]
    values, vectors = torch.linalg.eigh(H)
    top = vectors[:, -k:]
    assert result.dim == D and result.n_samples == 40
    assert relative(result.trace_sigma.value, torch.trace(sigma)) < 1e-8
    assert relative(result.trace_h_sigma.value, torch.trace(H @ sigma)) < 1e-5
    assert relative(result.trace_hessian.value, torch.trace(H)) < 1e-6  # 3 D products: exact
    isotropic = torch.trace(H) * torch.trace(sigma) / D
    assert relative(result.isotropic_trace_h_sigma.value, isotropic) < 1e-5
    assert relative(result.anisotropy_ratio.value, torch.trace(H @ sigma) / isotropic) < 1e-5
    fraction = torch.trace(top.T @ sigma @ top) / torch.trace(sigma)
    assert relative(result.topk_noise_fraction.value, fraction) < 1e-5
    assert result.isotropic_topk_fraction.value == k / D
    assert relative(result.sharpness.value, values[-1]) < 1e-6
    s_values, s_vectors = torch.linalg.eigh(sigma)
    alignment = (top.T @ s_vectors[:, -k:]).pow(2).sum() / k
    assert relative(result.topk_alignment.value, alignment) < 1e-5
    assert torch.allclose(result.sigma_eigenvalues, s_values.flip(0)[:k], rtol=1e-8)
    # Standard errors are those of means of per-sample terms: positive and finite.
    for quantity, value, stderr in result.rows():
        assert math.isfinite(value), quantity
        assert stderr >= 0 or math.isnan(stderr), quantity
    assert [q for q, _, _ in result.rows()] == noise.QUANTITIES


def test_noise_geometry_standard_error_of_trace_sigma_is_the_sample_mean_error():
    model, x, y = problem(n=30)
    result = noise.noise_geometry(model, F.cross_entropy, x, y, [(x, y)], k=2, trace_matvecs=60)
    G = looped_gradients(model, x, y)
    terms = (G - G.mean(0)).pow(2).sum(1) * 30 / 29
    assert relative(result.trace_sigma.stderr, terms.std() / math.sqrt(30)) < 1e-8


def test_noise_geometry_rejects_too_few_samples():
    model, x, y = problem(n=4)
    with pytest.raises(ValueError, match="k < n"):
        noise.noise_geometry(model, F.cross_entropy, x, y, [(x, y)], k=4)


# ----- edge of stability -----


def test_threshold_includes_momentum():
    assert eos.stability_threshold(0.1) == pytest.approx(20.0)
    assert eos.stability_threshold(0.1, momentum=0.9) == pytest.approx(38.0)
    assert eos.learning_rate(50.0, 2.0) == pytest.approx(0.02)
    lr = eos.learning_rate(50.0, 2.0, momentum=0.9)
    assert eos.stability_threshold(lr, 0.9) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="c must be > 1"):
        eos.learning_rate(50.0, 1.0)


def test_heavy_ball_threshold_is_where_a_quadratic_becomes_unstable():
    """On L = lambda/2 x^2, heavy ball with step eta is stable iff lambda < 2 (1 + beta) / eta."""
    eta, beta = 0.1, 0.5
    threshold = eos.stability_threshold(eta, beta)
    for lam, stable in ((0.99 * threshold, True), (1.01 * threshold, False)):
        x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        optimizer = torch.optim.SGD([x], lr=eta, momentum=beta)
        for _ in range(3000):
            optimizer.zero_grad()
            (0.5 * lam * x.pow(2)).sum().backward()
            optimizer.step()
        assert (abs(float(x.detach())) < 1.0) == stable


def test_mse_onehot_is_half_the_summed_squared_error():
    out = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    expected = 0.5 * ((0.25 + 1 + 1) + (1 + 1 + 0)) / 2
    assert float(eos.mse_onehot(out, y)) == pytest.approx(expected)


def test_warm_started_lanczos_gives_the_cold_start_sharpness():
    model, x, y = problem(n=50)
    batches = [(x, y)]
    cold, vector, cold_hvp = eos.sharpness(model, F.cross_entropy, batches, tol=1e-8, seed=3)
    exact = float(torch.linalg.eigvalsh(dense_hessian(model, x, y))[-1])
    assert relative(cold, exact) < 1e-6
    # Move the parameters a little (one GD step) and warm-start from the old eigenvector.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    moved_exact = float(torch.linalg.eigvalsh(dense_hessian(model, x, y))[-1])
    warm, _, warm_hvp = eos.sharpness(model, F.cross_entropy, batches, start=vector, tol=1e-8)
    recold, _, _ = eos.sharpness(model, F.cross_entropy, batches, tol=1e-8, seed=4)
    assert relative(warm, moved_exact) < 1e-6 and relative(recold, moved_exact) < 1e-6
    assert warm_hvp <= cold_hvp


def test_warm_start_rejects_a_bad_vector():
    model, x, y = problem(n=10)
    with pytest.raises(ValueError, match="finite vector"):
        eos.sharpness(model, F.cross_entropy, [(x, y)], start=torch.ones(3))
    dim = sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="zero vector"):
        eos.sharpness(model, F.cross_entropy, [(x, y)], start=torch.zeros(dim))


def test_gradient_descent_equals_manual_full_batch_steps():
    model, x, y = problem(n=30)
    reference = build_model(SPEC).double()
    reference.load_state_dict(model.state_dict())
    run = eos.gradient_descent(model, eos.mse_onehot, x, y, lr=0.05, steps=7, momentum=0.5,
                               measure_every=3, chunk_size=11)  # fmt: skip
    velocity = None
    for _ in range(7):
        loss, theta = flat_loss(reference, x, y, eos.mse_onehot)
        g = torch.autograd.functional.jacobian(loss, theta)
        velocity = g if velocity is None else 0.5 * velocity + g
        torch.nn.utils.vector_to_parameters(theta - 0.05 * velocity, reference.parameters())
    assert torch.allclose(flat_parameters(model), flat_parameters(reference), atol=1e-12)
    steps = sorted({s for s, q, _ in run.rows if q == "sharpness"})
    assert steps == [0, 3, 6, 7]
    losses = [v for s, q, v in run.rows if q == "train_loss"]
    assert len(losses) == 8 and run.diverged_step is None
    assert run.threshold == pytest.approx(2 * 1.5 / 0.05)


def test_gradient_descent_stops_when_it_diverges():
    model, x, y = problem(n=30)
    lam = eos.sharpness(model, eos.mse_onehot, [(x, y)])[0]
    run = eos.gradient_descent(model, eos.mse_onehot, x, y, lr=20 / lam, steps=200,
                               measure_every=50, divergence_factor=100)  # fmt: skip
    assert run.diverged_step is not None and run.diverged_step < 200


def test_gradient_descent_stops_after_the_edge():
    model, x, y = problem(n=30)
    lam = eos.sharpness(model, eos.mse_onehot, [(x, y)])[0]
    lr = eos.learning_rate(lam, 1.01)  # starts at 0.99 of the threshold: at the edge at once
    run = eos.gradient_descent(model, eos.mse_onehot, x, y, lr=lr, steps=200, measure_every=10,
                               stop_after_edge=20)  # fmt: skip
    steps = [s for s, q, _ in run.rows if q == "sharpness"]
    assert steps == [0, 10, 20]
    assert max(s for s, q, _ in run.rows if q == "train_loss") == 20


def test_summarise_edge():
    steps = np.arange(0, 1000, 10)
    values = np.where(steps < 300, 50 + steps / 10, 100 * (1 + 0.02 * np.sin(steps)))
    summary = eos.summarise(steps, values, threshold=100.0)
    assert summary.first_step_at_threshold == 300  # below 80 before, at least 98 from there
    assert summary.steps_at_edge == 990 - summary.first_step_at_threshold
    assert 0.98 <= summary.ratio_q10 <= summary.median_ratio <= summary.ratio_q90 <= 1.02
    never = eos.summarise(steps, np.full(len(steps), 10.0), threshold=100.0)
    assert never.first_step_at_threshold is None and math.isnan(never.median_ratio)


# ----- escape -----


def small_statistics(dim: int = 6, k: int = 2) -> escape.NoiseStatistics:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    sigma = a @ a.T / dim
    values, vectors = torch.linalg.eigh(sigma)
    return escape.NoiseStatistics(
        trace=float(torch.trace(sigma)),
        diagonal=torch.diagonal(sigma).clone(),
        values=values.flip(0)[:k],
        vectors=vectors.flip(1)[:, :k].T.contiguous(),
    )


@pytest.mark.parametrize("kind", escape.GaussianNoise.KINDS)
def test_noise_samplers_have_the_requested_covariance(kind):
    statistics = small_statistics()
    sampler = escape.GaussianNoise(kind, statistics, scale=0.25)
    expected = sampler.covariance()
    assert float(torch.trace(expected)) == pytest.approx(0.25 * statistics.trace)
    n = 40_000
    generator = torch.Generator().manual_seed(1)
    like = torch.empty(0, dtype=torch.float64)
    draws = torch.stack([sampler.sample(generator, like) for _ in range(n)])
    empirical = draws.T @ draws / n  # zero mean known
    # Each entry's sampling standard error for Gaussian draws: sqrt((S_ii S_jj + S_ij^2) / n).
    d = torch.diagonal(expected)
    stderr = ((d[:, None] * d[None, :] + expected.pow(2)) / n).sqrt()
    z = (empirical - expected).abs() / stderr.clamp_min(1e-12)
    assert float(z.max()) < 5.0
    assert float(draws.mean(0).abs().max()) < 5 * float(d.max().sqrt()) / math.sqrt(n)
    if kind == "leading":  # nothing outside the top-k eigenspace
        outside = draws - (draws @ statistics.vectors.T) @ statistics.vectors
        assert float(outside.abs().max()) < 1e-10


def test_noise_statistics_match_the_dense_covariance():
    model, x, y = problem(n=20)
    stats_ = escape.noise_statistics(model, F.cross_entropy, x, y, k=3)
    sigma = torch.cov(looped_gradients(model, x, y).T)
    assert relative(stats_.trace, torch.trace(sigma)) < 1e-8
    assert torch.allclose(stats_.diagonal, torch.diagonal(sigma), rtol=1e-8, atol=1e-14)
    values, vectors = torch.linalg.eigh(sigma)
    assert torch.allclose(stats_.values, values.flip(0)[:3], rtol=1e-8)
    overlap = (stats_.vectors @ vectors[:, -3:]).pow(2).sum(1)
    assert torch.allclose(overlap, torch.ones(3, dtype=torch.float64), atol=1e-8)


def test_dynamics_gd_is_deterministic_and_sgd_is_seeded():
    model, x, y = problem(n=30)
    start = {k: v.clone() for k, v in model.state_dict().items()}  # steps update in place
    statistics = escape.noise_statistics(model, F.cross_entropy, x, y, k=3)
    runs = {}
    for dynamics, seed in (("gd", 0), ("gd", 1), ("sgd", 0), ("sgd", 0), ("sgd", 1),
                           ("gld_leading", 0)):  # fmt: skip
        model.load_state_dict(start)
        trajectory = escape.continue_run(model, F.cross_entropy, (x, y), (x, y), dynamics,
                                         lr=0.1, steps=6, batch_size=4, statistics=statistics,
                                         seed=seed, measure_every=3)  # fmt: skip
        runs.setdefault(dynamics, []).append(flat_parameters(model))
        assert sorted({s for s, q, _ in trajectory.rows if q == "distance"}) == [0, 3, 6]
        assert trajectory.final("distance") > 0
    assert torch.equal(runs["gd"][0], runs["gd"][1])
    assert torch.equal(runs["sgd"][0], runs["sgd"][1])
    assert not torch.equal(runs["sgd"][0], runs["sgd"][2])


def test_escape_summary_judges_against_gd_from_the_same_start():
    import pandas as pd

    rows = []
    finals = {"gd": [4.0, 6.0], "sgd": [1.0, 4.0], "gld_isotropic": [3.9, float("nan")]}
    for dynamics, values in finals.items():
        for seed, final in enumerate(values):
            for step, value in ((0, 10.0), (5, final)):
                rows += [{"experiment": "e", "seed": seed, "dynamics": dynamics, "step": step,
                          "quantity": q, "value": value if q == "sharpness" else 0.5}
                         for q in ("sharpness", "test_accuracy", "distance")]  # fmt: skip
    summary = escape.summary_table(pd.DataFrame(rows), escape_ratio=0.5)
    fraction = summary[summary.quantity == "escaped_fraction"].set_index("dynamics")["mean"]
    # sgd: 1.0 <= 0.5 * 4.0 escaped, 4.0 > 0.5 * 6.0 did not; a NaN final never escapes.
    assert fraction.to_dict() == {"gd": 0.0, "sgd": 0.5, "gld_isotropic": 0.0}
    sharp = summary[summary.quantity == "final_sharpness"].set_index("dynamics")
    assert sharp.loc["gld_isotropic", "mean"] == 3.9  # the NaN is left out of the mean
    assert (summary.n_seeds == 2).all()
    no_gd = pd.DataFrame(rows)
    with pytest.raises(ValueError, match="include 'gd'"):
        escape.summary_table(no_gd[no_gd.dynamics != "gd"])


def test_escaped_and_intervals():
    assert escape.escaped(40.0, 100.0) and not escape.escaped(60.0, 100.0)
    assert not escape.escaped(math.nan, 100.0)
    mean, low, high = escape.confidence_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    p, low, high = escape.confidence_interval([1, 1, 1, 1, 0], proportion=True)
    assert p == 0.8 and 0.3 < low < 0.8 < high <= 1.0  # Wilson: (0.376, 0.964)
    assert (low, high) == pytest.approx((0.3755, 0.9638), abs=1e-3)


# ----- temperature -----


def test_temperature_statistics():
    rows = []
    for lr in (0.01, 0.02, 0.04):
        for batch in (32, 64):
            for seed in (0, 1):
                rows.append({"lr": lr, "batch_size": batch, "seed": seed,
                             "quantity": "final_sharpness", "value": 1.0 / (lr / batch) + seed})  # fmt: skip
    import pandas as pd

    frame = pd.DataFrame(rows)
    summary = temperature.summarise(frame)
    # Kendall's tau-b by its definition: (concordant - discordant) over the tie-corrected pairs.
    r = (frame["lr"] / frame["batch_size"]).to_numpy()
    v = frame["value"].to_numpy()
    untied_r = sum(not math.isclose(r[i], r[j]) for i in range(len(r)) for j in range(i))
    untied_v = sum(v[i] != v[j] for i in range(len(v)) for j in range(i))
    sign = [0.0 if math.isclose(r[i], r[j]) else np.sign(r[i] - r[j]) * np.sign(v[i] - v[j])
            for i in range(len(r)) for j in range(i)]  # fmt: skip
    assert summary["kendall_tau"] == pytest.approx(sum(sign) / math.sqrt(untied_r * untied_v))
    assert summary["kendall_tau"] < -0.9
    # lr 0.02 / batch 64 and lr 0.01 / batch 32 share lr/B; their sharpness differs by seed only.
    assert summary["equal_ratio_groups"] == 2
    assert np.isnan(summary["kendall_tau_given_train_loss"])  # no training loss in the table
    losses = frame.assign(quantity="train_loss", value=0.1 + frame["seed"] * 0.05)
    with_loss = temperature.summarise(pd.concat([frame, losses], ignore_index=True))
    # Sharpness here depends on eta/B and the seed, the loss on the seed only: taking the loss
    # out leaves the dependence on eta/B entire.
    assert with_loss["kendall_tau_given_train_loss"] == pytest.approx(-1.0, abs=0.1)
    assert with_loss["train_loss_tau"] == pytest.approx(0.0, abs=1e-12)
    assert summary["equal_ratio_spread"] < summary["overall_spread"]


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
COMMON = ["--data", "absent.pt", "--dataset", "mnist", "--device", "cpu", "--threads", "1"]


@pytest.mark.parametrize(
    ("script", "flags", "message"),
    [
        ("eos.py", {"--steps": "0"}, "argument --steps: must be a positive integer, got 0"),
        ("eos.py", {"--factor": "1"}, "--factor must be > 1"),
        ("eos.py", {"--tol": "abc"}, "argument --tol: not a number: 'abc'"),
        ("escape.py", {"--top-k": "60"}, "--top-k (60) must be below --train-size (50)"),
        ("escape.py", {"--dynamics": '["gd", "warp"]'}, "--dynamics must name some of"),
        ("noise.py", {"--weights-dir": "nowhere"}, "weight files missing: nowhere/epoch0.pt"),
        ("temperature.py", {"--lrs": "[0.1, -1]"}, "--lrs must be a non-empty JSON list"),
        ("temperature.py", {"--seeds": "0"}, "--seeds must be a JSON list of integers"),
    ],
)
def test_dynamics_scripts_name_bad_input_before_any_work(tmp_path, script, flags, message):
    """Each bad flag is refused by the parser (exit 2) before the data file is even opened."""
    valid = {
        "eos.py": {"--experiment": "t", "--model": '{"name": "mlp", "hidden": [4]}',
                   "--loss": "mse", "--factor": "2", "--momentum": "0", "--steps": "5",
                   "--measure-every": "5", "--lanczos-iter": "5", "--tol": "1e-3",
                   "--edge": "0.9", "--stop-after-edge": "null", "--subset": "50",
                   "--subset-seed": "0", "--chunk-size": "50", "--seed": "0"},
        "escape.py": {"--experiment": "e", "--model": '{"name": "mlp", "hidden": [4]}',
                      "--train-size": "50", "--test-size": "50", "--subset-seed": "0",
                      "--start-lr": "0.1", "--start-steps": "5", "--lr": "null", "--steps": "4",
                      "--batch-size": "10", "--top-k": "5", "--measure-every": "2",
                      "--lanczos-iter": "5", "--tol": "1e-3", "--escape-ratio": "0.5",
                      "--dynamics": '["gd"]', "--chunk-size": "50", "--seed": "0"},
        "noise.py": {"--weights-dir": "nowhere", "--epochs": "1", "--subset": "50",
                     "--subset-seed": "0", "--hessian-subset": "50", "--hessian-seed": "0",
                     "--top-k": "5", "--trace-matvecs": "6", "--tol": "1e-3",
                     "--chunk-size": "50", "--seed": "0"},
        "temperature.py": {"--batch-size": "32", "--lrs": "[0.1]", "--seeds": "[0]",
                           "--model": '{"name": "mlp", "hidden": [4]}', "--momentum": "0.9",
                           "--epochs": "1", "--train-subset": "200", "--subset-seed": "0",
                           "--curvature-subset": "50", "--trace-matvecs": "6", "--tol": "1e-3",
                           "--chunk-size": "100", "--checkpoint-dir": "ck"},
    }[script]  # fmt: skip
    arguments = [a for k, v in {**valid, **flags, "--output": "o.csv"}.items() for a in (k, v)]
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *COMMON, *arguments],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []
