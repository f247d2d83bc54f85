"""The geometry of SGD's gradient noise against the Hessian (Zhu et al. 2019).

A minibatch gradient of ``B`` samples drawn from a training set is the full gradient plus
noise of covariance ``Sigma / B``, where ``Sigma`` is the covariance of one sample's gradient
(sampling with replacement). Zhu et al. (2019, "The anisotropic noise in stochastic gradient
descent") measure how that noise lines up with the curvature by ``Tr(H Sigma)``: for noise of
the same total variance ``Tr Sigma`` spread evenly over all ``D`` directions it would be
``Tr(H) Tr(Sigma) / D``, so their ratio (the *anisotropy ratio*) says how much more of the
noise lies along sharp directions than isotropic noise would put there.

Everything here comes from per-sample gradients ``g_i`` on a fixed subset of ``n`` samples
(:func:`per_sample_gradients`, ``torch.func.vmap`` over ``grad`` of ``functional_call``), with
``c_i = g_i - mean(g)`` and the unbiased covariance ``Sigma = sum_i c_i c_i^T / (n - 1)``, which
is never formed: ``Tr Sigma`` is a mean of ``|c_i|^2``, ``Tr(H Sigma)`` a mean of ``c_i^T H c_i``
(one Hessian-vector product per sample), the top-``k`` noise fraction a mean of the squared
projections of ``c_i`` onto the Hessian's top-``k`` eigenvectors. Each is a mean of ``n``
per-sample terms, so its standard error is that of a sample mean, and ratios get the
delta-method error of a ratio of means (Cochran 1977, 6.3). Sigma's own top eigenvectors come
from the ``n x n`` Gram matrix of the ``c_i``.

The Hessian is that of :mod:`lossgeom.hessian` (mean loss over ``hessian_batches``, eval mode).

Example:
    >>> geometry = noise_geometry(model, F.cross_entropy, x, y, batches, k=10)  # doctest: +SKIP
    >>> geometry.anisotropy_ratio.value  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from lossgeom.estimators import hutchpp, lanczos_top_eigenpairs
from lossgeom.hessian import HessianOperator
from lossgeom.models import evaluation_mode
from lossgeom.tables import NOISE_QUANTITIES

LossFn = Callable[[Tensor, Tensor], Tensor]

# The quantities of results/tables/noise.csv, in their order.
QUANTITIES = NOISE_QUANTITIES

__all__ = [
    "QUANTITIES",
    "Estimate",
    "NoiseGeometry",
    "noise_geometry",
    "per_sample_gradients",
    "sigma_eigenpairs",
]


def per_sample_gradients(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, chunk_size: int = 256
) -> Tensor:
    """The gradient of each sample's loss, as rows of an ``(n, D)`` matrix.

    ``torch.func.vmap(torch.func.grad(...))`` over ``functional_call``, ``chunk_size`` samples
    at a time, in eval mode (modes restored). Row ``i`` is the gradient of
    ``loss_fn(model(x[i:i+1]), y[i:i+1])`` flattened like ``parameters_to_vector`` over the
    parameters that require gradients.

    Args:
        model: the network.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        x: the samples.
        y: their targets.
        chunk_size: samples per vectorised call (memory: about ``chunk_size`` gradients).

    Returns:
        An ``(n, D)`` tensor with the parameters' dtype and device.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    named = dict(model.named_parameters())
    trainable = {name: p.detach() for name, p in named.items() if p.requires_grad}
    frozen = {name: p.detach() for name, p in named.items() if not p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    if not trainable:
        raise ValueError("the model has no parameters that require gradients")

    def sample_loss(params: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = functional_call(model, ({**params, **frozen}, buffers), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    gradients = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    first = next(iter(trainable.values()))
    dim = sum(p.numel() for p in trainable.values())
    out = torch.empty(x.shape[0], dim, dtype=first.dtype, device=first.device)
    with evaluation_mode(model):
        for start in range(0, x.shape[0], chunk_size):
            chunk = gradients(
                trainable, x[start : start + chunk_size], y[start : start + chunk_size]
            )
            column = 0
            for name, p in trainable.items():
                block = chunk[name].reshape(chunk[name].shape[0], -1)
                out[start : start + block.shape[0], column : column + p.numel()] = block
                column += p.numel()
    return out


@dataclass(frozen=True)
class Estimate:
    """A value and its standard error (NaN where none is estimated, 0 where exact)."""

    value: float
    stderr: float


def _mean(terms: Tensor) -> Estimate:
    """The mean of per-sample terms and its standard error."""
    n = terms.numel()
    return Estimate(float(terms.mean()), float(terms.std(unbiased=True)) / math.sqrt(n))


def _ratio(numerator: Tensor, denominator: Tensor) -> Estimate:
    """``mean(numerator) / mean(denominator)`` with the delta-method standard error."""
    n = numerator.numel()
    ratio = float(numerator.mean() / denominator.mean())
    residual = numerator - ratio * denominator
    stderr = float(residual.std(unbiased=True)) / math.sqrt(n) / abs(float(denominator.mean()))
    return Estimate(ratio, stderr)


@dataclass
class NoiseGeometry:
    """The one-sample gradient-noise covariance ``Sigma`` measured against the Hessian ``H``.

    Attributes:
        trace_sigma: ``Tr Sigma``, the total variance of one sample's gradient.
        trace_h_sigma: ``Tr(H Sigma)``, Zhu et al.'s indicator.
        trace_hessian: ``Tr H`` (Hutch++; its standard error is the estimator's).
        isotropic_trace_h_sigma: ``Tr(H) Tr(Sigma) / D``: the indicator for isotropic noise
            of the same total variance.
        anisotropy_ratio: ``Tr(H Sigma)`` over the isotropic value (1 for isotropic noise).
        topk_noise_fraction: the share of ``Tr Sigma`` inside the span of the Hessian's top-k
            eigenvectors.
        isotropic_topk_fraction: the same share for isotropic noise, ``k / D`` (exact).
        topk_alignment: the mean squared cosine between Sigma's top-k eigenspace and the
            Hessian's, ``|U_H V_Sigma^T|_F^2 / k`` (1: the same subspace; ``k / D`` expected
            for a random one); no standard error.
        sharpness: the top Hessian eigenvalue.
        hessian_eigenvalues, sigma_eigenvalues: the top-k eigenvalues of each.
        n_samples, dim, k: the subset size, the parameter count and k.
        n_hvp, seconds: Hessian-vector products taken and wall time.
    """

    trace_sigma: Estimate
    trace_h_sigma: Estimate
    trace_hessian: Estimate
    isotropic_trace_h_sigma: Estimate
    anisotropy_ratio: Estimate
    topk_noise_fraction: Estimate
    isotropic_topk_fraction: Estimate
    topk_alignment: Estimate
    sharpness: Estimate
    hessian_eigenvalues: Tensor
    sigma_eigenvalues: Tensor
    n_samples: int
    dim: int
    k: int
    n_hvp: int
    seconds: float

    def rows(self) -> list[tuple[str, float, float]]:
        """``(quantity, value, stderr)`` in the order of :data:`QUANTITIES`."""
        return [(q, getattr(self, q).value, getattr(self, q).stderr) for q in QUANTITIES]


def sigma_eigenpairs(centred: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Sigma's top-k eigenpairs from the centred per-sample gradients (rows), never forming it.

    ``Sigma = C^T C / (n - 1)`` shares its nonzero eigenvalues with the ``n x n`` Gram matrix
    ``C C^T / (n - 1)``; each eigenvector ``w`` of the Gram matrix maps to ``C^T w``
    (normalised). Returns the values (descending, clamped at 0 against round-off) in float64
    and the vectors as float64 rows.
    """
    n = centred.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < n samples, got k={k} and n={n}")
    gram = (centred.double() @ centred.double().T) / (n - 1)
    values, vectors = torch.linalg.eigh(gram)
    values, vectors = values.flip(0)[:k].clamp_min(0), vectors.flip(1)[:, :k]
    directions = (vectors.T.to(centred.dtype) @ centred).double()
    directions /= torch.linalg.vector_norm(directions, dim=1, keepdim=True)
    return values, directions


def _relative(estimate: Estimate) -> float:
    return estimate.stderr / estimate.value if estimate.value else math.nan


def _isotropic_comparison(
    trace_sigma: Estimate, trace_h: Estimate, ratio: Estimate, dim: int
) -> dict[str, Estimate]:
    """The isotropic reference ``Tr(H) Tr(Sigma) / D`` and the anisotropy ratio.

    ``ratio`` is ``Tr(H Sigma) / Tr(Sigma)`` over the same samples (a ratio of means, whose
    sampling errors partly cancel); ``Tr H``'s error comes from independent probes, so the
    relative errors add in quadrature.
    """
    isotropic = trace_h.value * trace_sigma.value / dim
    anisotropy = ratio.value * dim / trace_h.value
    return {
        "isotropic_trace_h_sigma": Estimate(
            isotropic, abs(isotropic) * math.hypot(_relative(trace_h), _relative(trace_sigma))
        ),
        "anisotropy_ratio": Estimate(
            anisotropy, abs(anisotropy) * math.hypot(_relative(ratio), _relative(trace_h))
        ),
    }


def noise_geometry(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    hessian_batches: Sequence[tuple[Tensor, Tensor]],
    k: int = 10,
    trace_matvecs: int = 30,
    tol: float = 1e-3,
    seed: int = 0,
    chunk_size: int = 256,
) -> NoiseGeometry:
    """Measure the one-sample gradient-noise covariance against the Hessian.

    Args:
        model: the network (parameters and modes are left as found).
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's mean loss.
        x: the ``n`` samples whose per-sample gradients define Sigma (``n > k``).
        y: their targets.
        hessian_batches: the batches whose mean loss defines H.
        k: the size of the top eigenspaces compared.
        trace_matvecs: Hutch++ products for ``Tr H``.
        tol: Lanczos' relative Ritz-residual tolerance for the Hessian's top-k.
        seed: seeds Lanczos and Hutch++.
        chunk_size: samples per vectorised per-sample-gradient call.

    Returns:
        A :class:`NoiseGeometry`.

    Raises:
        ValueError: ``n <= k`` (Sigma has rank at most ``n - 1``) or ``k`` out of range.
    """
    start_time = time.perf_counter()
    n = x.shape[0]
    if k < 1 or n <= k:
        raise ValueError(f"need 1 <= k < n samples, got k={k} and n={n}")
    centred = per_sample_gradients(model, loss_fn, x, y, chunk_size)
    dim = centred.shape[1]
    if k > dim:
        raise ValueError(f"k={k} exceeds the number of parameters ({dim})")
    centred -= centred.mean(0)
    scale = n / (n - 1)  # so that each mean below is the unbiased covariance's
    squared = (centred.double() ** 2).sum(1) * scale
    like = torch.empty(0, dtype=centred.dtype, device=centred.device)
    with HessianOperator(model, loss_fn, hessian_batches) as operator:
        eig = lanczos_top_eigenpairs(operator.matvec, dim, k=k, tol=tol, seed=seed, like=like)
        trace = hutchpp(operator.matvec, dim, n_matvecs=trace_matvecs, seed=seed, like=like)
        curvature = (
            torch.stack([torch.dot(c.double(), operator.matvec(c).double()) for c in centred])
            * scale
        )
        n_hvp = operator.n_matvecs
    top = eig.vectors.double()
    projected = ((centred.double() @ top.T) ** 2).sum(1) * scale
    sigma_values, sigma_vectors = sigma_eigenpairs(centred, k)
    alignment = float((top @ sigma_vectors.T).pow(2).sum()) / k

    trace_sigma = _mean(squared)
    trace_h = Estimate(trace.estimate, trace.stderr)
    return NoiseGeometry(
        trace_sigma=trace_sigma,
        trace_h_sigma=_mean(curvature),
        trace_hessian=trace_h,
        **_isotropic_comparison(trace_sigma, trace_h, _ratio(curvature, squared), dim),
        topk_noise_fraction=_ratio(projected, squared),
        isotropic_topk_fraction=Estimate(k / dim, 0.0),
        topk_alignment=Estimate(alignment, math.nan),
        sharpness=Estimate(float(eig.values[0]), math.nan),
        hessian_eigenvalues=eig.values,
        sigma_eigenvalues=sigma_values,
        n_samples=n,
        dim=dim,
        k=k,
        n_hvp=n_hvp,
        seconds=time.perf_counter() - start_time,
    )
