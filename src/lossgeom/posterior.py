"""Gaussian weight posteriors, their Monte-Carlo error, and PAC-Bayes training of them.

:class:`GaussianPosterior` is a diagonal Gaussian over a model's trainable parameters: the
means live in a copy of the model, the scales are ``softplus(rho)``. It is sampled with the
local reparameterisation trick (Kingma et al. 2015): instead of drawing a weight matrix, each
affine layer draws its output from the Gaussian it has given its input,

    W x + b  with  W_ij ~ N(M_ij, S_ij^2), b_i ~ N(m_i, s_i^2)
    ~  N(M x + m, (S^2) (x^2) + s^2)  per example,

which is exact in distribution for independent weights per example. A forward pass therefore
evaluates every example under its own independent draw from ``Q``: the ``n m`` per-example
0-1 outcomes of ``m`` passes over ``n`` examples are independent Bernoulli variables whose
means average to ``Q``'s empirical error, which is what the sample-convergence bound in
:func:`lossgeom.bounds.sample_convergence_bound` needs, with ``n m`` trials.

A convolution shares its kernel over positions, so its outputs given one draw are not
independent and the trick above does not apply; each example gets its own kernel instead
(``S * eps_i``, drawn per example), and the noise ``conv(x_i, S * eps_i)`` is computed for all
examples at once as one grouped convolution: again exact in distribution.

Supported layers: ``nn.Linear``, ``nn.Conv2d`` (zero padding) and ``nn.LayerNorm`` (its affine
parameters). BatchNorm is refused: its running statistics are data-dependent parameters that a
prior fixed before the data could not contain.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossgeom.bounds import (
    BoundError,
    bounded_cross_entropy,
    kl_diagonal_gaussians,
    pac_bayes_objective,
)
from lossgeom.models import MLP, evaluation_mode
from lossgeom.training import evaluate

logger = logging.getLogger(__name__)


def _samplable(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros"
    return isinstance(module, nn.Linear | nn.LayerNorm)


def unsupported_layer(model: nn.Module) -> str | None:
    """The first parameterised module that :class:`GaussianPosterior` cannot sample through.

    Returns its name and type, or None when every one is supported.
    """
    for prefix, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own and not _samplable(module):
            return f"{prefix or 'the model'} ({type(module).__name__})"
    return None


def _inverse_softplus(sigma: float) -> float:
    return math.log(math.expm1(sigma))


class GaussianPosterior(nn.Module):
    """``N(mean, diag(softplus(rho))^2)`` over the trainable parameters of ``model``.

    Args:
        model: the network whose parameters are the initial means (copied, never modified).
        sigma: the initial scale of every parameter.
    """

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        if not sigma > 0:
            raise BoundError(f"a posterior scale must be positive, got {sigma!r}")
        self.net = copy.deepcopy(model).eval()
        self._names = [n for n, p in self.net.named_parameters() if p.requires_grad]
        self.rho = nn.ParameterList(
            nn.Parameter(torch.full_like(p, _inverse_softplus(sigma)))
            for n, p in self.net.named_parameters()
            if p.requires_grad
        )
        self._index = dict(zip(self._names, range(len(self._names)), strict=True))
        self.generator: torch.Generator | None = None
        self.sampling = False
        for prefix, module in self.net.named_modules():
            own = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
            if not own:
                continue
            if _samplable(module):
                module.register_forward_hook(self._noise_hook(prefix))
            else:
                raise BoundError(
                    f"a Gaussian posterior cannot be sampled through {type(module).__name__} "
                    f"({prefix or 'the model'}): supported layers are Linear, Conv2d with zero "
                    "padding and LayerNorm"
                    + (
                        "; BatchNorm running statistics depend on the data"
                        if "BatchNorm" in type(module).__name__
                        else ""
                    )
                )

    def _scale(self, name: str) -> Tensor:
        return F.softplus(self.rho[self._index[name]])

    def _noise_hook(self, prefix: str):
        key = f"{prefix}." if prefix else ""

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
            if not self.sampling:
                return None
            x = inputs[0]
            if isinstance(module, nn.Linear):
                bias = self._scale(key + "bias") ** 2 if module.bias is not None else None
                variance = F.linear(x * x, self._scale(key + "weight") ** 2, bias)
            elif isinstance(module, nn.Conv2d):
                return output + self._conv_noise(module, key, x)
            else:  # LayerNorm: y = x_hat * gamma + beta, Gaussian in (gamma, beta)
                x_hat = F.layer_norm(x, module.normalized_shape, eps=module.eps)
                variance = torch.zeros_like(output)
                if module.weight is not None:
                    variance = variance + x_hat**2 * self._scale(key + "weight") ** 2
                if module.bias is not None:
                    variance = variance + self._scale(key + "bias") ** 2
            return output + variance.sqrt() * self._normal(output)

        return hook

    def _conv_noise(self, module: nn.Conv2d, key: str, x: Tensor) -> Tensor:
        """``conv(x_i, S * eps_i) + s * e_i`` with a fresh kernel draw per example ``i``."""
        n, groups = x.shape[0], module.groups
        weight = self._scale(key + "weight")
        kernels = weight * self._normal(weight.expand(n, *weight.shape))
        noise = F.conv2d(
            x.reshape(1, n * x.shape[1], *x.shape[2:]),
            kernels.reshape(n * weight.shape[0], *weight.shape[1:]),
            stride=module.stride, padding=module.padding, dilation=module.dilation,
            groups=n * groups,
        )  # fmt: skip
        noise = noise.reshape(n, weight.shape[0], *noise.shape[2:])
        if module.bias is not None:
            bias = self._scale(key + "bias")
            noise = noise + (bias * self._normal(bias.expand(n, *bias.shape)))[:, :, None, None]
        return noise

    def _normal(self, like: Tensor) -> Tensor:
        return torch.randn(
            like.shape, generator=self.generator, device=like.device, dtype=like.dtype
        )

    def forward(self, x: Tensor, first_preactivation: Tensor | None = None) -> Tensor:
        """One stochastic pass: every example under its own draw of the weights."""
        self.sampling = True
        try:
            if first_preactivation is None:
                return self.net(x)
            return self.net(x, first_preactivation=first_preactivation)
        finally:
            self.sampling = False

    def mean_forward(self, x: Tensor) -> Tensor:
        """The deterministic network at the posterior mean."""
        return self.net(x)

    def means(self) -> Iterator[Tensor]:
        """The posterior means: the trainable parameters of the copied network."""
        return (p for p in self.net.parameters() if p.requires_grad)

    def flat_mean(self) -> Tensor:
        """The posterior means as one flat vector (differentiable)."""
        return torch.cat([p.reshape(-1) for p in self.means()])

    def flat_sigma(self) -> Tensor:
        """The posterior scales ``softplus(rho)`` as one flat vector (differentiable)."""
        return torch.cat([F.softplus(r).reshape(-1) for r in self.rho])

    def kl(self, prior_mean: Tensor, prior_sigma: Tensor | float) -> Tensor:
        """``KL(Q || N(prior_mean, prior_sigma^2 I))`` in nats, differentiable in ``Q``."""
        mean = self.flat_mean()
        if prior_mean.shape != mean.shape:
            raise BoundError(
                f"the prior mean has {prior_mean.numel()} entries, the posterior {mean.numel()}"
            )
        return kl_diagonal_gaussians(mean, self.flat_sigma(), prior_mean, prior_sigma)


@dataclass
class MonteCarloError:
    """Mean 0-1 error of ``m`` stochastic passes over ``n`` examples.

    Every example of every pass was scored under its own independent draw from ``Q``, so the
    estimate averages ``trials = n m`` independent Bernoulli outcomes whose means average to
    ``Q``'s empirical error; ``per_draw`` holds each pass's mean error.
    """

    mean: float
    per_draw: list[float]
    m: int
    n: int
    seed: int
    seconds: float

    @property
    def trials(self) -> int:
        """``n m``: the independent per-example outcomes behind the estimate."""
        return self.m * self.n


@torch.no_grad()
def monte_carlo_error(
    posterior: GaussianPosterior,
    x: Tensor,
    y: Tensor,
    m: int,
    seed: int,
    chunk_size: int = 1000,
) -> MonteCarloError:
    """``m`` stochastic passes over ``(x, y)`` with a generator seeded by ``seed``.

    Each pass scores every example under its own independent weight draw from ``Q`` (local
    reparameterisation: fresh noise for every example, chunk and layer), so all ``n m``
    outcomes are independent. For registry MLPs the first layer's mean and standard deviation,
    which no draw changes, are computed once for all passes; each pass then only draws the
    first layer's noise and runs the layers after it.
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise BoundError(f"m (Monte-Carlo passes) must be a positive integer, got {m!r}")
    if chunk_size < 1:
        raise BoundError(f"chunk_size must be positive, got {chunk_size!r}")
    start = time.perf_counter()
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    posterior.generator = generator
    errors = torch.zeros(m, dtype=torch.float64, device=x.device)
    net = posterior.net
    batches = [
        (x[i : i + chunk_size], y[i : i + chunk_size]) for i in range(0, x.shape[0], chunk_size)
    ]
    try:
        if isinstance(net, MLP):
            layer = net.input_layer
            weight_var = posterior._scale("input_layer.weight") ** 2
            bias_var = posterior._scale("input_layer.bias") ** 2 if layer.bias is not None else None
            moments = []
            for xb, _ in batches:
                flat = xb.flatten(1)
                moments.append((layer(flat), F.linear(flat * flat, weight_var, bias_var).sqrt()))
            for j in range(m):
                for (_, yb), (mean, std) in zip(batches, moments, strict=True):
                    pre = torch.addcmul(mean, std, posterior._normal(mean))
                    errors[j] += (posterior(None, first_preactivation=pre).argmax(1) != yb).sum()
        else:
            for j in range(m):
                for xb, yb in batches:
                    errors[j] += (posterior(xb).argmax(1) != yb).sum()
    finally:
        posterior.generator = None
    per_draw = (errors / x.shape[0]).tolist()
    return MonteCarloError(
        mean=float(sum(per_draw) / m),
        per_draw=per_draw,
        m=m,
        n=int(x.shape[0]),
        seed=int(seed),
        seconds=time.perf_counter() - start,
    )


@torch.no_grad()
def optimal_prior_sigma(posterior: GaussianPosterior, prior_mean: Tensor) -> Tensor:
    """The isotropic prior scale that minimises ``KL(Q || N(prior_mean, s^2 I))`` over ``s``."""
    sigma, mean = posterior.flat_sigma(), posterior.flat_mean()
    return ((sigma.pow(2).sum() + (mean - prior_mean).pow(2).sum()) / mean.numel()).sqrt()


@dataclass
class PosteriorTraining:
    """What PAC-Bayes training of a posterior produced."""

    posterior: GaussianPosterior
    prior_sigma: float  # the learned prior scale, before it is snapped to the grid
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_posterior(
    posterior: GaussianPosterior,
    prior_mean: Tensor,
    prior_sigma: float,
    x: Tensor,
    y: Tensor,
    n_bound: int,
    delta: float,
    epochs: int,
    lr: float,
    momentum: float,
    batch_size: int,
    seed: int,
    objective: str = "quad",
    pmin: float = 1e-4,
    learn_prior_sigma: bool = True,
) -> PosteriorTraining:
    """PAC-Bayes with backprop (Perez-Ortiz et al. 2021) on ``(x, y)``.

    Minimises ``objective`` (``quad`` or ``classic``) of the bounded cross-entropy of one
    stochastic pass per minibatch and ``KL(Q || P)`` with ``n = n_bound``, by SGD with momentum
    over the posterior means and ``rho``. With ``learn_prior_sigma`` the prior's single scale is
    chosen too (Dziugaite & Roy 2017): at every step it is the scale that minimises the KL for
    the current posterior, ``sigma_p^2 = (sum sigma_q^2 + ||mu_q - mu_p||^2) / k`` over the
    ``k`` parameters. A certificate must then snap it to a grid fixed in advance and pay for
    the grid with a union bound. The minibatch order and the noise come from
    generators seeded by ``seed``.
    """
    start = time.perf_counter()
    sigma_p = torch.tensor(prior_sigma, dtype=prior_mean.dtype, device=prior_mean.device)
    parameters = [*posterior.means(), *posterior.rho]
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum)
    order = torch.Generator().manual_seed(int(seed))
    posterior.generator = torch.Generator(device=x.device).manual_seed(int(seed) + 1)
    history = []
    try:
        with evaluation_mode(posterior.net):
            for epoch in range(1, epochs + 1):
                permutation = torch.randperm(x.shape[0], generator=order).to(x.device)
                totals = {"objective": 0.0, "empirical": 0.0, "kl": 0.0, "error": 0.0}
                steps = 0
                for i in range(0, x.shape[0], batch_size):
                    index = permutation[i : i + batch_size]
                    logits = posterior(x[index])
                    empirical = bounded_cross_entropy(logits, y[index], pmin)
                    if learn_prior_sigma:
                        with torch.no_grad():
                            sigma_p = optimal_prior_sigma(posterior, prior_mean)
                    kl = posterior.kl(prior_mean, sigma_p)
                    loss = pac_bayes_objective(empirical, kl, n_bound, delta, objective)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    totals["objective"] += float(loss.detach())
                    totals["empirical"] += float(empirical.detach())
                    totals["kl"] += float(kl.detach())
                    totals["error"] += float((logits.argmax(1) != y[index]).float().mean())
                    steps += 1
                row = {
                    "epoch": epoch,
                    **{k: v / steps for k, v in totals.items()},
                    "prior_sigma": float(sigma_p),
                }
                history.append(row)
                logger.info(
                    "posterior epoch %d: %s", epoch, {k: round(v, 5) for k, v in row.items()}
                )
    finally:
        posterior.generator = None
    return PosteriorTraining(posterior, float(sigma_p), history, time.perf_counter() - start)


# The cached first-layer noise products of :class:`PerturbedAccuracy` stay below this size.
FIRST_LAYER_CACHE_BYTES = 1 << 30


class PerturbedAccuracy:
    """Mean accuracy of ``model`` under Gaussian weight noise, as a function of its scale.

    ``PerturbedAccuracy(...)(sigma)`` is :func:`perturbed_accuracy` at ``sigma``, for a search
    over many scales with the same draws (common random numbers). The weights at construction
    are the centre; they are restored exactly after every call.

    With isotropic noise on a registry MLP whose first layer is trained, the first layer's
    output at ``w + sigma z`` is ``x W^T + b + sigma (x Z^T + z_b)``: the products ``x W^T`` and
    ``x Z_j^T`` of every draw ``j`` are computed once (while they fit in
    :data:`FIRST_LAYER_CACHE_BYTES`), with the other layers' noise, so a call draws nothing and
    only runs the layers after the first. The sum
    is then ordered differently from ``x (W + sigma Z)^T``, so logits agree to round-off, not
    bitwise. The magnitude-aware noise is not affine in ``sigma``; it and every other model take
    full forward passes.

    Args:
        model: the network.
        x, y: the examples and labels the accuracy is measured on.
        n_samples: noise draws averaged per scale; draw ``j`` uses the generator seeded with
            ``seed + j`` and draws every trainable parameter's noise in parameter order.
        seed: see ``n_samples``.
        magnitude_eps: ``None`` for ``u ~ N(0, sigma^2 I)``, else the magnitude-aware
            ``u_i ~ N(0, sigma^2 w_i^2 + eps^2)`` (Jiang et al. 2019).
        batch_size: examples per forward pass.
        first_layer: allow the cached first-layer products (``False``: full passes always).

    Raises:
        BoundError: ``n_samples`` or ``batch_size`` is not a positive integer.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        n_samples: int,
        seed: int,
        magnitude_eps: float | None = None,
        batch_size: int = 10_000,
        first_layer: bool = True,
    ) -> None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise BoundError(
                f"the number of noise samples must be a positive integer, got {n_samples!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BoundError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model, self.x, self.y = model, x, y
        self.n_samples, self.seed = n_samples, int(seed)
        self.magnitude_eps, self.batch_size = magnitude_eps, batch_size
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.saved = [p.detach().clone() for p in self.params]
        # Filled by _cache on the first call: the chunks' labels and first-layer outputs
        # x W^T + b, and per draw the chunks' products x Z^T + z_b and the other layers' noise.
        self._labels: list[Tensor] = []
        self._base: list[Tensor] = []
        self._cached: list[tuple[list[Tensor], dict[int, Tensor]]] = []
        self._first_layer = first_layer and self._affine_first_layer()

    def _affine_first_layer(self) -> bool:
        if self.magnitude_eps is not None or not isinstance(self.model, MLP):
            return False
        layer = self.model.input_layer
        trained = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
        if not all(p.requires_grad for p in trained):
            return False
        size = self.n_samples * self.x.shape[0] * layer.out_features * self.saved[0].element_size()
        return size <= FIRST_LAYER_CACHE_BYTES

    def _draws(self, j: int) -> list[Tensor]:
        generator = torch.Generator(device=self.x.device).manual_seed(self.seed + j)
        return [
            torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
            for w in self.saved
        ]

    def _cache(self) -> None:
        layer = self.model.input_layer
        step = self.batch_size
        starts = range(0, self.x.shape[0], step)
        inputs = [self.x[i : i + step].flatten(1) for i in starts]
        self._labels = [self.y[i : i + step] for i in starts]
        self._base = [layer(xb) for xb in inputs]
        weight = next(i for i, p in enumerate(self.params) if p is layer.weight)
        bias = next((i for i, p in enumerate(self.params) if p is layer.bias), None)
        for j in range(self.n_samples):
            z = self._draws(j)
            noise_bias = z[bias] if bias is not None else None
            products = [F.linear(xb, z[weight], noise_bias) for xb in inputs]
            others = {i: noise for i, noise in enumerate(z) if i not in (weight, bias)}
            self._cached.append((products, others))

    def _cached_accuracy(self, sigma: float) -> float:
        """The first layer from the cached products; the other layers at ``w + sigma z``."""
        if not self._cached:
            self._cache()
        total = 0.0
        for products, others in self._cached:
            for i, noise in others.items():
                self.params[i].copy_(self.saved[i] + sigma * noise)
            correct = 0
            for yb, base, product in zip(self._labels, self._base, products, strict=True):
                logits = self.model(None, first_preactivation=torch.add(base, product, alpha=sigma))
                correct += int((logits.argmax(1) == yb).sum())
            total += correct / self.x.shape[0]
        return total

    def _full_accuracy(self, sigma: float) -> float:
        """Full forward passes at ``w + scale z`` for every draw."""
        total = 0.0
        for j in range(self.n_samples):
            for p, w, noise in zip(self.params, self.saved, self._draws(j), strict=True):
                scale = (
                    sigma
                    if self.magnitude_eps is None
                    else torch.sqrt(sigma**2 * w**2 + self.magnitude_eps**2)
                )
                p.copy_(w + scale * noise)
            total += evaluate(self.model, self.x, self.y, self.batch_size)[1]
        return total

    @torch.no_grad()
    def __call__(self, sigma: float) -> float:
        """The mean accuracy over the draws at noise scale ``sigma`` (``>= 0``)."""
        if sigma < 0:
            raise BoundError(f"sigma must be >= 0, got {sigma!r}")
        try:
            with evaluation_mode(self.model):
                if self._first_layer:
                    total = self._cached_accuracy(sigma)
                else:
                    total = self._full_accuracy(sigma)
        finally:
            for p, w in zip(self.params, self.saved, strict=True):
                p.copy_(w)
        return total / self.n_samples


def perturbed_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    sigma: float,
    n_samples: int,
    seed: int,
    magnitude_eps: float | None = None,
    batch_size: int = 10_000,
) -> float:
    """Mean accuracy of ``model`` with Gaussian noise added to its trainable weights.

    Isotropic noise ``u ~ N(0, sigma^2 I)`` or, with ``magnitude_eps``, the magnitude-aware
    ``u_i ~ N(0, sigma^2 w_i^2 + eps^2)`` (Jiang et al. 2019). Draw ``j`` uses the generator
    seeded with ``seed + j``: every ``sigma`` sees the same standard-normal draws (common random
    numbers), so the accuracy drop is a smooth function of ``sigma`` for the bisection. The
    weights are restored exactly afterwards. Full forward passes; a search over many scales
    should use one :class:`PerturbedAccuracy`, which reuses the first layer's products.
    """
    accuracy = PerturbedAccuracy(
        model, x, y, n_samples, seed, magnitude_eps, batch_size, first_layer=False
    )
    return accuracy(sigma)
