"""The Hessian of the mean loss over a data set, through Hessian-vector products.

The Hessian meant throughout is that of the mean loss over all samples in ``batches`` (each
batch weighted by its size, so a short last batch does not bias the result), with the model
in evaluation mode. Flat vectors follow ``parameters_to_vector`` over the parameters that
require gradients. The model's training mode and parameters are left exactly as found.

Methods:
    * HVP: Pearlmutter's trick (Pearlmutter 1994), reverse-over-reverse.
    * Top eigenvalues: Lanczos with full reorthogonalisation and a Ritz-residual stopping
      rule (default), or power iteration with deflation (the report's method).
    * Trace: Hutchinson (1989) with Rademacher probes, or Hutch++ (Meyer et al. 2021); both
      with a standard error.
    * Spectral density: stochastic Lanczos quadrature (Ghorbani et al. 2019; Papyan 2020)
      with Gaussian broadening.

Example:
    >>> from lossgeom import hessian
    >>> result = hessian.top_eigenvalues(model, loss_fn, batches, k=3)  # doctest: +SKIP
    >>> result.values, result.n_hvp  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from lossgeom.models import evaluation_mode

Batches = Sequence[tuple[Tensor, Tensor]]
LossFn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "DensityResult",
    "EigenResult",
    "HessianOperator",
    "TraceResult",
    "hvp",
    "lanczos",
    "spectral_density",
    "top_eigenvalues",
    "trace",
]


def _parameters(model: nn.Module) -> list[Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no parameters that require gradients")
    return params


def _batch_weights(batches: Batches) -> list[float]:
    sizes = [int(inputs.shape[0]) for inputs, _ in batches]
    if not sizes or sum(sizes) == 0:
        raise ValueError("batches is empty: the Hessian of a mean over no samples is undefined")
    total = sum(sizes)
    return [size / total for size in sizes]


def _flatten(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    return torch.cat(
        [
            (t if t is not None else torch.zeros_like(p)).reshape(-1)
            for t, p in zip(tensors, like, strict=True)
        ]
    )


def _unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    out, offset = [], 0
    for p in like:
        out.append(vector[offset : offset + p.numel()].view_as(p))
        offset += p.numel()
    return out


def hvp(model: nn.Module, loss_fn: LossFn, batches: Batches, v: Tensor) -> Tensor:
    """One fresh Hessian-vector product ``H v`` (Pearlmutter's trick).

    Each batch's graph is built, used once and freed, so memory stays that of one batch.

    Args:
        model: the network; its parameters that require gradients define the flat vector.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        batches: a sequence of ``(inputs, targets)``.
        v: a flat vector with as many entries as the parameters.

    Returns:
        ``H v`` as a flat tensor of the parameters' dtype and device.
    """
    params = _parameters(model)
    weights = _batch_weights(batches)
    numel = sum(p.numel() for p in params)
    if v.numel() != numel:
        raise ValueError(f"v has {v.numel()} entries but the model has {numel} parameters")
    v = v.to(device=params[0].device, dtype=params[0].dtype)
    pieces = _unflatten(v, params)
    out = torch.zeros_like(v)
    with evaluation_mode(model):
        for (inputs, targets), weight in zip(batches, weights, strict=True):
            loss = loss_fn(model(inputs), targets)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            dot = sum((g * piece).sum() for g, piece in zip(grads, pieces, strict=True) if g is not None)
            hv = torch.autograd.grad(dot, params, allow_unused=True)
            out.add_(_flatten(hv, params), alpha=weight)
    return out


class HessianOperator:
    """The Hessian at one point as a reusable linear operator.

    With ``reuse_graph=True`` the first-order graph (the gradient built with
    ``create_graph=True``) of every batch is built once and kept, so each product costs only
    the backward pass through that graph; this is what makes the many products of Lanczos or
    Hutch++ cheap. Memory: about twice the activations of all batches. With
    ``reuse_graph=False`` every product is a fresh :func:`hvp`.

    Use as a context manager (or call :meth:`close`): the model stays in eval mode while the
    operator is open and gets its own modes back afterwards.
    """

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, batches: Batches, reuse_graph: bool = True
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.batches = batches
        self.params = _parameters(model)
        self.weights = _batch_weights(batches)
        self.dim = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.reuse_graph = reuse_graph
        self.n_matvecs = 0
        self._modes = [(module, module.training) for module in model.modules()]
        model.eval()
        self._gradient: Tensor | None = None
        if reuse_graph:
            try:
                self._gradient = self._weighted_gradient()
            except BaseException:  # e.g. out of memory: give the model its modes back
                self.close()
                raise

    def _weighted_gradient(self) -> Tensor:
        """One weighted sum of the batches' gradients, built with its graph kept, so that each
        product is a single backward call through all the kept graphs."""
        total = None
        for (inputs, targets), weight in zip(self.batches, self.weights, strict=True):
            loss = self.loss_fn(self.model(inputs), targets) * weight
            grads = _flatten(
                torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True),
                self.params,
            )
            total = grads if total is None else total + grads
        return total

    def matvec(self, v: Tensor) -> Tensor:
        """``H v`` for a flat vector ``v``."""
        v = v.to(device=self.device, dtype=self.dtype)
        self.n_matvecs += 1
        if not self.reuse_graph:
            return hvp(self.model, self.loss_fn, self.batches, v)
        if not self._gradient.requires_grad:  # a loss that is linear in every parameter
            return torch.zeros_like(v)
        hv = torch.autograd.grad(
            self._gradient, self.params, grad_outputs=v, retain_graph=True, allow_unused=True
        )
        return _flatten(hv, self.params)

    __matmul__ = matvec

    def close(self) -> None:
        """Free the kept graphs and restore the model's modes."""
        self._gradient = None
        for module, mode in self._modes:
            module.training = mode

    def __enter__(self) -> HessianOperator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LanczosResult:
    """Output of :func:`lanczos`: the tridiagonal matrix and the basis that built it."""

    alpha: np.ndarray
    beta: np.ndarray
    basis: Tensor  # (m, P): orthonormal Lanczos vectors as rows
    n_matvecs: int
    converged: bool


def _ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(alpha) == 1:
        return alpha.copy(), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(alpha, beta[: len(alpha) - 1])


def lanczos(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    max_iter: int,
    k: int | None = None,
    tol: float | None = None,
) -> LanczosResult:
    """Symmetric Lanczos with full reorthogonalisation (Paige 1972; Golub & Van Loan 10.1).

    Args:
        matvec: the symmetric operator.
        start: the starting vector (normalised here).
        max_iter: the largest Krylov dimension.
        k, tol: when both are given, stop as soon as the ``k`` largest Ritz values have
            residual bounds ``beta_m |s_{m,i}| <= tol * |theta_i|`` (Parlett 1998, 13.2); the
            eigenvalue error is then of order ``tol**2 * |theta|^2 / gap``.

    Returns:
        A :class:`LanczosResult`.
    """
    dim = start.numel()
    max_iter = min(max_iter, dim)
    basis = torch.empty(max_iter, dim, dtype=start.dtype, device=start.device)  # rows filled as built
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
        if k is not None and tol is not None and j + 1 >= k:
            theta, s = _ritz(np.array(alpha), np.array(beta))
            top = np.argsort(theta)[::-1][:k]
            residual = b * np.abs(s[-1, top])
            if np.all(residual <= tol * np.maximum(np.abs(theta[top]), 1e-30)):
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
    )


@dataclass
class EigenResult:
    """Top Hessian eigenvalues.

    Attributes:
        values: ``(k,)`` eigenvalues, descending (algebraic for Lanczos).
        vectors: ``(k, P)`` unit eigenvectors, one per row.
        n_hvp: Hessian-vector products taken (graph building not counted).
        seconds: wall time, graph building included.
        converged: whether the stopping rule was met within ``max_iter``.
    """

    values: Tensor
    vectors: Tensor
    n_hvp: int
    seconds: float
    converged: bool


def _generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return generator


def _random_start(dim: int, seed: int, like: Tensor) -> Tensor:
    return torch.randn(dim, generator=_generator(seed), dtype=torch.float64).to(like)


def _power_iteration(
    operator: HessianOperator, k: int, tol: float, max_iter: int, seed: int
) -> tuple[Tensor, Tensor, bool]:
    """Power iteration with Hotelling deflation; finds the k largest-magnitude eigenvalues."""
    values: list[float] = []
    vectors: list[Tensor] = []
    all_converged = True
    for i in range(k):
        v = _random_start(operator.dim, seed + i, torch.empty(0, dtype=operator.dtype, device=operator.device))
        v /= torch.linalg.vector_norm(v)
        estimate, converged = math.nan, False
        for _ in range(max_iter):
            w = operator.matvec(v)
            for value, vector in zip(values, vectors, strict=True):
                w -= value * torch.dot(vector, v) * vector
            new = float(torch.dot(v, w))
            norm = torch.linalg.vector_norm(w)
            if norm == 0:
                estimate, converged = 0.0, True
                break
            v = w / norm
            if not math.isnan(estimate) and abs(new - estimate) <= tol * abs(new):
                estimate, converged = new, True
                break
            estimate = new
        all_converged &= converged
        values.append(estimate)
        vectors.append(v)
    order = np.argsort(values)[::-1]
    return (
        torch.tensor([values[i] for i in order], dtype=torch.float64),
        torch.stack([vectors[i] for i in order]),
        all_converged,
    )


def top_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    k: int = 1,
    tol: float = 1e-4,
    method: str = "lanczos",
    seed: int = 0,
    max_iter: int | None = None,
    reuse_graph: bool = True,
) -> EigenResult:
    """The ``k`` largest Hessian eigenvalues and their eigenvectors.

    Args:
        model, loss_fn, batches: define the Hessian (see the module docstring).
        k: how many eigenvalues.
        tol: relative tolerance; Lanczos stops on Ritz residuals, power iteration on the
            relative change of the Rayleigh quotient.
        method: ``"lanczos"`` (default; algebraically largest) or ``"power"`` (the report's
            method, with deflation for k > 1; finds the largest *magnitudes*, which may be
            negative eigenvalues).
        seed: seeds the starting vector(s).
        max_iter: Krylov dimension cap (Lanczos, default ``max(100, 20 k)``) or iterations per
            eigenvalue (power, default 100 as in PyHessian).
        reuse_graph: keep the first-order graph between products (see :class:`HessianOperator`).

    Returns:
        An :class:`EigenResult`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    start_time = time.perf_counter()
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        if k > operator.dim:
            raise ValueError(f"k={k} exceeds the number of parameters ({operator.dim})")
        if method == "lanczos":
            start = _random_start(operator.dim, seed, torch.empty(0, dtype=operator.dtype, device=operator.device))
            result = lanczos(
                operator.matvec, start, max_iter or max(100, 20 * k), k=k, tol=tol
            )
            theta, s = _ritz(result.alpha, result.beta)
            if len(theta) < k:
                raise ValueError(
                    f"the Krylov space closed after {len(theta)} steps: the Hessian has fewer than "
                    f"k={k} eigenvalues reachable from this start; use a smaller k or another seed"
                )
            top = np.argsort(theta)[::-1][:k]
            ritz = torch.as_tensor(s[:, top].T.copy(), dtype=result.basis.dtype, device=result.basis.device)
            vectors = ritz @ result.basis
            vectors /= torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
            values = torch.as_tensor(theta[top].copy(), dtype=torch.float64)
            converged = result.converged
        else:
            values, vectors, converged = _power_iteration(operator, k, tol, max_iter or 100, seed)
        n_hvp = operator.n_matvecs
    return EigenResult(
        values=values,
        vectors=vectors.detach(),
        n_hvp=n_hvp,
        seconds=time.perf_counter() - start_time,
        converged=converged,
    )


@dataclass
class TraceResult:
    """A stochastic trace estimate with its standard error."""

    estimate: float
    stderr: float
    n_hvp: int
    seconds: float


def _rademacher(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (2 * signs - 1).to(dtype=like.dtype, device=like.device)


def trace(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    n_matvecs: int = 100,
    method: str = "hutchpp",
    seed: int = 0,
    reuse_graph: bool = True,
) -> TraceResult:
    """Stochastic estimate of ``Tr(H)`` with a standard error.

    Hutchinson: the mean of ``z^T H z`` over Rademacher probes; the standard error is the
    sample standard deviation over sqrt(n). Hutch++ (Meyer et al. 2021): a third of the
    products sketch the top range ``Q`` (taken exactly as ``Tr(Q^T H Q)``), a third compute
    ``H Q``, and the rest run Hutchinson on the deflated remainder; the standard error is that
    of the remainder's Hutchinson part.

    Args:
        n_matvecs: total Hessian-vector products (Hutch++ needs >= 6, Hutchinson >= 2).
        method: ``"hutchpp"`` (default) or ``"hutchinson"``.
        seed: seeds the probes.
    """
    if method not in ("hutchpp", "hutchinson"):
        raise ValueError(f"method must be 'hutchpp' or 'hutchinson', got {method!r}")
    minimum = 6 if method == "hutchpp" else 2
    if n_matvecs < minimum:
        raise ValueError(f"{method} needs n_matvecs >= {minimum}, got {n_matvecs}")
    start_time = time.perf_counter()
    generator = _generator(seed)
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        like = torch.empty(0, dtype=operator.dtype, device=operator.device)
        low_rank = 0.0
        basis = None
        n_probes = n_matvecs
        if method == "hutchpp":
            rank = n_matvecs // 3
            n_probes = n_matvecs - 2 * rank
            sketch = _rademacher((rank, operator.dim), generator, like)
            images = torch.stack([operator.matvec(s) for s in sketch])
            basis = torch.linalg.qr(images.T.double()).Q.T.to(like)  # (rank, P), orthonormal rows
            low_rank = float(sum(torch.dot(q, operator.matvec(q)) for q in basis))
        samples = []
        for _ in range(n_probes):
            z = _rademacher((operator.dim,), generator, like)
            if basis is not None:
                z = z - basis.T @ (basis @ z)
            samples.append(float(torch.dot(z, operator.matvec(z))))
        n_hvp = operator.n_matvecs
    values = np.array(samples)
    return TraceResult(
        estimate=low_rank + float(values.mean()),
        stderr=float(values.std(ddof=1) / math.sqrt(len(values))),
        n_hvp=n_hvp,
        seconds=time.perf_counter() - start_time,
    )


@dataclass
class DensityResult:
    """A smoothed spectral density from stochastic Lanczos quadrature.

    Attributes:
        grid: eigenvalue grid.
        density: density on the grid, integrating to 1 (the spectral measure divided by P).
        nodes, weights: ``(n_runs, n_iter)`` quadrature nodes (Ritz values) and weights.
        sigma: the Gaussian broadening used.
        n_hvp: Hessian-vector products taken.
        seconds: wall time.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    n_hvp: int
    seconds: float


def spectral_density(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    n_iter: int = 80,
    n_runs: int = 10,
    seed: int = 0,
    n_grid: int = 1000,
    sigma: float | None = None,
    reuse_graph: bool = True,
) -> DensityResult:
    """Hessian spectral density by stochastic Lanczos quadrature (Ghorbani et al. 2019).

    Each run starts Lanczos from a random unit Rademacher vector; the Ritz values and the
    squared first components of the Ritz vectors form a Gaussian quadrature of the spectral
    measure. The density is the average over runs of those quadratures convolved with a
    Gaussian of width ``sigma`` (default: 1% of the spectral range, at least 1e-6).
    """
    if n_iter < 1 or n_runs < 1:
        raise ValueError(f"n_iter and n_runs must be >= 1, got {n_iter} and {n_runs}")
    start_time = time.perf_counter()
    generator = _generator(seed)
    nodes, weights = [], []
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        like = torch.empty(0, dtype=operator.dtype, device=operator.device)
        for _ in range(n_runs):
            start = _rademacher((operator.dim,), generator, like)
            result = lanczos(operator.matvec, start, n_iter)
            theta, s = _ritz(result.alpha, result.beta)
            padded_nodes = np.full(n_iter, np.nan)
            padded_weights = np.zeros(n_iter)
            padded_nodes[: len(theta)] = theta
            padded_weights[: len(theta)] = s[0] ** 2
            nodes.append(padded_nodes)
            weights.append(padded_weights)
        n_hvp = operator.n_matvecs
    nodes_arr, weights_arr = np.array(nodes), np.array(weights)
    low, high = np.nanmin(nodes_arr), np.nanmax(nodes_arr)
    width = sigma if sigma is not None else max(0.01 * (high - low), 1e-6)
    grid = np.linspace(low - 5 * width, high + 5 * width, n_grid)
    valid = ~np.isnan(nodes_arr)
    centres, masses = nodes_arr[valid], weights_arr[valid] / n_runs
    kernel = np.exp(-0.5 * ((grid[:, None] - centres[None, :]) / width) ** 2)
    density = kernel @ masses / (width * math.sqrt(2 * math.pi))
    return DensityResult(
        grid=grid,
        density=density,
        nodes=nodes_arr,
        weights=weights_arr,
        sigma=width,
        n_hvp=n_hvp,
        seconds=time.perf_counter() - start_time,
    )
