"""The generalisation-measure sweep (report questions 3 and 4): a population of trained MLPs.

Jiang et al. (2020, "Fantastic generalization measures") and Dziugaite et al. (2020, "In search
of robust measures of generalization") test a measure by how well it ranks many models trained
over a controlled hyperparameter grid, each trained to the same stopping criterion (training
cross-entropy 0.01) so that the models are comparable. This module builds that grid
(:func:`sweep_models`), trains one model to the criterion while recording what an early look
at training shows (:func:`train_to_criterion`) and measures it (:func:`final_measures`).

Every model is an MLP of ``depth`` hidden ReLU layers of ``width`` units trained by SGD with
momentum on the first ``train_size`` images of a fixed training subset. A model that never
reaches the criterion within ``max_steps`` is recorded as such (``reached_criterion = 0``),
and one whose loss blows up as diverged; neither is dropped.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossgeom.data import Dataset, chunks
from lossgeom.models import build_model, flat_parameters, parameter_count
from lossgeom.tables import SWEEP_AXES, SWEEP_EARLY_POINTS, SWEEP_EARLY_QUANTITIES, SWEEP_MEASURES

#: The grid's axes, in the order of the model id and of the table's columns.
AXES = tuple(SWEEP_AXES)

#: Short names of the axes in model ids.
_ID_KEYS = {"dataset": "", "lr": "lr", "batch_size": "bs", "width": "w", "depth": "d",
            "weight_decay": "wd", "train_size": "n", "init_scale": "init"}  # fmt: skip

#: The points at which training is looked at early: after the first tenth of an epoch and
#: after the first epoch (the sweep's ``*_tenth`` and ``*_epoch1`` columns).
EARLY_POINTS = tuple(SWEEP_EARLY_POINTS)

#: What is measured at each early point.
EARLY_QUANTITIES = tuple(SWEEP_EARLY_QUANTITIES)


class SweepError(ValueError):
    """A sweep configuration that cannot be run (names the config key)."""


def _value_id(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SweepModel:
    """One grid point with one seed: what the sweep trains."""

    dataset: str
    lr: float
    batch_size: int
    width: int
    depth: int
    weight_decay: float
    train_size: int
    init_scale: float
    seed: int

    @property
    def model_id(self) -> str:
        """A readable id from the values, e.g. ``mnist_lr0.1_bs32_w128_d1_wd0_n1000_init1_s0``."""
        parts = [f"{_ID_KEYS[a]}{_value_id(getattr(self, a))}" for a in AXES]
        return "_".join([*parts, f"s{self.seed}"])

    @property
    def config_group(self) -> str:
        """The id without the seed: models of one configuration share it (held out together)."""
        return self.model_id.rsplit("_s", 1)[0]

    def axes(self) -> dict[str, Any]:
        """The grid point, axis by axis."""
        return {a: getattr(self, a) for a in AXES}


def sweep_models(section: Mapping[str, Any]) -> list[SweepModel]:
    """Every model of the grid: the product of the axes' values, times the seeds.

    ``section["axes"]`` maps every name of :data:`AXES` to its list of values; axes with one
    value are held fixed. The order is the product's, axes in :data:`AXES` order, the seeds
    innermost.

    Raises:
        SweepError: an axis missing or without values, an unknown axis, duplicate values, or no
            seeds (naming the key).

    Example:
        >>> axes = {"dataset": ["mnist"], "lr": [0.1, 0.5], "batch_size": [32], "width": [64],
        ...         "depth": [1], "weight_decay": [0.0], "train_size": [500], "init_scale": [1.0]}
        >>> [m.model_id for m in sweep_models({"axes": axes, "seeds": [0]})]
        ['mnist_lr0.1_bs32_w64_d1_wd0_n500_init1_s0', 'mnist_lr0.5_bs32_w64_d1_wd0_n500_init1_s0']
    """
    axes = dict(section.get("axes") or {})
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise SweepError(f"sweep.axes.{unknown[0]} is not an axis; axes: {', '.join(AXES)}")
    for axis in AXES:
        values = axes.get(axis)
        if not values:
            raise SweepError(f"sweep.axes.{axis} has no values; give at least one")
        if len(set(values)) != len(values):
            raise SweepError(f"sweep.axes.{axis} repeats a value: {values}")
    seeds = list(section.get("seeds") or [])
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepError(f"sweep.seeds must be distinct seeds, at least one; got {seeds}")
    return [
        SweepModel(**dict(zip(AXES, values, strict=True)), seed=seed)
        for values in itertools.product(*(axes[a] for a in AXES))
        for seed in seeds
    ]


def varied_axes(section: Mapping[str, Any]) -> list[str]:
    """The axes with more than one value (those the granulated coefficient averages over)."""
    return [a for a in AXES if len(section["axes"][a]) > 1]


def job_groups(models: Sequence[SweepModel], size: int) -> dict[str, list[SweepModel]]:
    """Consecutive models in jobs of at most ``size`` (``g000``, ``g001``, ...).

    Each job pays the interpreter's and torch's start-up once for its models, and the cluster
    profile spreads the jobs.
    """
    if size < 1:
        raise SweepError(f"sweep.group_size must be at least 1, got {size}")
    return {f"g{i // size:03d}": list(models[i : i + size]) for i in range(0, len(models), size)}


@dataclass(frozen=True)
class SweepSettings:
    """How each model is trained and measured (the config's ``sweep`` keys but the grid)."""

    momentum: float = 0.9
    stop_loss: float = 0.01
    max_steps: int = 3000
    divergence_loss: float = 20.0
    measure_size: int = 500
    eig_tol: float = 1e-3
    eig_max_iter: int = 60
    trace_matvecs: int = 12
    early_eig_tol: float = 1e-2
    early_trace_matvecs: int = 6
    noise_size: int = 128
    margin_quantile: float = 0.1
    proxy_eps: float = 1.0
    chunk_size: int = 1000

    def __post_init__(self) -> None:
        if not 0 < self.stop_loss < math.log(10):
            raise SweepError(
                f"sweep.stop_loss: {self.stop_loss} can never mark a trained model: it must lie "
                f"in (0, ln 10 = {math.log(10):.3f}), the cross-entropy of a uniform guess over 10 classes"
            )
        if self.divergence_loss <= self.stop_loss:
            raise SweepError(
                f"sweep.divergence_loss: {self.divergence_loss} must exceed sweep.stop_loss "
                f"{self.stop_loss}"
            )


def _early_look(
    model: nn.Module, probe: list[tuple[Tensor, Tensor]], lr: float, momentum: float,
    settings: SweepSettings, seed: int, loss_before: float, steps: int,
) -> dict[str, float]:  # fmt: skip
    """Loss, gradient norm, top eigenvalue and trace on the probe; the stability ratio."""
    from lossgeom.hessian import top_eigenvalues
    from lossgeom.hessian import trace as hessian_trace

    x, y = probe[0] if len(probe) == 1 else (torch.cat([b[0] for b in probe]),
                                             torch.cat([b[1] for b in probe]))  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params)
    grad_norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))
    eig = top_eigenvalues(model, F.cross_entropy, probe, k=1, tol=settings.early_eig_tol,
                          seed=seed, max_iter=settings.eig_max_iter)  # fmt: skip
    tr = hessian_trace(model, F.cross_entropy, probe, n_matvecs=settings.early_trace_matvecs,
                       seed=seed)  # fmt: skip
    eig1 = float(eig.values[0])
    loss = float(loss.detach())
    return {
        "loss": loss,
        "loss_slope": (loss - loss_before) / steps,
        "grad_norm": grad_norm,
        "eig1": eig1,
        "trace": float(tr.estimate),
        # lambda_max against SGD-with-momentum's stability threshold 2 (1 + beta) / eta
        "stability_ratio": eig1 * lr / (2 * (1 + momentum)),
    }


@dataclass
class SweepRun:
    """One model after :func:`train_to_criterion`."""

    model: nn.Module
    initial: Tensor
    status: str  # reached, not_reached or diverged
    steps: int
    epochs: int
    seconds: float
    early: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        """Whether the run reached the stopping criterion."""
        return self.status == "reached"


def build_sweep_model(spec: SweepModel, input_dim: int, num_classes: int) -> nn.Module:
    """The MLP of ``spec``, its default initialisation multiplied by ``init_scale``."""
    torch.manual_seed(spec.seed)
    model = build_model({"name": "mlp", "input_dim": input_dim, "num_classes": num_classes,
                         "hidden": [spec.width] * spec.depth})  # fmt: skip
    if spec.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(spec.init_scale)
    return model


def train_to_criterion(
    spec: SweepModel,
    x: Tensor,
    y: Tensor,
    num_classes: int,
    settings: SweepSettings,
    log: Callable[[str], None] = print,
) -> SweepRun:
    """Train ``spec`` by minibatch SGD until the training cross-entropy reaches ``stop_loss``.

    The loss over the whole training set is checked after every epoch; training stops there
    when it is at most ``stop_loss`` (``reached``), or when ``max_steps`` have been taken
    (``not_reached``). A non-finite minibatch loss, or an epoch's loss above
    ``divergence_loss``, stops it as ``diverged``. After the first tenth of an epoch and after
    the first epoch (:data:`EARLY_POINTS`) the probe (the first ``measure_size`` training
    examples) gives the early quantities (:data:`EARLY_QUANTITIES`; the slope is per step from
    the probe's loss at initialisation).

    Args:
        spec: the grid point and seed (seeds the initialisation and the minibatch order).
        x: the model's training inputs (``train_size`` of them).
        y: their labels.
        num_classes: the label count.
        settings: the sweep's settings.
        log: receives one line per model.
    """
    from lossgeom.training import evaluate

    start = time.perf_counter()
    # built on CPU (the same initial weights on every device), then moved to the data's device
    model = build_sweep_model(spec, int(np.prod(x.shape[1:])), num_classes).to(x.device)
    initial = flat_parameters(model).detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=settings.momentum,
                                weight_decay=spec.weight_decay)  # fmt: skip
    generator = torch.Generator().manual_seed(spec.seed + 1_000_003)
    n = x.shape[0]
    per_epoch = math.ceil(n / spec.batch_size)
    points = {max(1, per_epoch // 10): "tenth", per_epoch: "epoch1"}
    probe = chunks(x[: settings.measure_size], y[: settings.measure_size], settings.chunk_size)
    with torch.no_grad():
        loss_init = float(F.cross_entropy(model(x[: settings.measure_size]),
                                          y[: settings.measure_size]))  # fmt: skip
    early: dict[str, dict[str, float]] = {}
    status, step, epoch = "not_reached", 0, 0
    model.train()
    while status == "not_reached" and step < settings.max_steps:
        epoch += 1
        order = torch.randperm(n, generator=generator).to(x.device)
        for i in range(0, n, spec.batch_size):
            batch = order[i : i + spec.batch_size]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            if not torch.isfinite(loss):
                status = "diverged"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step in points:
                early[points[step]] = _early_look(model, probe, spec.lr, settings.momentum,
                                                  settings, spec.seed, loss_init, step)  # fmt: skip
            if step >= settings.max_steps:
                break
        if status == "diverged":
            break
        train_loss = evaluate(model, x, y, batch_size=settings.chunk_size)[0]
        if not math.isfinite(train_loss) or train_loss > settings.divergence_loss:
            status = "diverged"
        elif train_loss <= settings.stop_loss:
            status = "reached"
    seconds = time.perf_counter() - start
    log(f"{spec.model_id}: {status} after {step} steps ({epoch} epochs) in {seconds:.1f}s")
    return SweepRun(model.eval(), initial, status, step, epoch, seconds, early)


def _weights(model: nn.Module) -> list[Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def path_norm(model: nn.Module) -> float:
    """Neyshabur et al.'s (2015) squared path norm as Jiang et al. compute it.

    The sum of the outputs of the network whose parameters (weights and biases) are squared,
    with the activations made the identity, on an input of ones: for a ReLU MLP without
    biases, the sum over every input-output path of the product of its squared weights.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        h = torch.ones(
            1, layers[0].in_features, dtype=torch.float64, device=layers[0].weight.device
        )
        for layer in layers:
            h = h @ layer.weight.double().pow(2).T
            if layer.bias is not None:
                h = h + layer.bias.double().pow(2)
    return float(h.sum())


def norm_measures(model: nn.Module, initial: Tensor) -> dict[str, float]:
    """Jiang et al.'s norm-based measures of an MLP (weight matrices only, as they do).

    ``frobenius_sq``: sum of the squared Frobenius norms; ``distance_sq``: squared distance of
    all parameters from initialisation; ``spectral_product``: the product of the layers'
    squared spectral norms; ``path_norm``: :func:`path_norm`.
    """
    weights = _weights(model)
    with torch.no_grad():
        frobenius = sum(float(w.double().pow(2).sum()) for w in weights)
        spectral = math.prod(float(torch.linalg.matrix_norm(w.double(), ord=2)) ** 2
                             for w in weights)  # fmt: skip
        distance = float((flat_parameters(model).double() - initial.double()).pow(2).sum())
    return {"frobenius_sq": frobenius, "distance_sq": distance,
            "spectral_product": spectral, "path_norm": path_norm(model)}  # fmt: skip


def output_margin(model: nn.Module, x: Tensor, y: Tensor, quantile: float = 0.1) -> float:
    """The ``quantile`` of the output margins (true logit minus the largest other) over (x, y).

    Jiang et al. use the 10th percentile, which is robust to a few misfit examples.
    """
    with torch.no_grad():
        logits = model(x)
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], -math.inf).amax(1)
    return float(torch.quantile((true - others).double(), quantile))


def gradient_noise(model: nn.Module, x: Tensor, y: Tensor, chunk_size: int = 256) -> float:
    """Tr of the one-sample gradient covariance at the model's weights (unbiased, ``n`` samples)."""
    from lossgeom.noise import per_sample_gradients

    grads = per_sample_gradients(model, F.cross_entropy, x, y, chunk_size).double()
    centred = grads - grads.mean(0)
    return float(centred.pow(2).sum() / (x.shape[0] - 1))


#: The measures of a trained model, in the sweep table's column order (README "Sweep").
MEASURES = tuple(SWEEP_MEASURES)


def final_measures(
    run: SweepRun,
    data: Dataset,
    settings: SweepSettings,
    bound_settings,
    seed: int,
) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for a trained model, its training and test error.

    ``data`` holds the model's own training set and the test set; the errors come back as
    ``train_error`` and ``test_error``.

    Curvature (``eig1`` by Lanczos, ``trace`` by Hutch++) is that of the mean training loss
    on the probe (the first ``measure_size`` training examples). ``proxy`` is the report's
    ``||w||^2 Tr(H) / (n eps^2)``-style proxy (:func:`lossgeom.bounds.report_proxy`). The
    Jiang measures and the centred PAC-Bayes-kl certificate come from
    :mod:`lossgeom.certificates` with ``bound_settings`` (certified on the model's own
    ``train_size`` examples, the prior centred at initialisation).
    """
    from lossgeom import bounds
    from lossgeom.certificates import centred_certificate, jiang_measures
    from lossgeom.hessian import top_eigenvalues
    from lossgeom.hessian import trace as hessian_trace
    from lossgeom.training import evaluate

    model, size = run.model, settings.measure_size
    x, y = data.train_x, data.train_y
    probe = chunks(x[:size], y[:size], settings.chunk_size)
    eig = top_eigenvalues(model, F.cross_entropy, probe, k=1, tol=settings.eig_tol, seed=seed,
                          max_iter=settings.eig_max_iter)  # fmt: skip
    tr = float(hessian_trace(model, F.cross_entropy, probe, n_matvecs=settings.trace_matvecs,
                             seed=seed).estimate)  # fmt: skip
    n = x.shape[0]
    norm_sq = float(flat_parameters(model).double().pow(2).sum())
    out = {"eig1": float(eig.values[0]), "trace": tr,
           "proxy": bounds.report_proxy(norm_sq, tr, n, settings.proxy_eps)}  # fmt: skip
    jiang = jiang_measures(model, run.initial, x[:size], y[:size], n, bound_settings)
    certificate = centred_certificate(model, run.initial, x[:size], y[:size], data, bound_settings)
    for table in (jiang, certificate):
        for row in table.rows:
            out[row["quantity"]] = float(row["value"])
    out.update(norm_measures(model, run.initial))
    out["margin"] = output_margin(model, x, y, settings.margin_quantile)
    out["gradient_noise"] = gradient_noise(model, x[: settings.noise_size],
                                           y[: settings.noise_size])  # fmt: skip
    out["params"] = float(parameter_count(model))
    out["final_train_loss"], train_accuracy = evaluate(model, x, y)
    out["train_error"] = 1 - train_accuracy
    out["test_error"] = 1 - evaluate(model, data.test_x, data.test_y)[1]
    return {k: out[k] for k in (*MEASURES, "train_error", "test_error")}


def reparametrisation_rows(
    run: SweepRun,
    data: Dataset,
    settings: SweepSettings,
    bound_settings,
    alphas: Sequence[float],
    seed: int,
    layer: int = 0,
) -> list[dict[str, float]]:
    """Dinh et al. (2017): every measure of one trained ReLU MLP over rescalings ``alpha``.

    Layer ``layer`` is multiplied by ``alpha`` and the next layer's weight by ``1 / alpha``
    (:func:`lossgeom.models.rescale_layer`), the initial weights likewise (the same change of
    coordinates), which leaves the function, and so the errors, unchanged. The rows hold the
    test and training error, the largest output change against ``alpha = 1`` over the test
    set (``output_change``, float rounding only) and every measure of :data:`MEASURES`.

    Returns:
        Rows ``{"alpha", "quantity", "value"}``.
    """
    import copy

    from lossgeom.models import rescale_layer

    rows = []
    with torch.no_grad():
        reference = run.model(data.test_x)
    for alpha in alphas:
        model = rescale_layer(copy.deepcopy(run.model), layer, float(alpha))
        start = copy.deepcopy(run.model)  # w0 rescaled alike (vector_to_parameters keeps
        torch.nn.utils.vector_to_parameters(run.initial.clone(), start.parameters())  # views)
        initial = flat_parameters(rescale_layer(start, layer, float(alpha))).detach()
        scaled = SweepRun(model.eval(), initial, run.status, run.steps, run.epochs, run.seconds)
        with torch.no_grad():
            change = float((model(data.test_x) - reference).abs().max())
        values = {"output_change": change,
                  **final_measures(scaled, data, settings, bound_settings, seed)}  # fmt: skip
        rows += [
            {"alpha": float(alpha), "quantity": q, "value": float(v)} for q, v in values.items()
        ]
    return rows


__all__ = [
    "AXES",
    "EARLY_POINTS",
    "EARLY_QUANTITIES",
    "MEASURES",
    "SweepError",
    "SweepModel",
    "SweepRun",
    "SweepSettings",
    "build_sweep_model",
    "final_measures",
    "gradient_noise",
    "job_groups",
    "norm_measures",
    "output_margin",
    "path_norm",
    "reparametrisation_rows",
    "sweep_models",
    "train_to_criterion",
    "varied_axes",
]
