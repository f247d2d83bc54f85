"""The Hessian of the mean loss over a data set, through Hessian-vector products.

The Hessian meant throughout is that of the mean loss over all samples in ``batches`` (each
batch weighted by its size, so a short last batch does not bias the result), with the model
in evaluation mode. Flat vectors follow ``parameters_to_vector`` over the parameters that
require gradients. The model's training mode and parameters are left exactly as found.

This module is the model-facing part: the Hessian-vector product and :class:`HessianOperator`;
:func:`top_eigenvalues`, :func:`trace`, :func:`top_eigenvalues_and_trace` (one Lanczos run
whose basis the trace deflates) and :func:`spectral_density` build the operator and
hand its ``matvec`` to the model-agnostic estimators of :mod:`lossgeom.estimators` (whose
result dataclasses, and :func:`lanczos`, are re-exported here).

Methods:
    * HVP: Pearlmutter's trick (Pearlmutter 1994), reverse-over-reverse.
    * Top eigenvalues: Lanczos (Lanczos 1950) with full reorthogonalisation and a
      Ritz-residual stopping rule (default), or power iteration with deflation (the report's
      method).
    * Trace: Hutchinson (1989) with Rademacher probes, Hutch++ (Meyer et al. 2021), or
      Hutchinson on the remainder of a Lanczos deflation (a Krylov Hutch++); all with a
      standard error.
    * Spectral density: stochastic Lanczos quadrature (Ubaru et al. 2017; Ghorbani et al.
      2019; Papyan 2020) with Gaussian broadening.

Example:
    >>> from lossgeom import hessian
    >>> result = hessian.top_eigenvalues(model, loss_fn, batches, k=3)  # doctest: +SKIP
    >>> result.values, result.n_hvp  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from lossgeom.estimators import (
    DensityResult,
    EigenResult,
    LanczosResult,
    TraceResult,
    hutchinson,
    hutchpp,
    krylov_hutchinson,
    lanczos,
    lanczos_eigenpairs_and_trace,
    lanczos_top_eigenpairs,
    power_iteration,
    slq_density,
)
from lossgeom.models import evaluation_mode

Batches = Sequence[tuple[Tensor, Tensor]]
LossFn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "DensityResult",
    "EigenResult",
    "HessianOperator",
    "LanczosResult",
    "TraceResult",
    "hvp",
    "lanczos",
    "spectral_density",
    "top_eigenvalues",
    "top_eigenvalues_and_trace",
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
            dot = sum(
                (g * piece).sum() for g, piece in zip(grads, pieces, strict=True) if g is not None
            )
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

    Args:
        model: the network; its parameters that require gradients define the flat vector.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        batches: a sequence of ``(inputs, targets)``.
        reuse_graph: keep the first-order graph between products.

    Attributes:
        dim: the number of parameters (the operator's dimension).
        dtype, device: those of the parameters.
        n_matvecs: products taken so far.
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
        """One weighted sum of the batches' gradients, built with its graph kept.

        Each product is then a single backward call through all the kept graphs.
        """
        total = None
        for (inputs, targets), weight in zip(self.batches, self.weights, strict=True):
            loss = self.loss_fn(self.model(inputs), targets) * weight
            grads = _flatten(
                torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True),
                self.params,
            )
            total = grads if total is None else total + grads
        return total

    def gradient(self) -> Tensor:
        """The flat gradient of the mean loss, detached (no product counted).

        Free with ``reuse_graph=True`` (it is the kept first-order graph's output); otherwise
        one plain gradient pass over the batches.
        """
        if self._gradient is not None:
            return self._gradient.detach().clone()
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for (inputs, targets), weight in zip(self.batches, self.weights, strict=True):
            loss = self.loss_fn(self.model(inputs), targets)
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
            total.add_(_flatten(grads, self.params), alpha=weight)
        return total

    def matvec(self, v: Tensor) -> Tensor:
        """``H v`` for a flat vector ``v``.

        Args:
            v: a flat vector with ``dim`` entries (moved to the parameters' dtype and device).

        Returns:
            ``H v`` as a flat tensor.
        """
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


def _template(operator: HessianOperator) -> Tensor:
    """An empty tensor with the operator's dtype and device, for the estimators' ``like``."""
    return torch.empty(0, dtype=operator.dtype, device=operator.device)


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
    start: Tensor | str | None = None,
    criterion: str = "residual",
) -> EigenResult:
    """The ``k`` largest Hessian eigenvalues and their eigenvectors.

    Builds a :class:`HessianOperator` and runs Lanczos (Lanczos 1950;
    :func:`lossgeom.estimators.lanczos_top_eigenpairs`) or power iteration with deflation
    (:func:`lossgeom.estimators.power_iteration`) on it.

    Args:
        model: the network (see the module docstring for the Hessian meant).
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        batches: a sequence of ``(inputs, targets)``.
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
        start: Lanczos only: a warm-start vector, e.g. the previous top eigenvector when
            sharpness is tracked along training (see
            :func:`lossgeom.estimators.lanczos_top_eigenpairs`), or ``"gradient"``: the loss
            gradient (free from the kept graph), which after a little training lies mostly in
            the top eigenspace (Gur-Ari et al. 2018), plus an equal weight of the seeded
            Gaussian vector, so Lanczos skips the steps a Gaussian start spends on the bulk
            without depending on the gradient (random if the gradient is zero).
        criterion: Lanczos only: ``"residual"`` (default) or ``"eigenvalue"``, which stops
            once the estimated eigenvalue errors are within ``tol`` instead of overshooting
            it (see :func:`lossgeom.estimators.lanczos`).

    Returns:
        An :class:`EigenResult`; ``seconds`` includes building the graph.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    if (start is not None or criterion != "residual") and method != "lanczos":
        raise ValueError("start and criterion are supported by method='lanczos' only")
    if isinstance(start, str) and start != "gradient":
        raise ValueError(f"start must be a tensor or 'gradient', got {start!r}")
    estimator = lanczos_top_eigenpairs if method == "lanczos" else power_iteration
    extra = {} if method == "power" else {"criterion": criterion}
    start_time = time.perf_counter()
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        if k > operator.dim:
            raise ValueError(f"k={k} exceeds the number of parameters ({operator.dim})")
        if isinstance(start, str):  # the gradient; a zero one (a critical point) gives none
            start = operator.gradient()
            start, extra["mix"] = (start if bool(start.any()) else None), 1.0
        if start is not None:
            extra["start"] = start
        result = estimator(
            operator.matvec,
            operator.dim,
            k=k,
            tol=tol,
            max_iter=max_iter,
            seed=seed,
            like=_template(operator),
            **extra,
        )
        n_hvp = operator.n_matvecs
    seconds = time.perf_counter() - start_time
    return replace(result, vectors=result.vectors.detach(), n_hvp=n_hvp, seconds=seconds)


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

    Hutchinson (1989; :func:`lossgeom.estimators.hutchinson`): the mean of ``z^T H z`` over
    Rademacher probes; the standard error is the sample standard deviation over sqrt(n).
    Hutch++ (Meyer et al. 2021; :func:`lossgeom.estimators.hutchpp`): a third of the products
    sketch the top range ``Q`` (taken exactly as ``Tr(Q^T H Q)``), a third compute ``H Q``,
    and the rest run Hutchinson on the deflated remainder; the standard error is that of the
    remainder's Hutchinson part. Krylov (:func:`lossgeom.estimators.krylov_hutchinson`): half
    the products are Lanczos steps whose basis ``Q`` is deflated (``Tr(Q^T H Q)`` is the sum
    of the Lanczos ``alpha``, no extra products), the rest Hutchinson on the remainder.

    Args:
        model: the network (see the module docstring for the Hessian meant).
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        batches: a sequence of ``(inputs, targets)``.
        n_matvecs: total Hessian-vector products (Hutch++ needs >= 6, Krylov >= 4,
            Hutchinson >= 2).
        method: ``"hutchpp"`` (default), ``"krylov"`` or ``"hutchinson"``.
        seed: seeds the probes.
        reuse_graph: keep the first-order graph between products (see :class:`HessianOperator`).

    Returns:
        A :class:`TraceResult`; ``seconds`` includes building the graph.
    """
    choices = {"hutchpp": (hutchpp, 6), "krylov": (krylov_hutchinson, 4),
              "hutchinson": (hutchinson, 2)}  # fmt: skip
    if method not in choices:
        raise ValueError(f"method must be 'hutchpp', 'krylov' or 'hutchinson', got {method!r}")
    estimator, minimum = choices[method]
    if n_matvecs < minimum:
        raise ValueError(f"{method} needs n_matvecs >= {minimum}, got {n_matvecs}")
    start_time = time.perf_counter()
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        result = estimator(
            operator.matvec, operator.dim, n_matvecs=n_matvecs, seed=seed, like=_template(operator)
        )
        n_hvp = operator.n_matvecs
    return replace(result, n_hvp=n_hvp, seconds=time.perf_counter() - start_time)


def top_eigenvalues_and_trace(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    k: int = 1,
    tol: float = 1e-4,
    n_probes: int = 20,
    seed: int = 0,
    max_iter: int | None = None,
    reuse_graph: bool = True,
    criterion: str = "residual",
) -> tuple[EigenResult, TraceResult]:
    """The ``k`` largest Hessian eigenvalues and the trace, from one operator and one Lanczos run.

    The eigenpairs equal :func:`top_eigenvalues` with ``method="lanczos"`` and the same
    arguments; the trace deflates that run's Krylov basis and spends only ``n_probes``
    further products on Hutchinson's estimator of the remainder
    (:func:`lossgeom.estimators.lanczos_eigenpairs_and_trace`). Where :func:`top_eigenvalues`
    and :func:`trace` would take ``m + n_matvecs`` products and build the graph twice, this
    takes ``m + n_probes`` and builds it once; on the report's MLP, 20 probes gave the
    standard error of Hutch++ with 60 products.

    Args:
        model: the network (see the module docstring for the Hessian meant).
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        batches: a sequence of ``(inputs, targets)``.
        k: how many eigenvalues.
        tol: relative Ritz-residual tolerance.
        n_probes: the trace's own Hessian-vector products (at least 2).
        seed: seeds the Lanczos start and then the probes.
        max_iter: Krylov dimension cap (default ``max(100, 20 k)``).
        reuse_graph: keep the first-order graph between products (see :class:`HessianOperator`).
        criterion: ``"residual"`` or ``"eigenvalue"`` (see :func:`top_eigenvalues`).

    Returns:
        ``(eigen, trace)``: ``eigen.seconds`` includes building the graph; ``trace.n_hvp`` and
        ``trace.seconds`` count the probes alone.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_probes < 2:
        raise ValueError(f"n_probes must be >= 2, got {n_probes}")
    start_time = time.perf_counter()
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        if k > operator.dim:
            raise ValueError(f"k={k} exceeds the number of parameters ({operator.dim})")
        eig, tr = lanczos_eigenpairs_and_trace(
            operator.matvec,
            operator.dim,
            k=k,
            tol=tol,
            n_probes=n_probes,
            max_iter=max_iter,
            seed=seed,
            like=_template(operator),
            criterion=criterion,
        )
    eig = replace(eig, vectors=eig.vectors.detach(),
                  seconds=time.perf_counter() - start_time - tr.seconds)  # fmt: skip
    return eig, tr


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
    """Hessian spectral density by stochastic Lanczos quadrature (Ubaru et al. 2017; Ghorbani et al. 2019).

    Each run starts Lanczos from a random Rademacher vector; the Ritz values and the squared
    first components of the Ritz vectors form a Gaussian quadrature of the spectral measure.
    The density is the average over runs of those quadratures convolved with a Gaussian of
    width ``sigma`` (see :func:`lossgeom.estimators.slq_density`).

    Args:
        model: the network (see the module docstring for the Hessian meant).
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        batches: a sequence of ``(inputs, targets)``.
        n_iter: Lanczos steps per run.
        n_runs: independent runs averaged.
        seed: seeds the starting vectors.
        n_grid: grid points.
        sigma: Gaussian broadening (default: 1% of the spectral range, at least 1e-6).
        reuse_graph: keep the first-order graph between products (see :class:`HessianOperator`).

    Returns:
        A :class:`DensityResult`; ``seconds`` includes building the graph.
    """
    if n_iter < 1 or n_runs < 1:
        raise ValueError(f"n_iter and n_runs must be >= 1, got {n_iter} and {n_runs}")
    start_time = time.perf_counter()
    with HessianOperator(model, loss_fn, batches, reuse_graph=reuse_graph) as operator:
        result = slq_density(
            operator.matvec,
            operator.dim,
            n_iter=n_iter,
            n_runs=n_runs,
            seed=seed,
            n_grid=n_grid,
            sigma=sigma,
            like=_template(operator),
        )
        n_hvp = operator.n_matvecs
    return replace(result, n_hvp=n_hvp, seconds=time.perf_counter() - start_time)
