"""Generalisation bounds and measures: the arithmetic, free of any model.

Three families, kept apart on purpose:

* :func:`report_proxy` is the report's formula ``sqrt(||theta||^2 Tr(H) / (n eps^2))``. It is a
  scaling heuristic with an unknown constant, not a bound, and is named a proxy everywhere.
* :func:`jiang_sharpness` and :func:`jiang_magnitude_aware` are the sharpness-based
  PAC-Bayes *measures* of Jiang et al. (2019, "Fantastic generalization measures"), with the
  noise scale found by :func:`sharpness_sigma`. They rank models; they are not bounds either.
* :func:`certify` is a PAC-Bayes-kl risk certificate for a stochastic classifier ``Q``: with
  probability at least ``1 - delta - delta_prime`` over the training sample and the Monte-Carlo
  draws, the 0-1 risk of ``Q`` is at most ``Certificate.value``. It chains

  1. the sample-convergence bound (Langford & Caruana 2002): ``Q``'s empirical error, estimated
     as the mean of ``N`` independent ``[0, 1]``-valued Monte-Carlo outcomes whose means average
     to it, is bounded by ``kl^-1(hat, ln(2/delta') / N)`` (the Chernoff bound in kl form holds
     for independent, not necessarily identically distributed, bounded outcomes; Hoeffding
     1963). ``N`` is ``m`` when ``m`` weight draws are each scored on the whole sample, and
     ``n m`` when, as in :func:`lossgeom.posterior.monte_carlo_error`, every example of every
     pass is scored under its own independent draw;
  2. the PAC-Bayes-kl bound (Langford & Seeger 2001; Maurer 2004) for a prior chosen from a grid
     of ``grid_size`` priors fixed before seeing the data, paid for by a union bound:
     ``kl(emp || risk) <= (KL(Q||P) + ln(2 sqrt(n) / (delta / grid_size))) / n``;
  3. the upper inversion of the binary kl, :func:`kl_inverse_upper`.

Every function checks its arguments and raises :class:`BoundError` naming the bad one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


class BoundError(ValueError):
    """An argument outside the domain where a bound or measure is defined."""


def _check_probability(name: str, value: float, open_interval: bool = False) -> None:
    ok = 0 < value < 1 if open_interval else 0 <= value <= 1
    if not (isinstance(value, int | float) and math.isfinite(value) and ok):
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise BoundError(f"{name} must lie in {interval}, got {value!r}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BoundError(f"{name} must be a positive integer, got {value!r}")


def kl_bernoulli(q: float, p: float) -> float:
    """Binary relative entropy ``kl(q || p) = q ln(q/p) + (1-q) ln((1-q)/(1-p))`` in nats.

    ``0 ln 0 = 0``; the value is ``inf`` where ``p`` is 0 or 1 and ``q`` differs from it.
    """
    _check_probability("q", q)
    _check_probability("p", p)
    total = 0.0
    if q > 0:
        if p == 0:
            return math.inf
        total += q * math.log(q / p)
    if q < 1:
        if p == 1:
            return math.inf
        total += (1 - q) * (math.log1p(-q) - math.log1p(-p))
    return max(total, 0.0)


def kl_inverse_upper(q: float, c: float, tol: float = 1e-12) -> float:
    """``max {p in [q, 1] : kl(q || p) <= c}``, by bisection to ``tol``.

    ``kl(q || .)`` increases on ``[q, 1]``, so the set is an interval ``[q, p*]``; the returned
    value is never below ``p*`` by more than rounding (the bisection keeps the feasible end and
    returns the infeasible one, which is conservative). It is increasing in ``q`` and in ``c``.
    For ``q = 0`` the closed form is ``1 - exp(-c)``.
    """
    _check_probability("q", q)
    if not (math.isfinite(c) or c == math.inf) or c < 0 or math.isnan(c):
        raise BoundError(f"the kl budget c must be >= 0, got {c!r}")
    if q == 1 or c == math.inf:
        return 1.0
    lo, hi = q, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if kl_bernoulli(q, mid) > c:
            hi = mid
        else:
            lo = mid
    return hi


def pac_bayes_kl_budget(kl: float, n: int, delta: float, grid_size: int = 1) -> float:
    """The right-hand side ``(KL + ln(2 sqrt(n) grid_size / delta)) / n`` of the kl bound."""
    if not math.isfinite(kl) or kl < 0:
        raise BoundError(f"KL(Q||P) must be finite and >= 0, got {kl!r}")
    _check_count("n", n)
    _check_probability("delta", delta, open_interval=True)
    _check_count("grid_size", grid_size)
    return (kl + math.log(2 * math.sqrt(n) * grid_size / delta)) / n


def sample_convergence_bound(mc_error: float, trials: int, delta_prime: float) -> float:
    """Upper bound on a stochastic classifier's empirical error from a Monte-Carlo estimate.

    ``mc_error`` is the mean of ``trials`` independent ``[0, 1]``-valued outcomes whose expected
    values average to the empirical error of ``Q`` (``m`` whole-sample scores of ``m`` weight
    draws, or ``n m`` per-example 0-1 losses under independent per-example draws). With
    probability ``1 - delta_prime`` the empirical error is at most
    ``kl^-1(mc_error, ln(2 / delta_prime) / trials)`` (Langford & Caruana 2002).
    """
    _check_probability("the Monte-Carlo error estimate", mc_error)
    _check_count("trials (independent Monte-Carlo outcomes)", trials)
    _check_probability("delta_prime", delta_prime, open_interval=True)
    return kl_inverse_upper(mc_error, math.log(2 / delta_prime) / trials)


@dataclass(frozen=True)
class Certificate:
    """A PAC-Bayes-kl risk certificate and every term that went into it."""

    value: float  # upper bound on the 0-1 risk of Q; holds with probability >= confidence
    mc_error: float  # Monte-Carlo estimate of Q's empirical error on the n bound samples
    empirical_bound: float  # sample-convergence upper bound on that empirical error
    kl: float  # KL(Q || P) in nats
    budget: float  # (KL + ln(2 sqrt(n) grid_size / delta)) / n
    n: int
    trials: int  # independent Monte-Carlo outcomes behind mc_error
    delta: float
    delta_prime: float
    grid_size: int

    @property
    def confidence(self) -> float:
        """``1 - delta - delta_prime``: the probability with which the certificate holds."""
        return 1 - self.delta - self.delta_prime

    def as_dict(self) -> dict:
        """Every field and the confidence, as a plain dict (the terms table's rows)."""
        return {**asdict(self), "confidence": self.confidence}


def certify(
    mc_error: float,
    trials: int,
    kl: float,
    n: int,
    delta: float,
    delta_prime: float,
    grid_size: int = 1,
) -> Certificate:
    """Chain the sample-convergence bound, the union-bounded PAC-Bayes-kl bound and its inverse.

    Args:
        mc_error: Monte-Carlo estimate of ``Q``'s 0-1 error on the ``n`` samples the prior never
            saw.
        trials: number of independent ``[0, 1]``-valued outcomes averaged in ``mc_error`` (see
            :func:`sample_convergence_bound`).
        kl: ``KL(Q || P)`` for the prior actually used.
        n: number of samples behind the empirical error (not those a data-dependent prior saw).
        delta: confidence parameter of the PAC-Bayes step, shared by the ``grid_size`` priors.
        delta_prime: confidence parameter of the sample-convergence step.
        grid_size: number of priors the prior was chosen from (union bound).

    The value is kept as computed: the kl inverse is itself at most 1, and a value near 1 is a
    vacuous certificate, which callers report as such rather than clip.
    """
    empirical = sample_convergence_bound(mc_error, trials, delta_prime)
    budget = pac_bayes_kl_budget(kl, n, delta, grid_size)
    return Certificate(
        value=kl_inverse_upper(empirical, budget),
        mc_error=mc_error,
        empirical_bound=empirical,
        kl=kl,
        budget=budget,
        n=n,
        trials=trials,
        delta=delta,
        delta_prime=delta_prime,
        grid_size=grid_size,
    )


def kl_diagonal_gaussians(
    mean_q: Tensor, sigma_q: Tensor, mean_p: Tensor, sigma_p: Tensor | float
) -> Tensor:
    """``KL(N(mean_q, diag sigma_q^2) || N(mean_p, diag sigma_p^2))`` in nats (differentiable).

    Sum over coordinates of ``ln(sp/sq) + (sq^2 + (mq - mp)^2) / (2 sp^2) - 1/2``; computed in
    the inputs' dtype, with ``sigma_p`` a tensor or a scalar that broadcasts.
    """
    sigma_p = torch.as_tensor(sigma_p, dtype=mean_q.dtype, device=mean_q.device)
    if bool((sigma_q <= 0).any()) or bool((sigma_p <= 0).any()):
        raise BoundError("Gaussian scales must be positive")
    ratio = (sigma_q / sigma_p) ** 2
    terms = 0.5 * (ratio + ((mean_q - mean_p) / sigma_p) ** 2 - 1 - torch.log(ratio))
    return terms.sum()


def scale_grid(sigma_min: float, sigma_max: float, size: int) -> list[float]:
    """``size`` log-spaced prior scales from ``sigma_max`` down to ``sigma_min`` (inclusive)."""
    _check_count("the scale grid size", size)
    if not (0 < sigma_min <= sigma_max) or not math.isfinite(sigma_max):
        raise BoundError(f"need 0 < sigma_min <= sigma_max, got {sigma_min!r}, {sigma_max!r}")
    if size == 1:
        if sigma_min != sigma_max:
            raise BoundError("a grid of one scale needs sigma_min == sigma_max")
        return [float(sigma_max)]
    step = math.log(sigma_max / sigma_min) / (size - 1)
    return [float(sigma_max * math.exp(-j * step)) for j in range(size)]


def check_settings(
    delta: float, delta_prime: float, sigma_min: float, sigma_max: float, sigma_grid: int
) -> list[float]:
    """Every check of the configuration's ``bounds`` section that its schema cannot express.

    The certificate (Langford & Caruana 2002; Dziugaite & Roy 2017; Perez-Ortiz et al. 2021)
    holds with probability ``1 - delta - delta_prime``, so the two must sum below 1; the prior
    scales form a log-spaced grid fixed before the data (:func:`scale_grid`). The workflow
    calls this at parse time and the bounds script before any sampling.

    Args:
        delta: ``bounds.delta``, confidence of the PAC-Bayes-kl step, in (0, 1).
        delta_prime: ``bounds.delta_prime``, confidence of the Monte-Carlo step, in (0, 1).
        sigma_min: ``bounds.sigma_min``, the grid's smallest prior scale (positive).
        sigma_max: ``bounds.sigma_max``, the grid's largest prior scale (finite, >= sigma_min).
        sigma_grid: ``bounds.sigma_grid``, the number of grid scales (1 needs
            ``sigma_min == sigma_max``).

    Returns:
        The grid of prior scales, from ``sigma_max`` down to ``sigma_min``.

    Raises:
        BoundError: naming the offending configuration key(s).
    """
    _check_probability("bounds.delta", delta, open_interval=True)
    _check_probability("bounds.delta_prime", delta_prime, open_interval=True)
    if delta + delta_prime >= 1:
        raise BoundError(
            f"bounds.delta + bounds.delta_prime must be below 1, got {delta} + {delta_prime}"
        )
    for name, value in (("bounds.sigma_min", sigma_min), ("bounds.sigma_max", sigma_max)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value < math.inf
        ):
            raise BoundError(f"{name} must be positive and finite, got {value!r}")
    _check_count("bounds.sigma_grid", sigma_grid)
    if sigma_min > sigma_max:
        raise BoundError(f"bounds.sigma_min ({sigma_min}) exceeds bounds.sigma_max ({sigma_max})")
    if sigma_grid == 1 and sigma_min != sigma_max:
        raise BoundError("bounds.sigma_grid = 1 needs bounds.sigma_min == bounds.sigma_max")
    return scale_grid(sigma_min, sigma_max, sigma_grid)


def nearest_scale(grid: list[float], sigma: float) -> float:
    """The grid scale nearest to ``sigma`` in log scale."""
    if sigma <= 0 or not math.isfinite(sigma):
        raise BoundError(f"a scale must be positive and finite, got {sigma!r}")
    return min(grid, key=lambda s: abs(math.log(s / sigma)))


def bounded_cross_entropy(logits: Tensor, targets: Tensor, pmin: float = 1e-4) -> Tensor:
    """Mean cross-entropy with probabilities floored at ``pmin``, rescaled to ``[0, 1]``.

    ``-ln(max(p_y, pmin)) / ln(1 / pmin)`` (Dziugaite & Roy 2018; Perez-Ortiz et al. 2021): a
    bounded surrogate of the 0-1 error that PAC-Bayes objectives can train on.
    """
    _check_probability("pmin", pmin, open_interval=True)
    log_p = torch.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return (-log_p.clamp(min=math.log(pmin))).mean() / math.log(1 / pmin)


def pac_bayes_objective(
    empirical: Tensor, kl: Tensor, n: int, delta: float, kind: str = "quad"
) -> Tensor:
    """Training objectives of Perez-Ortiz et al. (2021), both upper bounds on the risk.

    With ``b = (KL + ln(2 sqrt(n) / delta)) / (2n)``: ``classic`` is ``L + sqrt(b)`` (McAllester
    form) and ``quad`` is ``(sqrt(L + b) + sqrt(b))^2``.
    """
    _check_count("n", n)
    _check_probability("delta", delta, open_interval=True)
    b = (kl + math.log(2 * math.sqrt(n) / delta)) / (2 * n)
    if kind == "classic":
        return empirical + torch.sqrt(b)
    if kind == "quad":
        return (torch.sqrt(empirical + b) + torch.sqrt(b)) ** 2
    raise BoundError(f"the PAC-Bayes objective must be 'quad' or 'classic', got {kind!r}")


def report_proxy(parameter_norm_sq: float, hessian_trace: float, n: int, eps: float) -> float:
    """The report's curvature proxy ``sqrt(||theta||^2 Tr(H) / (n eps^2))``: not a bound.

    A negative trace estimate (possible for a stochastic estimate near a saddle) gives NaN
    rather than an imaginary number.
    """
    _check_count("n", n)
    if not eps > 0:
        raise BoundError(f"the proxy's eps must be positive, got {eps!r}")
    if parameter_norm_sq < 0:
        raise BoundError(f"a squared norm cannot be negative, got {parameter_norm_sq!r}")
    if not hessian_trace >= 0:
        return math.nan
    return math.sqrt(parameter_norm_sq * hessian_trace / (n * eps**2))


def sharpness_sigma(
    drop: Callable[[float], float],
    target: float = 0.1,
    upper: float = 2.0,
    steps: int = 15,
) -> tuple[float, list[tuple[float, float]]]:
    """The largest noise scale on ``[0, upper]`` whose accuracy drop stays within ``target``.

    Bisection (Jiang et al. 2019) on ``drop(sigma)``, the expected training-accuracy drop under
    weight noise of scale ``sigma``, assumed non-decreasing. Returns the last feasible scale and
    the ``(sigma, drop)`` pairs evaluated. If even ``upper`` is feasible, ``upper`` is returned.
    """
    if not 0 < target < 1:
        raise BoundError(f"the accuracy-drop target must lie in (0, 1), got {target!r}")
    if not upper > 0:
        raise BoundError(f"the search interval's upper end must be positive, got {upper!r}")
    _check_count("steps", steps)
    trace = []
    value = drop(upper)
    trace.append((upper, value))
    if value <= target:
        return upper, trace
    lo, hi = 0.0, upper
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        value = drop(mid)
        trace.append((mid, value))
        if value <= target:
            lo = mid
        else:
            hi = mid
    return lo, trace


def jiang_sharpness(distance_sq: float, sigma: float, n: int) -> float:
    """``||w - w0||^2 / (4 sigma^2) + ln(n / sigma) + 10`` (Jiang et al. 2019, pacbayes.init)."""
    _check_count("n", n)
    if not sigma > 0:
        raise BoundError(f"sigma must be positive, got {sigma!r}")
    return distance_sq / (4 * sigma**2) + math.log(n / sigma) + 10


def jiang_magnitude_aware(
    weights: Tensor, initial: Tensor, sigma: float, n: int, eps: float = 1e-3
) -> float:
    """Magnitude-aware PAC-Bayes measure (Jiang et al. 2019, pacbayes.mag.init).

    ``1/4 sum_i ln((eps^2 + (sigma^2 + 1) ||w - w0||^2 / k) / (eps^2 + sigma^2 (w_i - w0_i)^2))
    + ln(n / sigma) + 10`` over the ``k`` parameters, where ``sigma`` is the largest scale for
    which noise ``u_i ~ N(0, sigma^2 w_i^2 + eps^2)`` keeps the accuracy drop within the target.
    The ``ln(n / sigma)`` term follows the non-magnitude measure.
    """
    _check_count("n", n)
    if not sigma > 0 or not eps > 0:
        raise BoundError(f"sigma and eps must be positive, got {sigma!r}, {eps!r}")
    if weights.shape != initial.shape:
        raise BoundError(
            f"weights {tuple(weights.shape)} and initial weights {tuple(initial.shape)} differ"
        )
    diff = (weights - initial).double()
    k = diff.numel()
    numerator = eps**2 + (sigma**2 + 1) * float(diff.pow(2).sum()) / k
    total = torch.log(numerator / (eps**2 + sigma**2 * diff.pow(2))).sum()
    return 0.25 * float(total) + math.log(n / sigma) + 10
