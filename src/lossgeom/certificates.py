"""The bounds stage for one checkpoint: measures, scale selection, priors and certificates.

This module orchestrates :mod:`lossgeom.bounds` (the arithmetic) and :mod:`lossgeom.posterior`
(sampling and PAC-Bayes training) into the rows of the bounds table and the terms behind them:

* the test and training error and the report's curvature proxy (not a bound);
* the sharpness measures of Jiang et al. (2020, "Fantastic generalization measures and where
  to find them"), :func:`jiang_measures`;
* the certificate of the centred posterior ``N(w, s^2 I)`` against the prior ``N(w0, s^2 I)``,
  with ``s`` chosen from the prior-scale grid (Dziugaite & Roy 2017), :func:`centred_certificate`;
* at the final epoch, the certificate of a posterior trained by PAC-Bayes with backprop against
  a data-dependent prior (Perez-Ortiz et al. 2021), :func:`optimised_certificate`.

Every certificate is the PAC-Bayes-kl bound chained with the sample-convergence bound of
Langford & Caruana (2002) (:func:`certify_posterior`). :func:`bound_checkpoint` runs them all.

Example:
    >>> table = Table()
    >>> table.row("test_error", 0.25, n=4)
    >>> table.term("proxy", "eps", 1.0)
    >>> rows, terms = table.frames({"experiment": "e", "seed": 0, "epoch": 2})
    >>> list(rows.columns) == COLUMNS, float(rows.loc[0, "value"])
    (True, 0.25)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from lossgeom import bounds
from lossgeom.bounds import BoundError
from lossgeom.data import Dataset
from lossgeom.models import flat_parameters
from lossgeom.posterior import (
    GaussianPosterior,
    PerturbedAccuracy,
    monte_carlo_error,
    train_posterior,
)
from lossgeom.tables import BOUND_QUANTITIES, OPTIMIZED_QUANTITIES, read_table
from lossgeom.training import evaluate, train

logger = logging.getLogger(__name__)

COLUMNS = ["experiment", "seed", "epoch", "quantity", "value", "delta", "n", "mc_samples"]
TERM_COLUMNS = ["experiment", "seed", "epoch", "quantity", "term", "value"]
QUANTITIES = BOUND_QUANTITIES
OPTIMIZED = OPTIMIZED_QUANTITIES


@dataclass
class Table:
    """Rows of the bounds table and the terms behind them, in the order they were computed.

    Attributes:
        rows: dicts with keys ``quantity, value, delta, n, mc_samples``.
        terms: dicts with keys ``quantity, term, value``.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    terms: list[dict[str, Any]] = field(default_factory=list)

    def row(
        self, quantity: str, value: float, delta=math.nan, n=math.nan, mc_samples=math.nan
    ) -> None:
        """Append one row; ``delta``, ``n`` and ``mc_samples`` are NaN where they do not apply."""
        self.rows.append(
            {"quantity": quantity, "value": value, "delta": delta, "n": n, "mc_samples": mc_samples}
        )

    def term(self, quantity: str, name: str, value: float) -> None:
        """Append one term behind ``quantity``."""
        self.terms.append({"quantity": quantity, "term": name, "value": value})

    def extend(self, other: Table) -> None:
        """Append another table's rows and terms."""
        self.rows += other.rows
        self.terms += other.terms

    def frames(self, base: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows and terms as data frames, each record prefixed with ``base``.

        Args:
            base: the ``experiment``, ``seed`` and ``epoch`` of the checkpoint.

        Returns:
            ``(rows, terms)`` with columns :data:`COLUMNS` and :data:`TERM_COLUMNS`.
        """
        rows = pd.DataFrame([{**base, **r} for r in self.rows], columns=COLUMNS)
        terms = pd.DataFrame([{**base, **t} for t in self.terms], columns=TERM_COLUMNS)
        return rows, terms


@dataclass(frozen=True)
class Settings:
    """The configuration's ``bounds`` section (every key but ``track_seed``) and the epoch's role.

    The fields are the keys of ``bounds`` in ``workflow/schemas/config.schema.yaml``, which
    describes each. ``final_epoch`` selects ``m = mc_samples`` and the optimised posterior;
    other epochs use ``m = epoch_mc_samples`` and the centred posterior only. Construction
    checks what the schema cannot (:func:`lossgeom.bounds.check_settings`) and sets ``grid``.

    Raises:
        BoundError: settings no certificate can be computed with, naming the config key.
    """

    eps: float
    delta: float
    delta_prime: float
    mc_samples: int
    epoch_mc_samples: int
    sample_convergence: str
    select_samples: int
    sigma_min: float
    sigma_max: float
    sigma_grid: int
    seed: int
    chunk_size: int
    jiang_target: float
    jiang_upper: float
    jiang_steps: int
    jiang_samples: int
    jiang_eps: float
    prior: str
    prior_fraction: float
    prior_epochs: int
    split_seed: int
    posterior_sigma: float
    objective: str
    posterior_epochs: int
    posterior_lr: float
    posterior_momentum: float
    posterior_batch_size: int
    pmin: float
    final_epoch: bool
    grid: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        grid = bounds.check_settings(
            self.delta, self.delta_prime, self.sigma_min, self.sigma_max, self.sigma_grid
        )
        object.__setattr__(self, "grid", tuple(grid))
        for key, allowed in (
            ("sample_convergence", ("trials", "passes")),
            ("prior", ("data_dependent", "init")),
            ("objective", ("quad", "classic")),
        ):
            if getattr(self, key) not in allowed:
                raise BoundError(
                    f"bounds.{key} must be one of {allowed}, got {getattr(self, key)!r}"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """The settings named in ``values`` (a config section or ``vars(args)``); extras ignored."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init})

    @property
    def m(self) -> int:
        """Monte-Carlo passes of every certificate at this epoch."""
        return self.mc_samples if self.final_epoch else self.epoch_mc_samples

    def trials(self, m: int, n: int) -> int:
        """Independent outcomes behind an estimate from ``m`` passes over ``n`` examples."""
        return m * n if self.sample_convergence == "trials" else m


@dataclass(frozen=True)
class PriorRecipe:
    """How the data-dependent prior network is trained (Perez-Ortiz et al. 2021).

    Attributes:
        experiment_spec: the run's experiment spec (optimiser, batch size); the model and the
            number of epochs are replaced by the checkpoint's model and ``prior_epochs``.
        model_spec: the checkpoint's architecture.
        run_seed: the run's seed, so the prior starts at the run's initial weights ``w0``.
        checkpoint_dir: the folder whose keyed subfolder holds the prior's checkpoints.
        identity: what else shapes the prior (the data file's MD5, the dataset); the split
            settings are added by :func:`train_prior`.
    """

    experiment_spec: dict[str, Any]
    model_spec: dict[str, Any]
    run_seed: int
    checkpoint_dir: str | os.PathLike
    identity: dict[str, Any] = field(default_factory=dict)


def hessian_trace(path: str | os.PathLike, epoch: int) -> float:
    """The Hessian trace of ``epoch`` in a curvature table.

    Args:
        path: a CSV of the curvature stage (columns ``epoch``, ``quantity``, ``value``).
        epoch: the checkpoint's epoch.

    Returns:
        The ``trace`` value of that epoch.

    Raises:
        ValueError: the table has no trace for ``epoch``.
    """
    table = read_table(path, "curvature")
    rows = table[(table["quantity"] == "trace") & (table["epoch"] == epoch)]
    if rows.empty:
        raise ValueError(f"{path} has no Hessian trace for epoch {epoch}")
    return float(rows["value"].iloc[0])


def check_inputs(
    model: nn.Module | None, meta: dict, initial_meta: dict, initial_path: Any, settings: Settings
) -> None:
    """Checks of the weights before any sampling (architectures are compared by the caller).

    Args:
        model: the checkpoint's network (``None`` for a diverged run's missing epoch).
        meta: the checkpoint's metadata (``experiment``, ``seed``, ``epoch``).
        initial_meta: the metadata of the weights given as ``w0``.
        initial_path: where those weights came from (for the message).
        settings: the bounds settings (the grid's largest scale tries the posterior).

    Raises:
        ValueError: ``w0`` is not the same run's epoch 0, or the model has layers a Gaussian
            posterior cannot be sampled through (a :class:`BoundError`).
    """
    run = (meta["experiment"], meta["seed"], 0)
    if (initial_meta["experiment"], initial_meta["seed"], initial_meta["epoch"]) != run:
        raise ValueError(
            f"{initial_path} is not the epoch-0 weights of {meta['experiment']} seed {meta['seed']}"
        )
    if model is not None:
        GaussianPosterior(model, settings.grid[0])  # refuses layers it cannot sample


def error_measures(model: nn.Module, data: Dataset, trace: float, eps: float) -> Table:
    """Test and training error, and the report's curvature proxy (not a bound).

    Args:
        model: the checkpoint's network.
        data: the dataset; the proxy uses its training-set size.
        trace: the Hessian trace from the curvature stage.
        eps: the proxy's perturbation scale.

    Returns:
        Rows ``test_error``, ``train_error``, ``proxy`` and the proxy's terms.
    """
    table = Table()
    n_train, n_test = data.train_x.shape[0], data.test_x.shape[0]
    test_accuracy = evaluate(model, data.test_x, data.test_y)[1]
    train_accuracy = evaluate(model, data.train_x, data.train_y)[1]
    table.row("test_error", 1 - test_accuracy, n=n_test)
    table.row("train_error", 1 - train_accuracy, n=n_train)
    norm_sq = float(flat_parameters(model).double().pow(2).sum())
    table.row("proxy", bounds.report_proxy(norm_sq, trace, n_train, eps), n=n_train)
    table.term("proxy", "parameter_norm_sq", norm_sq)
    table.term("proxy", "hessian_trace", trace)
    table.term("proxy", "eps", eps)
    return table


def jiang_measures(
    model: nn.Module, w0: Tensor, x: Tensor, y: Tensor, n_train: int, settings: Settings
) -> Table:
    """Sharpness and magnitude-aware PAC-Bayes measures of Jiang et al. (2020).

    For each, a bisection (:func:`lossgeom.bounds.sharpness_sigma`) finds the largest weight-noise
    scale whose mean accuracy drop on ``(x, y)`` over ``jiang_samples`` draws (seeded by
    ``settings.seed``) stays within ``jiang_target``.

    Args:
        model: the checkpoint's network (its weights are restored after every draw).
        w0: the run's initial weights, flat.
        x: inputs of the fixed training subset.
        y: labels of the fixed training subset.
        n_train: the training-set size the measures are stated for.
        settings: the bounds settings (``jiang_*``, ``seed``).

    Returns:
        Rows ``jiang_sharpness`` and ``jiang_magnitude_aware`` (infinite when no scale keeps the
        drop within the target) and their terms.
    """
    table = Table()
    w = flat_parameters(model)
    clean = evaluate(model, x, y)[1]
    distance_sq = float((w - w0).double().pow(2).sum())
    for quantity, magnitude in (
        ("jiang_sharpness", None),
        ("jiang_magnitude_aware", settings.jiang_eps),
    ):
        noisy = PerturbedAccuracy(
            model, x, y, settings.jiang_samples, settings.seed, magnitude_eps=magnitude
        )
        sigma, searched = bounds.sharpness_sigma(
            lambda s, noisy=noisy: clean - noisy(s),
            settings.jiang_target,
            settings.jiang_upper,
            settings.jiang_steps,
        )
        if sigma == 0:
            logger.warning(
                "%s: no noise scale keeps the accuracy drop within %s",
                quantity,
                settings.jiang_target,
            )
            value = math.inf
        elif magnitude is None:
            value = bounds.jiang_sharpness(distance_sq, sigma, n_train)
        else:
            value = bounds.jiang_magnitude_aware(w, w0, sigma, n_train, magnitude)
        table.row(quantity, value, n=n_train, mc_samples=settings.jiang_samples)
        table.term(quantity, "sigma", sigma)
        table.term(quantity, "mc_seed", settings.seed)
        table.term(quantity, "subset", x.shape[0])
        table.term(quantity, "searched_points", len(searched))
        logger.info("%s: sigma %.5g, value %.5g", quantity, sigma, value)
    table.term("jiang_sharpness", "distance_sq", distance_sq)
    return table


def select_centred_sigma(
    model: nn.Module, distance_sq: float, x: Tensor, y: Tensor, n_train: int, settings: Settings
) -> tuple[float, list[tuple[float, float]]]:
    """The grid scale whose centred posterior promises the smallest certificate.

    For every scale ``s`` of the grid (fixed before the data; Dziugaite & Roy 2017), the error
    of ``N(w, s^2 I)`` is estimated with ``select_samples`` passes over ``(x, y)`` (seeded by
    ``settings.seed``) and certified as if it came from ``m`` passes over the ``n_train``
    examples, with ``KL = ||w - w0||^2 / (2 s^2)``. The certificate itself then uses fresh draws
    (:func:`centred_certificate`); the union bound over the grid pays for the choice.

    Args:
        model: the checkpoint's network (the posterior mean).
        distance_sq: ``||w - w0||^2``.
        x: inputs of the fixed training subset.
        y: labels of the fixed training subset.
        n_train: the number of examples the certificate will be computed on.
        settings: the bounds settings.

    Returns:
        The chosen scale and the ``(predicted certificate, scale)`` pair of every grid point.
    """
    choice = []
    for sigma in settings.grid:
        posterior = GaussianPosterior(model, sigma)
        estimate = monte_carlo_error(
            posterior, x, y, settings.select_samples, settings.seed, settings.chunk_size
        ).mean
        certificate = bounds.certify(
            estimate,
            settings.trials(settings.m, n_train),
            distance_sq / (2 * sigma**2),
            n_train,
            settings.delta,
            settings.delta_prime,
            len(settings.grid),
        )
        choice.append((certificate.value, sigma))
    return min(choice)[1], choice


def certify_posterior(
    name: str,
    posterior: GaussianPosterior,
    kl: float,
    x: Tensor,
    y: Tensor,
    data: Dataset,
    settings: Settings,
    seeds: tuple[int, int],
) -> Table:
    """Certify a posterior on the examples its prior never saw, and its stochastic test error.

    ``m`` passes over ``(x, y)`` estimate the posterior's empirical error; the certificate
    chains the sample-convergence bound (Langford & Caruana 2002) with the union-bounded
    PAC-Bayes-kl bound (:func:`lossgeom.bounds.certify`). ``m`` passes over the test set
    estimate the stochastic test error the certificate bounds.

    Args:
        name: ``centered`` or ``optimized``; the rows are ``certificate_<name>`` and
            ``stochastic_test_error_<name>``.
        posterior: the stochastic classifier ``Q``.
        kl: ``KL(Q || P)`` for the prior certified against.
        x: inputs of the bound set.
        y: labels of the bound set.
        data: the dataset (its test split).
        settings: the bounds settings.
        seeds: Monte-Carlo seeds of the bound-set and the test-set estimates.

    Returns:
        The two rows and every term of the certificate.
    """
    table, quantity, m = Table(), f"certificate_{name}", settings.m
    mc = monte_carlo_error(posterior, x, y, m, seeds[0], settings.chunk_size)
    trials = settings.trials(mc.m, mc.n)
    certificate = bounds.certify(
        mc.mean, trials, kl, mc.n, settings.delta, settings.delta_prime, len(settings.grid)
    )
    test = monte_carlo_error(posterior, data.test_x, data.test_y, m, seeds[1], settings.chunk_size)
    table.row(quantity, certificate.value, delta=settings.delta, n=mc.n, mc_samples=mc.m)
    table.row(f"stochastic_test_error_{name}", test.mean, n=test.n, mc_samples=test.m)
    for key, value in certificate.as_dict().items():
        table.term(quantity, key, value)
    table.term(quantity, "mc_seed", mc.seed)
    table.term(quantity, "mc_passes", mc.m)
    # What the bound would be with one trial per pass (each pass's mean error as one outcome).
    per_pass = bounds.sample_convergence_bound(mc.mean, mc.m, settings.delta_prime)
    table.term(quantity, "empirical_bound_per_pass", per_pass)
    table.term(quantity, "mc_seconds", mc.seconds)
    table.term(f"stochastic_test_error_{name}", "mc_seed", test.seed)
    logger.info(
        "certificate (%s): %.5f (MC error %.5f, bound %.5f, KL %.4g, n %d, m %d, trials %d); "
        "stochastic test error %.5f",
        name, certificate.value, mc.mean, certificate.empirical_bound, kl, mc.n, mc.m, trials, test.mean,
    )  # fmt: skip
    return table


def centred_certificate(
    model: nn.Module, w0: Tensor, x: Tensor, y: Tensor, data: Dataset, settings: Settings
) -> Table:
    """Certificate of the centred posterior ``N(w, s^2 I)`` against the prior ``N(w0, s^2 I)``.

    ``s`` is chosen on the training subset by :func:`select_centred_sigma`; the certificate is
    then computed on the whole training set with fresh draws (seeds ``seed + 1``, ``seed + 2``).

    Args:
        model: the checkpoint's network.
        w0: the run's initial weights, flat (the prior mean, fixed before the data).
        x: inputs of the fixed training subset (scale selection only).
        y: labels of the fixed training subset.
        data: the dataset.
        settings: the bounds settings.

    Returns:
        Rows ``certificate_centered`` and ``stochastic_test_error_centered`` and their terms.
    """
    distance_sq = float((flat_parameters(model) - w0).double().pow(2).sum())
    n_train = data.train_x.shape[0]
    sigma, _ = select_centred_sigma(model, distance_sq, x, y, n_train, settings)
    kl = distance_sq / (2 * sigma**2)
    seeds = (settings.seed + 1, settings.seed + 2)
    posterior = GaussianPosterior(model, sigma)
    table = certify_posterior(
        "centered", posterior, kl, data.train_x, data.train_y, data, settings, seeds
    )
    table.term("certificate_centered", "prior_sigma", sigma)
    table.term("certificate_centered", "posterior_sigma", sigma)
    return table


def split_for_prior(
    n_train: int, fraction: float, split_seed: int, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """A seeded split of the training set into the prior's part and the bound set.

    Args:
        n_train: the training-set size.
        fraction: the share the data-dependent prior learns from.
        split_seed: seeds the permutation.
        device: where the indices go.

    Returns:
        ``(prior_index, bound_index)``, disjoint, of sizes ``round(fraction n)`` and the rest.
    """
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(split_seed)).to(device)
    n_prior = int(round(fraction * n_train))
    return order[:n_prior], order[n_prior:]


def train_prior(
    recipe: PriorRecipe,
    data: Dataset,
    prior_index: Tensor,
    w0: Tensor,
    settings: Settings,
    device: torch.device | str,
) -> nn.Module:
    """The data-dependent prior network (Perez-Ortiz et al. 2021), resumably checkpointed.

    The run's own recipe and initial weights, trained for ``prior_epochs`` on the prior's part
    of the training set only, through :func:`lossgeom.training.train`; its checkpoint key
    includes ``prior_fraction``, ``split_seed`` and ``recipe.identity``.

    Args:
        recipe: the run's spec, seed, checkpoint folder and data identity.
        data: the dataset.
        prior_index: the training examples the prior may see.
        w0: the run's initial weights, flat; the prior's training must start there.
        settings: the bounds settings.
        device: where to train.

    Returns:
        The trained prior network, in eval mode.

    Raises:
        RuntimeError: the prior's training did not start from ``w0``.
    """
    spec = {**recipe.experiment_spec, "model": recipe.model_spec, "epochs": settings.prior_epochs}
    prior_data = dataclasses.replace(
        data, train_x=data.train_x[prior_index], train_y=data.train_y[prior_index]
    )
    identity = {
        "prior_fraction": settings.prior_fraction,
        "split_seed": settings.split_seed,
        **recipe.identity,
    }
    result = train(
        spec, prior_data, int(recipe.run_seed), recipe.checkpoint_dir, device=device, progress=False,
        identity=identity,
    )  # fmt: skip
    names = (k for k, _ in result.model.named_parameters())
    start = torch.nn.utils.parameters_to_vector(result.states[0][k] for k in names)
    if not torch.equal(start.to(w0.device), w0):
        raise RuntimeError("the prior's training did not start from this run's initial weights")
    return result.model.eval()


def choose_prior(
    model: nn.Module,
    initial: nn.Module,
    data: Dataset,
    settings: Settings,
    recipe: PriorRecipe,
    device: torch.device | str,
) -> tuple[nn.Module, nn.Module, Tensor]:
    """The optimised posterior's prior network, its starting network and its bound set.

    With ``prior = data_dependent`` the prior is trained on a seeded share of the training set
    (:func:`split_for_prior`, :func:`train_prior`; Perez-Ortiz et al. 2021) and the posterior
    starts at it, which saw none of the bound set. With ``prior = init`` the prior mean is the
    run's initial weights, fixed before the data (Dziugaite & Roy 2017), the posterior starts at
    the checkpoint and the whole training set is the bound set.

    Args:
        model: the checkpoint's network.
        initial: the run's initial network.
        data: the dataset.
        settings: the bounds settings (``prior``, ``prior_fraction``, ``split_seed``, ...).
        recipe: how to train the data-dependent prior.
        device: where to train.

    Returns:
        ``(prior_net, start_net, bound_index)``.
    """
    n_train = data.train_x.shape[0]
    if settings.prior == "init":
        return initial, model, torch.arange(n_train, device=device)
    prior_index, bound_index = split_for_prior(
        n_train, settings.prior_fraction, settings.split_seed, device
    )
    prior_net = train_prior(recipe, data, prior_index, flat_parameters(initial), settings, device)
    return prior_net, prior_net, bound_index


def optimised_certificate(
    model: nn.Module,
    initial: nn.Module,
    data: Dataset,
    settings: Settings,
    recipe: PriorRecipe,
    device: torch.device | str,
) -> Table:
    """Certificate of a posterior trained by PAC-Bayes with backprop (Perez-Ortiz et al. 2021).

    The prior, the starting point and the bound set come from :func:`choose_prior`; the
    certificate is computed on the bound set. The posterior's initial
    scale is ``posterior_sigma`` snapped to the grid; the learned prior scale is snapped to the
    grid too, which the union bound pays for (Dziugaite & Roy 2017). Seeds ``seed + 3``,
    ``seed + 4`` draw the certificate's estimates.

    Args:
        model: the checkpoint's network.
        initial: the run's initial network.
        data: the dataset.
        settings: the bounds settings.
        recipe: how to train the data-dependent prior.
        device: where to train.

    Returns:
        Rows ``certificate_optimized`` and ``stochastic_test_error_optimized`` and their terms.
    """
    prior_net, start_net, bound_index = choose_prior(model, initial, data, settings, recipe, device)
    prior_mean = flat_parameters(prior_net)
    x, y = data.train_x[bound_index], data.train_y[bound_index]
    sigma0 = bounds.nearest_scale(settings.grid, settings.posterior_sigma)
    posterior = GaussianPosterior(start_net, sigma0)
    training = train_posterior(
        posterior, prior_mean, sigma0, x, y, x.shape[0], settings.delta, settings.posterior_epochs,
        settings.posterior_lr, settings.posterior_momentum, settings.posterior_batch_size, settings.seed,
        settings.objective, settings.pmin,
    )  # fmt: skip
    prior_sigma = bounds.nearest_scale(settings.grid, training.prior_sigma)
    with torch.no_grad():
        mean, sigma = posterior.flat_mean().double(), posterior.flat_sigma().double()
        kl = float(bounds.kl_diagonal_gaussians(mean, sigma, prior_mean.double(), prior_sigma))
    seeds = (settings.seed + 3, settings.seed + 4)
    table = certify_posterior("optimized", posterior, kl, x, y, data, settings, seeds)
    name = "certificate_optimized"
    table.term(name, "prior_sigma", prior_sigma)
    table.term(name, "learned_prior_sigma", training.prior_sigma)
    table.term(name, "posterior_sigma_mean", float(posterior.flat_sigma().mean().detach()))
    table.term(name, "n_prior", data.train_x.shape[0] - bound_index.numel())
    table.term(name, "prior_data_dependent", float(settings.prior == "data_dependent"))
    table.term(name, "training_seconds", training.seconds)
    if training.history:
        table.term(name, "final_objective", training.history[-1]["objective"])
    with torch.no_grad():
        table.term(name, "prior_test_error", 1 - evaluate(prior_net, data.test_x, data.test_y)[1])
        table.term(
            name,
            "posterior_mean_test_error",
            1 - evaluate(posterior.net, data.test_x, data.test_y)[1],
        )
    return table


def bound_checkpoint(
    model: nn.Module | None,
    initial: nn.Module,
    data: Dataset,
    subset: tuple[Tensor, Tensor],
    trace: float,
    settings: Settings,
    recipe: PriorRecipe,
    device: torch.device | str,
) -> Table:
    """Every measure and certificate of one checkpoint, in the table's order.

    Args:
        model: the checkpoint's network; ``None`` for an epoch a diverged run never reached,
            which gives a NaN row per quantity.
        initial: the run's initial network (``w0``).
        data: the dataset.
        subset: the fixed training subset ``(x, y)`` of the curvature stage (Jiang et al.'s
            search and the centred scale's selection).
        trace: the checkpoint's Hessian trace.
        settings: the bounds settings; ``final_epoch`` adds the optimised posterior.
        recipe: how to train the data-dependent prior (final epoch only).
        device: where to train.

    Returns:
        The rows and terms of the bounds table.
    """
    table = Table()
    if model is None:
        logger.warning("no usable weights (a diverged or failed run); writing NaN")
        for quantity in QUANTITIES + (OPTIMIZED if settings.final_epoch else []):
            table.row(quantity, math.nan)
        return table
    n_train, w0 = data.train_x.shape[0], flat_parameters(initial)
    table.extend(error_measures(model, data, trace, settings.eps))
    table.extend(jiang_measures(model, w0, *subset, n_train, settings))
    table.extend(centred_certificate(model, w0, *subset, data, settings))
    if settings.final_epoch:
        table.extend(optimised_certificate(model, initial, data, settings, recipe, device))
    return table
