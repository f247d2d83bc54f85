"""Spectral estimators for a symmetric linear operator given only as a matrix-vector product.

Every estimator takes ``matvec(v: Tensor) -> Tensor``, the operator's dimension ``dim``, a
seed, and optionally ``like``, a template tensor whose dtype and device the vectors take
(default float64 on the CPU). Random draws come from a CPU ``torch.Generator`` seeded with
``seed`` and are then moved to ``like``'s dtype and device, so a result depends only on the
seed, not on the device. Nothing here knows about models: :mod:`lossgeom.hessian` builds the
Hessian operator and calls these.

Methods:
    * Lanczos (Lanczos 1950) with full reorthogonalisation and a Ritz-residual stopping rule
      (Paige 1972; Parlett 1998, 13.2): :func:`lanczos`, :func:`lanczos_top_eigenpairs`.
    * Power iteration (von Mises & Pollaczek-Geiringer 1929) with Hotelling (1933) deflation:
      :func:`power_iteration`.
    * Trace: Hutchinson (1989) with Rademacher probes, :func:`hutchinson`; Hutch++ (Meyer et
      al. 2021), :func:`hutchpp`; Hutchinson on the remainder of a Lanczos deflation (a
      Krylov variant of Hutch++), :func:`krylov_hutchinson`; the top eigenpairs and the
      trace from one Lanczos run whose basis the trace deflates,
      :func:`lanczos_eigenpairs_and_trace`.
    * Spectral density: stochastic Lanczos quadrature (Ubaru et al. 2017; Ghorbani et al.
      2019) with Gaussian broadening, :func:`slq_density`.

Example:
    >>> import torch
    >>> from lossgeom import estimators
    >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    >>> result = estimators.lanczos_top_eigenpairs(lambda v: A @ v, 10, k=2, tol=1e-10)
    >>> [round(float(x), 6) for x in result.values]
    [10.0, 9.0]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]

__all__ = [
    "DensityResult",
    "EigenResult",
    "ExtremeResult",
    "LanczosResult",
    "TraceResult",
    "hutchinson",
    "hutchpp",
    "krylov_hutchinson",
    "lanczos",
    "lanczos_eigenpairs_and_trace",
    "lanczos_extreme_eigenvalues",
    "lanczos_top_eigenpairs",
    "power_iteration",
    "slq_density",
]


@dataclass
class LanczosResult:
    """Output of :func:`lanczos`: the tridiagonal matrix and the basis that built it.

    Attributes:
        alpha: ``(m,)`` diagonal of the Lanczos tridiagonal matrix ``T``.
        beta: ``(m - 1,)`` off-diagonal of ``T``.
        basis: ``(m, dim)`` orthonormal Lanczos vectors as rows.
        n_matvecs: matrix-vector products taken.
        converged: whether the stopping rule was met (or the Krylov space closed).
        last_beta: the norm of the last residual, ``beta_m``: the Ritz pair ``(theta_i, y_i)``
            has residual ``||A y_i - theta_i y_i|| = beta_m |s_{m,i}|``.
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: Tensor  # (m, P): orthonormal Lanczos vectors as rows
    n_matvecs: int
    converged: bool
    last_beta: float = 0.0


@dataclass
class EigenResult:
    """Top eigenvalues of a symmetric operator.

    Attributes:
        values: ``(k,)`` eigenvalues, descending (algebraic for Lanczos).
        vectors: ``(k, P)`` unit eigenvectors, one per row.
        n_hvp: Hessian- (matrix-) vector products taken (graph building not counted).
        seconds: wall time, graph building included when called through
            :func:`lossgeom.hessian.top_eigenvalues`.
        converged: whether the stopping rule was met within ``max_iter``.
    """

    values: Tensor
    vectors: Tensor
    n_hvp: int
    seconds: float
    converged: bool


@dataclass
class TraceResult:
    """A stochastic trace estimate with its standard error.

    Attributes:
        estimate: the trace estimate.
        stderr: its standard error (of the stochastic part).
        n_hvp: Hessian- (matrix-) vector products taken.
        seconds: wall time.
    """

    estimate: float
    stderr: float
    n_hvp: int
    seconds: float


@dataclass
class DensityResult:
    """A smoothed spectral density from stochastic Lanczos quadrature.

    Attributes:
        grid: eigenvalue grid.
        density: density on the grid, integrating to 1 (the spectral measure divided by P).
        nodes, weights: ``(n_runs, n_iter)`` quadrature nodes (Ritz values) and weights.
        sigma: the Gaussian broadening used.
        n_hvp: Hessian- (matrix-) vector products taken.
        seconds: wall time.
        residuals: ``(n_runs, n_iter)`` Ritz residual bounds ``beta_m |s_{m,i}|`` of the nodes
            (small: the node is a converged eigenvalue), NaN where padded.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    n_hvp: int
    seconds: float
    residuals: np.ndarray | None = None


def _template(like: Tensor | None) -> Tensor:
    return torch.empty(0, dtype=torch.float64) if like is None else like


def _generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return generator


def _random_start(dim: int, seed: int, like: Tensor) -> Tensor:
    return torch.randn(dim, generator=_generator(seed), dtype=torch.float64).to(like)


def _rademacher(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (2 * signs - 1).to(dtype=like.dtype, device=like.device)


def _check_k(k: int, dim: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > dim:
        raise ValueError(f"k={k} exceeds the dimension of the operator ({dim})")


def _check_matvecs(method: str, n_matvecs: int, minimum: int) -> None:
    if n_matvecs < minimum:
        raise ValueError(f"{method} needs n_matvecs >= {minimum}, got {n_matvecs}")


def _ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs ``(theta, S)`` of the tridiagonal matrix with diagonal alpha, off-diagonal beta."""
    if len(alpha) == 1:
        return alpha.copy(), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(alpha, beta[: len(alpha) - 1])


def _value_error_bound(theta: np.ndarray, residual: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Estimated errors of the Ritz values ``theta[top]``: ``min(r, r**2 / gap)``.

    ``r`` is the residual bound ``beta_m |s_{m,i}|`` (an eigenvalue lies within ``r``) and
    ``gap`` the distance to the nearest other Ritz value (Kato-Temple; Parlett 1998, 11.7, with
    the Ritz values standing in for the unknown eigenvalues, so an estimate, not a bound).
    """
    others = np.abs(theta[top][:, None] - theta[None, :])
    others[np.arange(len(top)), top] = np.inf
    gap = others.min(axis=1)  # infinite for a lone Ritz value: the residual is all we have
    return np.where(
        np.isinf(gap), residual, np.minimum(residual, residual**2 / np.maximum(gap, 1e-300))
    )


def _ritz_converged(
    alpha: list[float],
    beta: list[float],
    k: int,
    tol: float,
    ends: str = "top",
    criterion: str = "residual",
) -> bool:
    """Whether the ``k`` largest Ritz values (``ends="both"``: and the ``k`` smallest) converged.

    That is, whether their residual bounds ``beta_m |s_{m,i}|`` (``criterion="eigenvalue"``:
    their estimated eigenvalue errors, :func:`_value_error_bound`) are within
    ``tol * |theta_i|``; the smallest, which may lie near zero, are held to
    ``tol * max |theta|`` instead (always on their residuals).
    """
    theta, s = _ritz(np.array(alpha), np.array(beta))
    order = np.argsort(theta)
    top = order[::-1][:k]
    residual = beta[-1] * np.abs(s[-1, top])
    if criterion == "eigenvalue":
        residual = _value_error_bound(theta, residual, top)
    converged = bool(np.all(residual <= tol * np.maximum(np.abs(theta[top]), 1e-30)))
    if ends == "both":
        bottom = order[:k]
        scale = max(float(np.abs(theta).max()), 1e-30)
        converged &= bool(np.all(beta[-1] * np.abs(s[-1, bottom]) <= tol * scale))
    return converged


def lanczos(
    matvec: MatVec,
    start: Tensor,
    max_iter: int,
    k: int | None = None,
    tol: float | None = None,
    ends: str = "top",
    criterion: str = "residual",
) -> LanczosResult:
    """Symmetric Lanczos (Lanczos 1950) with full reorthogonalisation (Paige 1972).

    See also Golub & Van Loan, Matrix Computations, 10.1.

    Args:
        matvec: the symmetric operator.
        start: the starting vector (normalised here); its dtype and device are the basis's.
        max_iter: the largest Krylov dimension (capped at ``start.numel()``).
        k: with ``tol``, stop as soon as the ``k`` largest Ritz values have residual bounds
            ``beta_m |s_{m,i}| <= tol * |theta_i|`` (Parlett 1998, 13.2); the eigenvalue error
            is then of order ``tol**2 * |theta|^2 / gap``.
        tol: the relative residual tolerance of that stopping rule.
        ends: ``"top"``, or ``"both"`` to wait for the ``k`` smallest Ritz values too.
        criterion: ``"residual"`` (that rule) or ``"eigenvalue"``: stop when the estimated
            eigenvalue errors ``min(r, r**2 / gap)`` are within ``tol * |theta_i|``, which
            stops as soon as the values (not the vectors) have the asked relative accuracy.

    Returns:
        A :class:`LanczosResult`. It stops early, converged, when the Krylov space closes
        (an invariant subspace: ``beta`` below ``1e-10 * max(|alpha|, 1)``).
    """
    dim = start.numel()
    max_iter = min(max_iter, dim)
    basis = torch.empty(
        max_iter, dim, dtype=start.dtype, device=start.device
    )  # rows filled as built
    alpha: list[float] = []
    beta: list[float] = []
    q = start / torch.linalg.vector_norm(start)
    converged = False
    n = 0
    for j in range(max_iter):
        basis[j] = q
        w = matvec(q)
        n += 1
        a = float(torch.dot(w, q))
        alpha.append(a)
        # Two passes of classical Gram-Schmidt against all previous vectors keep the basis
        # orthogonal to working precision, which plain three-term Lanczos does not.
        active = basis[: j + 1]
        for _ in range(2):
            w = w - active.T @ (active @ w)
        b = float(torch.linalg.vector_norm(w))
        beta.append(b)
        if (
            k is not None
            and tol is not None
            and j + 1 >= k
            and _ritz_converged(alpha, beta, k, tol, ends, criterion)
        ):
            converged = True
            break
        if b <= 1e-10 * max(abs(a), 1.0):  # invariant subspace: the spectrum is exhausted
            converged = True
            break
        q = w / b
    m = len(alpha)
    return LanczosResult(
        alpha=np.array(alpha),
        beta=np.array(beta[: m - 1]),
        basis=basis[:m],
        n_matvecs=n,
        converged=converged,
        last_beta=beta[-1],
    )


def _top_ritz_pairs(result: LanczosResult, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` algebraically largest Ritz values (float64) and unit Ritz vectors (rows)."""
    theta, s = _ritz(result.alpha, result.beta)
    if len(theta) < k:
        raise ValueError(
            f"the Krylov space closed after {len(theta)} steps: the operator has fewer than "
            f"k={k} eigenvalues reachable from this start; use a smaller k or another seed"
        )
    top = np.argsort(theta)[::-1][:k]
    ritz = torch.as_tensor(s[:, top].T.copy(), dtype=result.basis.dtype, device=result.basis.device)
    vectors = ritz @ result.basis
    vectors /= torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
    values = torch.as_tensor(theta[top].copy(), dtype=torch.float64)
    return values, vectors


def lanczos_top_eigenpairs(
    matvec: MatVec,
    dim: int,
    k: int = 1,
    tol: float = 1e-4,
    max_iter: int | None = None,
    seed: int = 0,
    like: Tensor | None = None,
    start: Tensor | None = None,
    criterion: str = "residual",
    mix: float = 1e-3,
) -> EigenResult:
    """The ``k`` algebraically largest eigenpairs by Lanczos (Lanczos 1950).

    Lanczos with full reorthogonalisation from a Gaussian start (or ``start``), stopped by the
    Ritz-residual rule of :func:`lanczos`; the eigenvectors are the Ritz vectors.

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        k: how many eigenpairs.
        tol: relative Ritz-residual tolerance.
        max_iter: Krylov dimension cap (default ``max(100, 20 k)``).
        seed: seeds the Gaussian starting vector.
        like: dtype and device template for the vectors (default float64, CPU).
        start: a starting vector in place of the Gaussian one (a warm start: the previous top
            eigenvector of a slowly changing operator, as when sharpness is tracked along
            training, needs only a few products). A start orthogonal to every wanted
            eigenvector cannot find them; a warm start mixed with a little of the seeded
            Gaussian vector (``start / |start| + mix g / |g|``) keeps every direction reachable.
        criterion: the stopping rule of :func:`lanczos`: ``"residual"`` (Ritz residuals within
            ``tol``; eigenvalue errors then far below ``tol``) or ``"eigenvalue"`` (estimated
            eigenvalue errors within ``tol``: fewer products for the same asked accuracy).
        mix: the weight of the seeded Gaussian vector added to a unit ``start``: ``1e-3`` for a
            warm start near the answer; ``1`` for a start that is only likely to be rich in the
            top eigenvectors (the loss gradient), so that a start poor in one of them costs no
            more than the Gaussian start.

    Returns:
        An :class:`EigenResult`; ``converged`` says whether the stopping rule was met.

    Raises:
        ValueError: if ``k`` is not in ``[1, dim]`` or the Krylov space closes before ``k``
            Ritz values exist.
    """
    eig, _ = _lanczos_eigenpairs(matvec, dim, k, tol, max_iter, _generator(seed), like, start,
                                 criterion, mix)  # fmt: skip
    return eig


def _lanczos_eigenpairs(
    matvec: MatVec,
    dim: int,
    k: int,
    tol: float,
    max_iter: int | None,
    generator: torch.Generator,
    like: Tensor | None,
    start: Tensor | None,
    criterion: str,
    mix: float,
) -> tuple[EigenResult, LanczosResult]:
    """:func:`lanczos_top_eigenpairs` with the Gaussian start drawn from ``generator``."""
    _check_k(k, dim)
    if criterion not in ("residual", "eigenvalue"):
        raise ValueError(f"criterion must be 'residual' or 'eigenvalue', got {criterion!r}")
    start_time = time.perf_counter()
    random = torch.randn(dim, generator=generator, dtype=torch.float64).to(_template(like))
    if start is not None:
        start = start.reshape(-1).to(dtype=random.dtype, device=random.device)
        if start.numel() != dim or not bool(torch.isfinite(start).all()):
            raise ValueError(f"start must be a finite vector of {dim} entries")
        norm = float(torch.linalg.vector_norm(start))
        if norm == 0:
            raise ValueError("start must not be the zero vector")
        random = start / norm + mix * random / torch.linalg.vector_norm(random)
    result = lanczos(
        matvec, random, max_iter or max(100, 20 * k), k=k, tol=tol, criterion=criterion
    )
    values, vectors = _top_ritz_pairs(result, k)
    eig = EigenResult(
        values=values,
        vectors=vectors,
        n_hvp=result.n_matvecs,
        seconds=time.perf_counter() - start_time,
        converged=result.converged,
    )
    return eig, result


def lanczos_eigenpairs_and_trace(
    matvec: MatVec,
    dim: int,
    k: int = 1,
    tol: float = 1e-4,
    n_probes: int = 20,
    max_iter: int | None = None,
    seed: int = 0,
    like: Tensor | None = None,
    criterion: str = "residual",
) -> tuple[EigenResult, TraceResult]:
    """The ``k`` largest eigenpairs and the trace, the trace deflating the eigensolve's Krylov space.

    The eigenpairs are those of :func:`lanczos_top_eigenpairs` with the same arguments (the
    same Gaussian start, bitwise). Its Lanczos basis ``Q`` then serves as the trace's sketch,
    as in :func:`krylov_hutchinson`, at no further cost: ``Tr(Q^T A Q)`` is the sum of the
    Lanczos ``alpha``, and ``n_probes`` Rademacher probes, drawn after the start from the same
    generator (so independent of ``Q``, and the estimate unbiased), run Hutchinson (1989) on
    the remainder ``(I - QQ^T) A (I - QQ^T)``. The Krylov space that converged the top
    eigenvalues holds the outliers that dominate a Hessian's trace variance, so ``n_probes``
    probes after an eigensolve of ``m`` steps do better than Hutch++ with ``n_probes``
    further products (on the report's MLP, 20 probes gave the standard error of Hutch++ with 60
    products: see the README), as in the Krylov variants of Hutch++ (Persson, Cortinovis & Kressner 2022;
    Chen & Hallman 2023).

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        k: how many eigenpairs.
        tol: relative Ritz-residual tolerance.
        n_probes: the trace's own products (at least 2).
        max_iter: Krylov dimension cap (default ``max(100, 20 k)``).
        seed: seeds the Gaussian start and then the probes, from one generator.
        like: dtype and device template for the vectors (default float64, CPU).
        criterion: the stopping rule of :func:`lanczos`.

    Returns:
        ``(eigen, trace)``: an :class:`EigenResult` (its products and time) and a
        :class:`TraceResult` whose ``n_hvp`` and ``seconds`` are the probes' alone.

    Raises:
        ValueError: if ``n_probes < 2`` or ``k`` is not in ``[1, dim]``.
    """
    _check_matvecs("the deflated trace", n_probes, 2)
    generator = _generator(seed)
    eig, krylov = _lanczos_eigenpairs(matvec, dim, k, tol, max_iter, generator, like, None,
                                      criterion, 1e-3)  # fmt: skip
    start_time = time.perf_counter()
    samples = _hutchinson_samples(matvec, dim, n_probes, generator, _template(like), krylov.basis)
    return eig, _trace_result(float(krylov.alpha.sum()), samples, n_probes, start_time)


@dataclass
class ExtremeResult:
    """The smallest and largest eigenvalue of a symmetric operator (one Lanczos run).

    Attributes:
        eig_min, eig_max: the extreme Ritz values.
        n_hvp: matrix-vector products taken.
        seconds: wall time.
        converged: whether both ends met the stopping rule within ``max_iter``.
    """

    eig_min: float
    eig_max: float
    n_hvp: int
    seconds: float
    converged: bool


def lanczos_extreme_eigenvalues(
    matvec: MatVec,
    dim: int,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    like: Tensor | None = None,
) -> ExtremeResult:
    """Both ends of the spectrum from one Lanczos run (Li et al. 2018's non-convexity maps).

    Extreme Ritz values converge first at both ends of the spectrum, so one Krylov space gives
    ``lambda_min`` and ``lambda_max``; the run stops when both residual bounds are within
    ``tol`` (the top one relative to itself, the bottom one relative to ``max |theta|``).
    """
    start_time = time.perf_counter()
    result = lanczos(matvec, _random_start(dim, seed, _template(like)), max_iter, k=1, tol=tol,
                     ends="both")  # fmt: skip
    theta, _ = _ritz(result.alpha, result.beta)
    return ExtremeResult(
        eig_min=float(theta.min()),
        eig_max=float(theta.max()),
        n_hvp=result.n_matvecs,
        seconds=time.perf_counter() - start_time,
        converged=result.converged,
    )


def _deflated_power(
    matvec: MatVec, v: Tensor, values: list[float], vectors: list[Tensor], tol: float, max_iter: int
) -> tuple[float, Tensor, bool]:
    """Power iteration from the unit vector ``v`` on the operator minus the pairs found so far.

    Stops when the Rayleigh quotient changes by at most ``tol`` relative.
    """
    estimate, converged = math.nan, False
    for _ in range(max_iter):
        w = matvec(v)
        for value, vector in zip(values, vectors, strict=True):
            w -= value * torch.dot(vector, v) * vector
        new = float(torch.dot(v, w))
        norm = torch.linalg.vector_norm(w)
        if norm == 0:
            return 0.0, v, True
        v = w / norm
        if not math.isnan(estimate) and abs(new - estimate) <= tol * abs(new):
            estimate, converged = new, True
            break
        estimate = new
    return estimate, v, converged


def power_iteration(
    matvec: MatVec,
    dim: int,
    k: int = 1,
    tol: float = 1e-4,
    max_iter: int | None = None,
    seed: int = 0,
    like: Tensor | None = None,
) -> EigenResult:
    """The ``k`` largest-magnitude eigenpairs by power iteration with Hotelling deflation.

    Power iteration (von Mises & Pollaczek-Geiringer 1929), the method of PyHessian (Yao et
    al. 2020); eigenpair ``i`` starts from a Gaussian vector seeded ``seed + i`` and iterates
    on the operator with the ``i`` pairs found so far deflated (Hotelling 1933).

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        k: how many eigenpairs.
        tol: stop an eigenpair when the Rayleigh quotient changes by at most this, relative.
        max_iter: iterations per eigenpair (default 100).
        seed: seeds the starting vectors.
        like: dtype and device template for the vectors (default float64, CPU).

    Returns:
        An :class:`EigenResult`, sorted by descending value (which may include negative
        eigenvalues of large magnitude); ``converged`` is true only if every pair converged.

    Raises:
        ValueError: if ``k`` is not in ``[1, dim]``.
    """
    _check_k(k, dim)
    start_time = time.perf_counter()
    like = _template(like)
    max_iter = max_iter or 100
    values: list[float] = []
    vectors: list[Tensor] = []
    n_matvecs = 0

    def counted(v: Tensor) -> Tensor:
        nonlocal n_matvecs
        n_matvecs += 1
        return matvec(v)

    all_converged = True
    for i in range(k):
        v = _random_start(dim, seed + i, like)
        v /= torch.linalg.vector_norm(v)
        estimate, v, converged = _deflated_power(counted, v, values, vectors, tol, max_iter)
        all_converged &= converged
        values.append(estimate)
        vectors.append(v)
    order = np.argsort(values)[::-1]
    return EigenResult(
        values=torch.tensor([values[i] for i in order], dtype=torch.float64),
        vectors=torch.stack([vectors[i] for i in order]),
        n_hvp=n_matvecs,
        seconds=time.perf_counter() - start_time,
        converged=all_converged,
    )


def _hutchinson_samples(
    matvec: MatVec,
    dim: int,
    n_probes: int,
    generator: torch.Generator,
    like: Tensor,
    basis: Tensor | None = None,
) -> np.ndarray:
    """``z^T A z`` for Rademacher probes ``z``, projected off ``basis``'s rows when given."""
    samples = []
    for _ in range(n_probes):
        z = _rademacher((dim,), generator, like)
        if basis is not None:
            z = z - basis.T @ (basis @ z)
        samples.append(float(torch.dot(z, matvec(z))))
    return np.array(samples)


def _trace_result(
    low_rank: float, samples: np.ndarray, n_matvecs: int, start_time: float
) -> TraceResult:
    return TraceResult(
        estimate=low_rank + float(samples.mean()),
        stderr=float(samples.std(ddof=1) / math.sqrt(len(samples))),
        n_hvp=n_matvecs,
        seconds=time.perf_counter() - start_time,
    )


def hutchinson(
    matvec: MatVec,
    dim: int,
    n_matvecs: int = 100,
    seed: int = 0,
    like: Tensor | None = None,
) -> TraceResult:
    """Hutchinson's (1989) trace estimator with Rademacher probes.

    The estimate is the mean of ``z^T A z`` over ``n_matvecs`` probes; the standard error is
    the sample standard deviation over ``sqrt(n_matvecs)``.

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        n_matvecs: number of probes, one product each (at least 2).
        seed: seeds the probes.
        like: dtype and device template for the probes (default float64, CPU).

    Returns:
        A :class:`TraceResult`.

    Raises:
        ValueError: if ``n_matvecs < 2``.
    """
    _check_matvecs("hutchinson", n_matvecs, 2)
    start_time = time.perf_counter()
    generator = _generator(seed)
    samples = _hutchinson_samples(matvec, dim, n_matvecs, generator, _template(like))
    return _trace_result(0.0, samples, n_matvecs, start_time)


def _range_sketch(
    matvec: MatVec, dim: int, rank: int, generator: torch.Generator, like: Tensor
) -> tuple[Tensor, float]:
    """Hutch++'s first two thirds of the products: the range sketch and its exact trace.

    Returns an orthonormal basis ``Q`` (rows) of ``A S`` for a Rademacher sketch ``S``, and
    ``Tr(Q^T A Q)``.
    """
    sketch = _rademacher((rank, dim), generator, like)
    images = torch.stack([matvec(s) for s in sketch])
    basis = torch.linalg.qr(images.T.double()).Q.T.to(like)  # (rank, P), orthonormal rows
    low_rank = float(sum(torch.dot(q, matvec(q)) for q in basis))
    return basis, low_rank


def hutchpp(
    matvec: MatVec,
    dim: int,
    n_matvecs: int = 100,
    seed: int = 0,
    like: Tensor | None = None,
) -> TraceResult:
    """Hutch++ trace estimator (Meyer, Musco, Musco & Woodruff 2021).

    A third of the products sketch the top range ``Q`` (whose part of the trace is taken
    exactly as ``Tr(Q^T A Q)``), a third compute ``A Q``, and the rest run Hutchinson (1989)
    on the deflated remainder ``(I - QQ^T) A (I - QQ^T)``. The standard error is that of the
    remainder's Hutchinson part. Exact when the sketch's rank covers the operator's rank.

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        n_matvecs: total products (at least 6).
        seed: seeds the sketch and then the probes, from one generator.
        like: dtype and device template for the vectors (default float64, CPU).

    Returns:
        A :class:`TraceResult`.

    Raises:
        ValueError: if ``n_matvecs < 6``.
    """
    _check_matvecs("hutchpp", n_matvecs, 6)
    start_time = time.perf_counter()
    generator = _generator(seed)
    like = _template(like)
    rank = n_matvecs // 3
    basis, low_rank = _range_sketch(matvec, dim, rank, generator, like)
    samples = _hutchinson_samples(matvec, dim, n_matvecs - 2 * rank, generator, like, basis)
    return _trace_result(low_rank, samples, n_matvecs, start_time)


def krylov_hutchinson(
    matvec: MatVec,
    dim: int,
    n_matvecs: int = 100,
    seed: int = 0,
    like: Tensor | None = None,
    krylov_fraction: float = 0.5,
) -> TraceResult:
    """Hutchinson on the remainder of a Lanczos deflation: Hutch++ with a Krylov sketch.

    ``m = round(krylov_fraction * n_matvecs)`` Lanczos steps (Lanczos 1950, full
    reorthogonalisation) from a Rademacher start build an orthonormal basis ``Q`` of the Krylov
    space, whose part of the trace, ``Tr(Q^T A Q)``, is the sum of the Lanczos ``alpha`` (no
    further products); the other products run Hutchinson (1989) on the deflated remainder
    ``(I - QQ^T) A (I - QQ^T)`` with Rademacher probes drawn after ``Q`` is fixed, so the
    estimate is unbiased. A Krylov space captures the top eigenvalues in far fewer products
    than Hutch++'s random range sketch (which spends two products per basis vector), as in the
    Krylov variants of Hutch++ (Persson, Cortinovis & Kressner 2022; Chen & Hallman 2023).
    The standard error is that of the remainder's Hutchinson part.

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        n_matvecs: total products (at least 4).
        seed: seeds the Lanczos start and then the probes, from one generator.
        like: dtype and device template for the vectors (default float64, CPU).
        krylov_fraction: the share of the products spent on Lanczos (at least 1 step, and at
            least 2 products left for the probes).

    Returns:
        A :class:`TraceResult`.

    Raises:
        ValueError: if ``n_matvecs < 4`` or ``krylov_fraction`` is not in ``(0, 1)``.
    """
    _check_matvecs("krylov_hutchinson", n_matvecs, 4)
    if not 0 < krylov_fraction < 1:
        raise ValueError(f"krylov_fraction must be in (0, 1), got {krylov_fraction}")
    start_time = time.perf_counter()
    generator = _generator(seed)
    like = _template(like)
    steps = min(max(round(krylov_fraction * n_matvecs), 1), n_matvecs - 2)
    result = lanczos(matvec, _rademacher((dim,), generator, like), steps)
    low_rank = float(result.alpha.sum())
    n_probes = n_matvecs - result.n_matvecs
    samples = _hutchinson_samples(matvec, dim, n_probes, generator, like, result.basis)
    return _trace_result(low_rank, samples, n_matvecs, start_time)


def _slq_quadratures(
    matvec: MatVec, dim: int, n_iter: int, n_runs: int, seed: int, like: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Gauss quadrature nodes, weights and Ritz residuals of each run, padded to ``n_iter``."""
    generator = _generator(seed)
    nodes, weights, residuals = [], [], []
    n_matvecs = 0
    for _ in range(n_runs):
        start = _rademacher((dim,), generator, like)
        result = lanczos(matvec, start, n_iter)
        n_matvecs += result.n_matvecs
        theta, s = _ritz(result.alpha, result.beta)
        padded = [np.full(n_iter, np.nan), np.zeros(n_iter), np.full(n_iter, np.nan)]
        padded[0][: len(theta)] = theta
        padded[1][: len(theta)] = s[0] ** 2
        padded[2][: len(theta)] = result.last_beta * np.abs(s[-1])
        nodes.append(padded[0])
        weights.append(padded[1])
        residuals.append(padded[2])
    return np.array(nodes), np.array(weights), np.array(residuals), n_matvecs


def _broaden(
    nodes: np.ndarray, weights: np.ndarray, n_grid: int, sigma: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """The runs' average quadrature convolved with a Gaussian: ``(grid, density, width)``."""
    low, high = np.nanmin(nodes), np.nanmax(nodes)
    width = sigma if sigma is not None else max(0.01 * (high - low), 1e-6)
    grid = np.linspace(low - 5 * width, high + 5 * width, n_grid)
    valid = ~np.isnan(nodes)
    centres, masses = nodes[valid], weights[valid] / len(nodes)
    kernel = np.exp(-0.5 * ((grid[:, None] - centres[None, :]) / width) ** 2)
    density = kernel @ masses / (width * math.sqrt(2 * math.pi))
    return grid, density, width


def slq_density(
    matvec: MatVec,
    dim: int,
    n_iter: int = 80,
    n_runs: int = 10,
    seed: int = 0,
    n_grid: int = 1000,
    sigma: float | None = None,
    like: Tensor | None = None,
) -> DensityResult:
    """Spectral density by stochastic Lanczos quadrature (Ubaru et al. 2017; Ghorbani et al. 2019).

    Each run starts Lanczos (Lanczos 1950) from a Rademacher vector; the Ritz values and the
    squared first components of the Ritz vectors form a Gaussian quadrature of the spectral
    measure (Golub & Meurant). The density is the average over runs of those quadratures
    convolved with a Gaussian of width ``sigma`` (default: 1% of the spectral range, at least
    1e-6), on a grid reaching ``5 sigma`` beyond the extreme nodes.

    Args:
        matvec: the symmetric operator.
        dim: its dimension.
        n_iter: Lanczos steps per run (quadrature nodes).
        n_runs: independent runs averaged.
        seed: seeds the starting vectors, from one generator.
        n_grid: grid points.
        sigma: Gaussian broadening; ``None`` for the default.
        like: dtype and device template for the vectors (default float64, CPU).

    Returns:
        A :class:`DensityResult`.

    Raises:
        ValueError: if ``n_iter`` or ``n_runs`` is below 1.
    """
    if n_iter < 1 or n_runs < 1:
        raise ValueError(f"n_iter and n_runs must be >= 1, got {n_iter} and {n_runs}")
    start_time = time.perf_counter()
    nodes, weights, residuals, n_matvecs = _slq_quadratures(
        matvec, dim, n_iter, n_runs, seed, _template(like)
    )
    grid, density, width = _broaden(nodes, weights, n_grid, sigma)
    return DensityResult(
        grid=grid,
        density=density,
        nodes=nodes,
        weights=weights,
        sigma=width,
        n_hvp=n_matvecs,
        seconds=time.perf_counter() - start_time,
        residuals=residuals,
    )
