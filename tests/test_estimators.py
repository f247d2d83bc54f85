"""lossgeom.estimators on dense float64 matrices with known spectra (Q diag(lambda) Q^T)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom import estimators

DIM = 60


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run single-threaded: on problems this small, intra-op threads only add synchronisation
    (and spin for long under a loaded CPU); the previous setting comes back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def orthogonal(dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64, generator=generator))
    return q * torch.sign(torch.diagonal(r))


def with_spectrum(eigenvalues, seed: int = 0) -> torch.Tensor:
    """A symmetric matrix with the given eigenvalues and random eigenvectors."""
    eigenvalues = torch.as_tensor(eigenvalues, dtype=torch.float64)
    q = orthogonal(len(eigenvalues), seed)
    matrix = q @ torch.diag(eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


def spectrum(dim: int = DIM) -> torch.Tensor:
    """A Hessian-like spectrum: a few outliers above a bulk, and some negative eigenvalues."""
    bulk = torch.linspace(-0.5, 1.0, dim - 4, dtype=torch.float64)
    return torch.cat([torch.tensor([20.0, 12.0, 7.0, 4.0], dtype=torch.float64), bulk])


def matvec_of(matrix: torch.Tensor):
    return lambda v: matrix @ v


@pytest.mark.parametrize("k", [1, 3, 4])
def test_lanczos_top_k_matches_known_eigenvalues(k):
    lam = spectrum()
    A = with_spectrum(lam, seed=k)
    result = estimators.lanczos_top_eigenpairs(matvec_of(A), DIM, k=k, tol=1e-10, seed=k)
    assert result.converged
    assert result.values.dtype == torch.float64 and result.vectors.shape == (k, DIM)
    assert torch.allclose(result.values, lam[:k], rtol=0, atol=1e-8)
    residual = result.vectors @ A - result.values[:, None] * result.vectors
    assert residual.norm(dim=1).max() < 1e-6
    assert torch.allclose(result.vectors.norm(dim=1), torch.ones(k, dtype=torch.float64))
    assert result.n_hvp <= DIM


def test_lanczos_basis_is_orthonormal_and_tridiagonalises():
    A = with_spectrum(spectrum(), seed=3)
    start = torch.randn(DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    result = estimators.lanczos(matvec_of(A), start, 25)
    Q = result.basis
    assert result.n_matvecs == 25 and Q.shape == (25, DIM)
    assert torch.allclose(Q @ Q.T, torch.eye(25, dtype=torch.float64), atol=1e-12)
    T = np.diag(result.alpha) + np.diag(result.beta, 1) + np.diag(result.beta, -1)
    assert np.allclose((Q @ A @ Q.T).numpy(), T, atol=1e-10)


def test_lanczos_stops_on_an_invariant_subspace():
    lam = torch.tensor([5.0, 5.0, 5.0, 2.0, 2.0, 1.0], dtype=torch.float64)  # 3 distinct values
    A = with_spectrum(lam)
    start = torch.ones(6, dtype=torch.float64)
    result = estimators.lanczos(matvec_of(A), start, 6)
    assert result.converged and result.n_matvecs == 3
    assert np.allclose(
        np.sort(
            np.linalg.eigvalsh(
                np.diag(result.alpha) + np.diag(result.beta, 1) + np.diag(result.beta, -1)
            )
        ),
        [1, 2, 5],
    )
    with pytest.raises(ValueError, match="Krylov space closed"):
        estimators.lanczos_top_eigenpairs(matvec_of(A), 6, k=4)


def test_power_iteration_finds_largest_magnitudes_with_deflation():
    lam = torch.cat(
        [
            torch.tensor([-9.0, 6.0], dtype=torch.float64),
            torch.linspace(-2, 2, 38, dtype=torch.float64),
        ]
    )
    A = with_spectrum(lam, seed=1)
    result = estimators.power_iteration(matvec_of(A), 40, k=2, tol=1e-14, max_iter=2000, seed=0)
    assert result.converged
    assert torch.allclose(result.values, torch.tensor([6.0, -9.0], dtype=torch.float64), rtol=1e-8)
    residual = result.vectors @ A - result.values[:, None] * result.vectors
    assert residual.norm(dim=1).max() < 1e-5
    assert result.n_hvp <= 2 * 2000


def test_power_iteration_reports_non_convergence():
    A = with_spectrum(torch.linspace(1.0, 1.01, 30, dtype=torch.float64))  # no gap
    result = estimators.power_iteration(matvec_of(A), 30, k=1, tol=1e-15, max_iter=5)
    assert not result.converged and result.n_hvp == 5


def test_float32_template_is_honoured():
    A = with_spectrum(spectrum(), seed=2).float()
    like = torch.empty(0, dtype=torch.float32)
    lanczos = estimators.lanczos_top_eigenpairs(matvec_of(A), DIM, k=2, like=like)
    power = estimators.power_iteration(matvec_of(A), DIM, k=1, like=like)
    assert lanczos.vectors.dtype == power.vectors.dtype == torch.float32
    assert torch.allclose(lanczos.values, spectrum()[:2], rtol=1e-4)


@pytest.mark.parametrize("estimator", [estimators.hutchinson, estimators.hutchpp])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trace_within_a_few_standard_errors(estimator, seed):
    lam = spectrum()
    A = with_spectrum(lam, seed=seed)
    result = estimator(matvec_of(A), DIM, n_matvecs=45, seed=seed)
    assert result.n_hvp == 45 and result.stderr > 0
    assert abs(result.estimate - float(lam.sum())) <= 4 * result.stderr


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    lam = 100.0 * 0.7 ** torch.arange(DIM, dtype=torch.float64)
    A = with_spectrum(lam, seed=4)
    plain = estimators.hutchinson(matvec_of(A), DIM, n_matvecs=30, seed=0)
    sketched = estimators.hutchpp(matvec_of(A), DIM, n_matvecs=30, seed=0)
    assert sketched.stderr < 0.1 * plain.stderr


def test_hutchinson_is_exact_on_a_diagonal_matrix():
    lam = spectrum()
    result = estimators.hutchinson(matvec_of(torch.diag(lam)), DIM, n_matvecs=5)
    assert result.estimate == pytest.approx(float(lam.sum()), rel=1e-14)
    assert result.stderr == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("rank", [1, 5, 9])
def test_hutchpp_is_exact_when_the_sketch_covers_the_rank(rank):
    lam = torch.zeros(DIM, dtype=torch.float64)
    lam[:rank] = torch.linspace(-3.0, 10.0, rank, dtype=torch.float64) if rank > 1 else 4.0
    A = with_spectrum(lam, seed=rank)
    result = estimators.hutchpp(
        matvec_of(A), DIM, n_matvecs=3 * rank + 3, seed=0
    )  # sketch rank + 1
    assert result.estimate == pytest.approx(float(lam.sum()), abs=1e-10)
    assert result.stderr < 1e-10


def test_slq_density_integrates_to_one_and_has_the_mean_eigenvalue():
    lam = spectrum()
    A = with_spectrum(lam, seed=5)
    result = estimators.slq_density(matvec_of(A), DIM, n_iter=12, n_runs=40, seed=0, n_grid=4000)
    assert result.n_hvp == 12 * 40
    assert result.nodes.shape == result.weights.shape == (40, 12)
    assert result.weights.sum(axis=1) == pytest.approx(np.ones(40), abs=1e-12)
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-6)
    # Each run's first moment is a Hutchinson sample z^T A z / D (Gauss quadrature is exact
    # for degree 1), so its mean is within a few standard errors of Tr(A)/D.
    moments = np.nansum(result.weights * result.nodes, axis=1)
    stderr = moments.std(ddof=1) / np.sqrt(len(moments))
    assert abs(moments.mean() - float(lam.mean())) <= 4 * stderr
    integral = np.trapezoid(result.grid * result.density, result.grid)
    assert integral == pytest.approx(moments.mean(), abs=1e-6)


def test_slq_full_krylov_recovers_the_spectrum():
    lam = spectrum(40)
    A = with_spectrum(lam, seed=6)
    result = estimators.slq_density(matvec_of(A), 40, n_iter=40, n_runs=2, seed=1)
    exact = np.sort(lam.numpy())
    for nodes, weights in zip(result.nodes, result.weights, strict=True):
        assert not np.isnan(nodes).any()
        assert np.allclose(np.sort(nodes), exact, atol=1e-8)
        assert np.all(weights > 0)
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-3)


def test_same_seed_same_result_and_different_seed_different_result():
    A = with_spectrum(spectrum(), seed=7)
    first = estimators.hutchpp(matvec_of(A), DIM, n_matvecs=30, seed=3)
    again = estimators.hutchpp(matvec_of(A), DIM, n_matvecs=30, seed=3)
    other = estimators.hutchpp(matvec_of(A), DIM, n_matvecs=30, seed=4)
    assert first.estimate == again.estimate and first.estimate != other.estimate
    d1 = estimators.slq_density(matvec_of(A), DIM, n_iter=5, n_runs=3, seed=3)
    d2 = estimators.slq_density(matvec_of(A), DIM, n_iter=5, n_runs=3, seed=3)
    assert np.array_equal(d1.density, d2.density)


def test_bad_arguments_are_named():
    A = with_spectrum(spectrum())
    with pytest.raises(ValueError, match="k must be"):
        estimators.lanczos_top_eigenpairs(matvec_of(A), DIM, k=0)
    with pytest.raises(ValueError, match="exceeds"):
        estimators.power_iteration(matvec_of(A), DIM, k=DIM + 1)
    with pytest.raises(ValueError, match="n_matvecs"):
        estimators.hutchpp(matvec_of(A), DIM, n_matvecs=5)
    with pytest.raises(ValueError, match="n_matvecs"):
        estimators.hutchinson(matvec_of(A), DIM, n_matvecs=1)
    with pytest.raises(ValueError, match="n_iter"):
        estimators.slq_density(matvec_of(A), DIM, n_iter=0)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_eigenvalue_criterion_meets_tol_in_fewer_products(k, tol):
    """The eigenvalue rule stops once the values (not the Ritz residuals) are within tol."""
    lam = spectrum()
    A = with_spectrum(lam, seed=5)
    by_value = estimators.lanczos_top_eigenpairs(
        matvec_of(A), DIM, k=k, tol=tol, seed=3, criterion="eigenvalue"
    )
    by_residual = estimators.lanczos_top_eigenpairs(matvec_of(A), DIM, k=k, tol=tol, seed=3)
    assert by_value.converged
    assert torch.all((by_value.values - lam[:k]).abs() <= tol * lam[:k].abs())
    assert by_value.n_hvp < by_residual.n_hvp


def test_eigenvalue_error_estimate_is_the_kato_temple_bound_on_a_clean_gap():
    theta, residual, top = np.array([10.0, 4.0, 1.0]), np.array([0.5, 0.1]), np.array([0, 1])
    bound = estimators._value_error_bound(theta, residual, top)
    assert np.allclose(bound, [0.25 / 6.0, 0.01 / 3.0])
    assert np.allclose(estimators._value_error_bound(theta[:1], np.array([0.5]), top[:1]), 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_krylov_hutchinson_within_a_few_standard_errors(seed):
    lam = spectrum()
    A = with_spectrum(lam, seed=seed)
    result = estimators.krylov_hutchinson(matvec_of(A), DIM, n_matvecs=30, seed=seed)
    assert result.n_hvp == 30 and result.stderr > 0
    assert abs(result.estimate - float(lam.sum())) <= 4 * result.stderr


def test_krylov_hutchinson_is_unbiased():
    """The mean over many seeds is the trace (the probes are drawn after the basis is fixed)."""
    lam = spectrum()
    A = with_spectrum(lam, seed=7)
    runs = [
        estimators.krylov_hutchinson(matvec_of(A), DIM, n_matvecs=8, seed=s) for s in range(400)
    ]
    estimates = np.array([r.estimate for r in runs])
    spread = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - float(lam.sum())) <= 4 * spread


def test_krylov_hutchinson_beats_hutchpp_and_hutchinson_on_outliers_above_a_bulk():
    lam = spectrum()
    errors = {name: [] for name in ("krylov", "hutchpp", "hutchinson")}
    for seed in range(20):
        A = with_spectrum(lam, seed=seed)
        for name, estimator in (("krylov", estimators.krylov_hutchinson),
                                ("hutchpp", estimators.hutchpp),
                                ("hutchinson", estimators.hutchinson)):  # fmt: skip
            result = estimator(matvec_of(A), DIM, n_matvecs=12, seed=seed)
            errors[name].append(abs(result.estimate - float(lam.sum())))
    mean = {name: float(np.mean(e)) for name, e in errors.items()}
    assert mean["krylov"] < 0.75 * mean["hutchpp"] and mean["krylov"] < 0.3 * mean["hutchinson"]


@pytest.mark.parametrize("rank", [1, 4])
def test_krylov_hutchinson_is_exact_when_the_krylov_space_closes(rank):
    lam = torch.zeros(DIM, dtype=torch.float64)
    lam[:rank] = torch.linspace(-3.0, 10.0, rank, dtype=torch.float64) if rank > 1 else 4.0
    A = with_spectrum(lam, seed=rank)
    result = estimators.krylov_hutchinson(matvec_of(A), DIM, n_matvecs=2 * rank + 4, seed=0)
    assert result.estimate == pytest.approx(float(lam.sum()), abs=1e-9)
    assert result.stderr < 1e-9 and result.n_hvp == 2 * rank + 4


def test_new_options_name_bad_arguments():
    A = with_spectrum(spectrum())
    with pytest.raises(ValueError, match="criterion"):
        estimators.lanczos_top_eigenpairs(matvec_of(A), DIM, criterion="values")
    with pytest.raises(ValueError, match="n_matvecs >= 4"):
        estimators.krylov_hutchinson(matvec_of(A), DIM, n_matvecs=3)
    with pytest.raises(ValueError, match="krylov_fraction"):
        estimators.krylov_hutchinson(matvec_of(A), DIM, n_matvecs=10, krylov_fraction=1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_eigenpairs_and_trace_share_one_lanczos_run(seed):
    """The eigenpairs are lanczos_top_eigenpairs' bitwise; the trace adds only its probes."""
    lam = spectrum()
    A = with_spectrum(lam, seed=seed)
    calls = []

    def counted(v):
        calls.append(1)
        return A @ v

    eig, tr = estimators.lanczos_eigenpairs_and_trace(counted, DIM, k=3, tol=1e-8, n_probes=10,
                                                      seed=seed)  # fmt: skip
    alone = estimators.lanczos_top_eigenpairs(matvec_of(A), DIM, k=3, tol=1e-8, seed=seed)
    assert torch.equal(eig.values, alone.values) and torch.equal(eig.vectors, alone.vectors)
    assert eig.n_hvp == alone.n_hvp and tr.n_hvp == 10 and len(calls) == eig.n_hvp + 10
    assert torch.allclose(eig.values, lam.sort(descending=True).values[:3], rtol=1e-8)
    assert 0 < tr.stderr and abs(tr.estimate - float(lam.sum())) <= 4 * tr.stderr


def test_eigenpairs_and_trace_is_unbiased_and_beats_hutchpp_at_the_same_added_cost():
    """Mean over seeds is the trace; the n probes after the eigensolve beat Hutch++ and
    Hutchinson with the same n products (what the trace would cost on top of the eigensolve)."""
    lam = spectrum()
    estimates, errors = [], {"deflated": [], "hutchpp": [], "hutchinson": []}
    for seed in range(200):
        A = with_spectrum(lam, seed=seed % 20)
        _, tr = estimators.lanczos_eigenpairs_and_trace(matvec_of(A), DIM, k=3, tol=1e-4,
                                                        n_probes=12, seed=seed)  # fmt: skip
        estimates.append(tr.estimate)
        if seed < 20:
            errors["deflated"].append(abs(tr.estimate - float(lam.sum())))
            for name in ("hutchpp", "hutchinson"):
                other = getattr(estimators, name)(matvec_of(A), DIM, n_matvecs=12, seed=seed)
                errors[name].append(abs(other.estimate - float(lam.sum())))
    estimates = np.array(estimates)
    spread = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - float(lam.sum())) <= 4 * spread
    mean = {name: float(np.mean(e)) for name, e in errors.items()}
    assert mean["deflated"] < 0.75 * mean["hutchpp"] and mean["deflated"] < 0.3 * mean["hutchinson"]


def test_eigenpairs_and_trace_is_exact_when_the_krylov_space_closes():
    lam = torch.zeros(DIM, dtype=torch.float64)
    lam[:4] = torch.tensor([10.0, 6.0, 2.0, -3.0], dtype=torch.float64)
    A = with_spectrum(lam, seed=4)
    eig, tr = estimators.lanczos_eigenpairs_and_trace(matvec_of(A), DIM, k=2, tol=1e-10, n_probes=3)
    assert tr.estimate == pytest.approx(15.0, abs=1e-9) and tr.stderr < 1e-9
    with pytest.raises(ValueError, match="n_matvecs >= 2"):
        estimators.lanczos_eigenpairs_and_trace(matvec_of(A), DIM, n_probes=1)
