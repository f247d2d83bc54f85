"""lossgeom.hessian against exact float64 Hessians of small models (torch.func.hessian)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lossgeom import estimators, hessian
from lossgeom.models import build_model

CASES = {
    "relu_mlp": {
        "name": "mlp",
        "input_dim": 6,
        "hidden": [7],
        "num_classes": 3,
        "activation": "relu",
    },
    "tanh_deep": {
        "name": "mlp",
        "input_dim": 5,
        "hidden": [6, 4],
        "num_classes": 3,
        "activation": "tanh",
    },
    "residual_layernorm": {
        "name": "mlp",
        "input_dim": 5,
        "hidden": [4, 4, 4],
        "num_classes": 3,
        "activation": "gelu",
        "residual": True,
        "norm": "layernorm",
    },
    "batchnorm": {
        "name": "mlp",
        "input_dim": 5,
        "hidden": [6],
        "num_classes": 4,
        "activation": "softplus",
        "norm": "batchnorm",
    },
    "softmax_regression": {"name": "mlp", "input_dim": 4, "hidden": [], "num_classes": 3},
    # The other registry families on 6 x 6 and 4 x 4 images (input_dim 36 and 16).
    "cnn": {"name": "cnn", "input_dim": 36, "channels": [2, 3], "hidden": [4], "num_classes": 3,
            "kernel_size": 3, "activation": "tanh"},
    "resnet_batchnorm": {"name": "resnet", "input_dim": 16, "channels": [2, 3], "num_classes": 3,
                         "activation": "tanh", "norm": "batchnorm"},
    "resnet_no_skip_no_norm": {"name": "resnet", "input_dim": 16, "channels": [2, 3],
                               "num_classes": 3, "activation": "tanh", "norm": "none",
                               "skip": False},
    "vit": {"name": "vit", "input_dim": 16, "patch_size": 2, "dim": 4, "depth": 1, "heads": 2,
            "mlp_ratio": 1, "num_classes": 3},
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run single-threaded: on problems this small, intra-op threads only add synchronisation
    (and spin for long under a loaded CPU); the previous setting comes back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_problem(case: str, n: int = 41, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(CASES[case]).double()
    if CASES[case].get("norm") == "batchnorm":  # non-trivial running statistics
        model.train()
        with torch.no_grad():
            model(torch.randn(64, CASES[case]["input_dim"], dtype=torch.float64) * 2 + 0.5)
    model.train()  # the library must switch to eval mode itself and restore this
    x = torch.randn(n, CASES[case]["input_dim"], dtype=torch.float64)
    y = torch.randint(0, CASES[case]["num_classes"], (n,))
    # Uneven batches: an unweighted mean over batches would bias the result.
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])]
    return model, x, y, batches


def exact_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    named = [(name, p) for name, p in model.named_parameters()]
    theta = torch.nn.utils.parameters_to_vector([p for _, p in named]).detach()
    was_training = model.training
    model.eval()

    def loss(vector):
        params, offset = {}, 0
        for name, p in named:
            params[name] = vector[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    # Dense float64 Hessian, one row per backward pass (torch.autograd.functional.hessian).
    # torch.func's vmapped transforms gave a non-symmetric Hessian through LayerNorm here, so
    # they are not used as the reference; symmetry is asserted as a sanity check.
    H = torch.autograd.functional.hessian(loss, theta)
    assert torch.allclose(H, H.T, atol=1e-10), "reference Hessian is not symmetric"
    model.train(was_training)
    return H


@functools.cache
def exact_hessian_of(case: str) -> torch.Tensor:
    """The exact Hessian of ``make_problem(case)``, computed once per case (it dominates the
    run time of this file)."""
    model, x, y, _ = make_problem(case)
    return exact_hessian(model, x, y)


@pytest.mark.parametrize("case", CASES)
def test_hvp_equals_exact_hessian_times_v(case):
    model, x, y, batches = make_problem(case)
    H = exact_hessian_of(case)
    for seed in range(3):
        v = torch.randn(
            H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
        )
        expected = H @ v
        fresh = hessian.hvp(model, F.cross_entropy, batches, v)
        assert torch.linalg.vector_norm(fresh - expected) <= 1e-6 * torch.linalg.vector_norm(
            expected
        )
        with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
            cached = operator.matvec(v)
            again = operator.matvec(v)
        assert torch.linalg.vector_norm(cached - expected) <= 1e-6 * torch.linalg.vector_norm(
            expected
        )
        assert torch.equal(cached, again)


def test_unweighted_batch_mean_would_differ():
    """Guards the test above: the uneven batches really make weighting matter."""
    model, x, y, batches = make_problem("tanh_deep")
    H = exact_hessian_of("tanh_deep")
    v = torch.randn(H.shape[0], dtype=torch.float64)
    unweighted = sum(hessian.hvp(model, F.cross_entropy, [b], v) for b in batches) / len(batches)
    assert torch.linalg.vector_norm(unweighted - H @ v) > 1e-3 * torch.linalg.vector_norm(H @ v)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_eigenvalues_match_eigvalsh(case, k):
    model, x, y, batches = make_problem(case)
    H = exact_hessian_of(case)
    exact = torch.linalg.eigvalsh(H).flip(0)[:k]
    result = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k, tol=1e-6, seed=1)
    assert result.converged
    assert result.values.shape == (k,) and result.vectors.shape == (k, H.shape[0])
    assert torch.all(result.values[:-1] >= result.values[1:])
    assert torch.allclose(result.values, exact, rtol=1e-4, atol=1e-10)
    residual = result.vectors @ H - result.values[:, None] * result.vectors
    assert residual.norm(dim=1).max() <= 1e-3 * exact.abs().max()
    assert 0 < result.n_hvp <= H.shape[0]


def test_top_eigenvalues_power_method_finds_largest_magnitude():
    model, x, y, batches = make_problem("relu_mlp")
    H = exact_hessian_of("relu_mlp")
    eigenvalues = torch.linalg.eigvalsh(H)
    largest_magnitude = eigenvalues[eigenvalues.abs().argmax()]
    result = hessian.top_eigenvalues(
        model, F.cross_entropy, batches, k=1, method="power", tol=1e-10, max_iter=5000
    )
    assert torch.allclose(result.values[0], largest_magnitude, rtol=1e-4)


def test_operator_leaves_model_as_found():
    model, x, y, batches = make_problem("batchnorm")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.norms[0].eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    hessian.top_eigenvalues(model, F.cross_entropy, batches, k=2)
    hessian.trace(model, F.cross_entropy, batches, n_matvecs=9)
    hessian.spectral_density(model, F.cross_entropy, batches, n_iter=5, n_runs=1)
    hessian.hvp(
        model,
        F.cross_entropy,
        batches,
        torch.ones(sum(p.numel() for p in model.parameters()), dtype=torch.float64),
    )
    assert [m.training for m in model.modules()] == modes
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("method", ["hutchinson", "hutchpp"])
@pytest.mark.parametrize("case", ["tanh_deep", "relu_mlp", "residual_layernorm"])
def test_trace_within_three_standard_errors(method, case):
    model, x, y, batches = make_problem(case)
    exact = float(torch.trace(exact_hessian_of(case)))
    result = hessian.trace(model, F.cross_entropy, batches, n_matvecs=60, method=method, seed=0)
    assert result.stderr > 0
    assert abs(result.estimate - exact) <= 3 * result.stderr
    assert result.n_hvp == 60


def test_hutchpp_is_exact_when_the_sketch_spans_the_space():
    model, x, y, batches = make_problem("softmax_regression")
    H = exact_hessian_of("softmax_regression")
    dim = H.shape[0]
    result = hessian.trace(model, F.cross_entropy, batches, n_matvecs=3 * dim + 3, method="hutchpp")
    assert result.estimate == pytest.approx(float(torch.trace(H)), rel=1e-8)


def test_spectral_density_full_lanczos_recovers_the_spectrum():
    model, x, y, batches = make_problem("tanh_deep")
    H = exact_hessian_of("tanh_deep")
    eigenvalues = torch.linalg.eigvalsh(H).numpy()
    dim = H.shape[0]
    result = hessian.spectral_density(model, F.cross_entropy, batches, n_iter=dim, n_runs=2, seed=0)
    for nodes in result.nodes:
        nodes = np.sort(nodes[~np.isnan(nodes)])
        # every Ritz value is an eigenvalue, and the extreme ones are found
        assert np.min(np.abs(nodes[:, None] - eigenvalues[None, :]), axis=1).max() < 1e-6
        assert nodes[-1] == pytest.approx(eigenvalues[-1], rel=1e-8)
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-3)
    assert result.weights.sum(axis=1) == pytest.approx(np.ones(2), abs=1e-10)
    # first moment of the quadrature: the mean eigenvalue, up to Hutchinson noise
    mean = float((result.weights * np.nan_to_num(result.nodes)).sum(axis=1).mean())
    assert mean == pytest.approx(eigenvalues.mean(), abs=3 * eigenvalues.std() / np.sqrt(2))


def test_wrappers_are_the_estimators_on_the_operator():
    """top_eigenvalues, trace and spectral_density only build the operator and delegate."""
    model, x, y, batches = make_problem("tanh_deep")
    calls = [
        (
            "top_eigenvalues",
            {"k": 2, "method": "lanczos"},
            estimators.lanczos_top_eigenpairs,
            {"k": 2},
        ),
        ("top_eigenvalues", {"k": 2, "method": "power"}, estimators.power_iteration, {"k": 2}),
        ("trace", {"n_matvecs": 12, "method": "hutchpp"}, estimators.hutchpp, {"n_matvecs": 12}),
        (
            "trace",
            {"n_matvecs": 12, "method": "hutchinson"},
            estimators.hutchinson,
            {"n_matvecs": 12},
        ),
        (
            "spectral_density",
            {"n_iter": 6, "n_runs": 2},
            estimators.slq_density,
            {"n_iter": 6, "n_runs": 2},
        ),
    ]
    for name, kwargs, estimator, estimator_kwargs in calls:
        wrapped = getattr(hessian, name)(model, F.cross_entropy, batches, seed=3, **kwargs)
        with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
            like = torch.empty(0, dtype=operator.dtype)
            direct = estimator(operator.matvec, operator.dim, seed=3, like=like, **estimator_kwargs)
            assert wrapped.n_hvp == direct.n_hvp == operator.n_matvecs
        for field in (
            "values",
            "vectors",
            "estimate",
            "stderr",
            "grid",
            "density",
            "nodes",
            "weights",
        ):
            if hasattr(wrapped, field):
                a, b = getattr(wrapped, field), getattr(direct, field)
                same = (
                    torch.equal(a, b)
                    if isinstance(a, torch.Tensor)
                    else np.array_equal(a, b, equal_nan=True)
                )
                assert same, (name, kwargs, field)


def test_bad_arguments_are_named():
    model, x, y, batches = make_problem("relu_mlp")
    with pytest.raises(ValueError, match="method"):
        hessian.top_eigenvalues(model, F.cross_entropy, batches, method="arnoldi")
    with pytest.raises(ValueError, match="k must be"):
        hessian.top_eigenvalues(model, F.cross_entropy, batches, k=0)
    with pytest.raises(ValueError, match="n_matvecs"):
        hessian.trace(model, F.cross_entropy, batches, n_matvecs=3)
    with pytest.raises(ValueError, match="entries"):
        hessian.hvp(model, F.cross_entropy, batches, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        hessian.hvp(model, F.cross_entropy, [], torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("reuse_graph", [True, False])
def test_operator_gradient_is_the_mean_loss_gradient(reuse_graph):
    model, x, y, batches = make_problem("tanh_deep")
    model.eval()
    expected = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    expected = torch.cat([g.reshape(-1) for g in expected])
    with hessian.HessianOperator(model, F.cross_entropy, batches, reuse_graph) as operator:
        gradient = operator.gradient()
        assert operator.n_matvecs == 0 and not gradient.requires_grad
    assert torch.allclose(gradient, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["relu_mlp", "tanh_deep", "residual_layernorm", "cnn"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_gradient_start_and_eigenvalue_criterion_meet_the_asked_tolerance(case, k, tol):
    model, x, y, batches = make_problem(case)
    exact = torch.linalg.eigvalsh(exact_hessian_of(case)).flip(0)[:k]
    result = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k, tol=tol,
                                     start="gradient", criterion="eigenvalue", seed=1)  # fmt: skip
    assert result.converged
    assert torch.all((result.values - exact).abs() <= tol * exact.abs())
    default = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k, tol=tol, seed=1)
    assert result.n_hvp <= default.n_hvp


def test_gradient_start_at_a_critical_point_falls_back_to_the_random_start():
    model, x, y, batches = make_problem("relu_mlp")
    zero_loss = lambda outputs, targets: 0.5 * (outputs**2).sum() / outputs.shape[0]  # noqa: E731
    model.eval()
    with torch.no_grad():  # zero the last layer: the gradient of this loss vanishes there
        for p in list(model.parameters())[-2:]:
            p.zero_()
    result = hessian.top_eigenvalues(model, zero_loss, batches, k=1, start="gradient", tol=1e-8)
    random = hessian.top_eigenvalues(model, zero_loss, batches, k=1, tol=1e-8)
    assert torch.equal(result.values, random.values)


@pytest.mark.parametrize("case", ["tanh_deep", "relu_mlp", "residual_layernorm"])
def test_krylov_trace_within_three_standard_errors(case):
    model, x, y, batches = make_problem(case)
    exact = float(torch.trace(exact_hessian_of(case)))
    result = hessian.trace(model, F.cross_entropy, batches, n_matvecs=30, method="krylov", seed=0)
    direct_hutchinson = hessian.trace(model, F.cross_entropy, batches, n_matvecs=30,
                                      method="hutchinson", seed=0)  # fmt: skip
    assert 0 < result.stderr < direct_hutchinson.stderr
    assert abs(result.estimate - exact) <= 3 * result.stderr
    assert result.n_hvp == 30


def test_new_options_are_named_when_wrong():
    model, x, y, batches = make_problem("relu_mlp")
    with pytest.raises(ValueError, match="'gradient'"):
        hessian.top_eigenvalues(model, F.cross_entropy, batches, start="grad")
    with pytest.raises(ValueError, match="lanczos"):
        hessian.top_eigenvalues(model, F.cross_entropy, batches, method="power",
                                criterion="eigenvalue")  # fmt: skip
    with pytest.raises(ValueError, match="krylov"):
        hessian.trace(model, F.cross_entropy, batches, method="lanczos")


@pytest.mark.parametrize("case", ["tanh_deep", "relu_mlp", "residual_layernorm"])
def test_eigenvalues_and_trace_from_one_lanczos_run(case):
    """Against the exact Hessian: the eigenvalues equal top_eigenvalues' bitwise, and the trace,
    deflating their Krylov basis, is within three standard errors and below plain Hutchinson's
    standard error with as many products."""
    model, x, y, batches = make_problem(case)
    H = exact_hessian_of(case)
    exact = float(torch.trace(H))
    eig, tr = hessian.top_eigenvalues_and_trace(model, F.cross_entropy, batches, k=2, tol=1e-8,
                                                n_probes=20, seed=1)  # fmt: skip
    alone = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=2, tol=1e-8, seed=1)
    assert torch.equal(eig.values, alone.values) and eig.n_hvp == alone.n_hvp
    top = torch.linalg.eigvalsh(H).flip(0)[:2]
    assert torch.allclose(eig.values, top, rtol=1e-6, atol=1e-9)
    plain = hessian.trace(
        model, F.cross_entropy, batches, n_matvecs=20, method="hutchinson", seed=1
    )
    assert tr.n_hvp == 20 and 0 < tr.stderr < plain.stderr
    assert abs(tr.estimate - exact) <= 3 * tr.stderr
    with pytest.raises(ValueError, match="n_probes"):
        hessian.top_eigenvalues_and_trace(model, F.cross_entropy, batches, n_probes=1)
