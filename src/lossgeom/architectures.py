"""Spectral summaries for comparing architectures, and Li et al. 2018's non-convexity maps.

One stochastic Lanczos quadrature (:func:`lossgeom.hessian.spectral_density`) gives, besides the
smoothed density, everything the architecture study tabulates about a Hessian:

- ``eig_max`` and ``eig_min``: the extreme Gauss nodes over all runs (Lanczos' extreme Ritz
  values converge first; each comes with its residual bound, so convergence is checked, not
  assumed);
- ``trace``: ``D`` times the mean over runs of ``sum_j w_j theta_j`` (each run is one
  Hutchinson sample ``u^T H u`` with ``u`` a unit Rademacher vector), with its standard error;
- ``mean_abs``: ``sum_j w_j |theta_j|`` averaged over runs, the mean absolute eigenvalue
  ``Tr|H| / D``;
- ``conditioning``: ``eig_max / mean_abs``, how many times the sharpest direction is more curved
  than the average one (the conditioning measure used throughout the study);
- ``outliers``: eigenvalues separated from the bulk (Papyan 2020 finds about one per class).
  A node whose Ritz residual bound is at most half the distance to its nearest neighbouring
  node has converged to an eigenvalue of its own (isolated); inside a dense bulk no node
  has. The bulk edge is the largest node that is not isolated, and the outliers are the
  isolated nodes above it (the median count over runs; ``bulk_edge`` is the median edge).

:func:`nonconvexity_map` evaluates ``|lambda_min / lambda_max|`` of the Hessian at each point of
a 2D plane around the solution (Li et al. 2018, Figure 7): near zero where the landscape is
locally convex, large where it has strongly negative curvature.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossgeom.connectivity import has_batchnorm, recompute_batchnorm
from lossgeom.data import Dataset, chunks
from lossgeom.estimators import DensityResult, lanczos_extreme_eigenvalues
from lossgeom.hessian import HessianOperator
from lossgeom.models import complete_spec, flat_parameters, parameter_count, set_flat_parameters
from lossgeom.tables import SPECTRUM_QUANTITIES

LossFn = Callable[[Tensor, Tensor], Tensor]
Batches = Sequence[tuple[Tensor, Tensor]]


@dataclass
class SpectrumSummary:
    """What :func:`summarise_spectrum` reads off one stochastic Lanczos quadrature."""

    eig_max: float
    eig_min: float
    trace: float
    trace_stderr: float
    mean_abs: float
    conditioning: float
    bulk_edge: float
    outliers: int
    converged_max: bool
    converged_min: bool

    def rows(self) -> list[tuple[str, float]]:
        """``(quantity, value)`` pairs in :data:`SPECTRUM_QUANTITIES` order."""
        return [(q, float(getattr(self, q))) for q in SPECTRUM_QUANTITIES]


def _isolated(nodes: np.ndarray, residuals: np.ndarray, separation: float) -> np.ndarray:
    """Which nodes of one run certify an eigenvalue of their own.

    A node's residual bound ``r`` puts an eigenvalue within ``r`` of it; a node whose bound is
    at most ``separation`` times the distance to its nearest neighbouring node has converged
    to an eigenvalue the others do not share. Inside a dense bulk no node does.
    """
    valid = ~np.isnan(nodes)
    order = np.argsort(np.where(valid, nodes, np.inf))[: int(valid.sum())]
    sorted_nodes = nodes[order]
    gaps = np.full(len(order), np.inf)
    if len(order) > 1:
        steps = np.diff(sorted_nodes)
        gaps[:-1] = steps
        gaps[1:] = np.minimum(gaps[1:], steps)
    isolated = np.zeros(len(nodes), dtype=bool)
    isolated[order] = residuals[order] <= separation * gaps
    return isolated


def summarise_spectrum(result: DensityResult, dim: int, tol: float = 1e-2,
                       separation: float = 0.5) -> SpectrumSummary:  # fmt: skip
    """Extremes, trace, mean absolute eigenvalue, conditioning and outliers of one SLQ.

    Args:
        result: a density from :func:`lossgeom.hessian.spectral_density` (or
            :func:`lossgeom.estimators.slq_density`), with its residuals.
        dim: the operator's dimension ``D``.
        tol: the extremes count as converged when their residual bounds are at most
            ``tol * max(|eig_max|, |eig_min|)``.
        separation: a node is isolated when its residual bound is at most ``separation``
            times the distance to its nearest neighbouring node (:func:`_isolated`).

    Raises:
        ValueError: a result without residuals, or a non-positive ``dim``.
    """
    if result.residuals is None:
        raise ValueError("the density carries no Ritz residuals (computed by an older lossgeom)")
    if dim < 1 or not 0 < separation:
        raise ValueError(f"need dim >= 1 and separation > 0, got {dim} and {separation}")
    nodes, weights, residuals = result.nodes, result.weights, result.residuals
    valid = ~np.isnan(nodes)
    values = np.where(valid, nodes, 0.0)
    per_run = (weights * values).sum(1)
    trace = dim * float(per_run.mean())
    stderr = (dim * float(per_run.std(ddof=1) / math.sqrt(len(per_run)))
              if len(per_run) > 1 else math.nan)  # fmt: skip
    mean_abs = float((weights * np.abs(values)).sum(1).mean())
    top, bottom = np.nanargmax(nodes), np.nanargmin(nodes)
    eig_max, eig_min = float(nodes.flat[top]), float(nodes.flat[bottom])
    scale = tol * max(abs(eig_max), abs(eig_min), 1e-30)
    edges, counts = [], []
    for run in range(len(nodes)):
        isolated = _isolated(nodes[run], residuals[run], separation)
        bulk = valid[run] & ~isolated
        if not bulk.any():  # every node converged: no bulk to stand out from
            edges.append(math.nan)
            counts.append(0)
            continue
        edge = float(nodes[run][bulk].max())
        edges.append(edge)
        counts.append(int((isolated & (nodes[run] > edge)).sum()))
    return SpectrumSummary(
        eig_max=eig_max,
        eig_min=eig_min,
        trace=trace,
        trace_stderr=stderr,
        mean_abs=mean_abs,
        conditioning=eig_max / mean_abs if mean_abs > 0 else math.nan,
        bulk_edge=float(np.nanmedian(edges)) if np.isfinite(edges).any() else math.nan,
        outliers=int(np.median(counts)),
        converged_max=bool(residuals.flat[top] <= scale),
        converged_min=bool(residuals.flat[bottom] <= scale),
    )


def nonconvexity_ratio(eig_min: float, eig_max: float) -> float:
    """Li et al. 2018's ``|lambda_min / lambda_max|`` (NaN when ``lambda_max`` is 0)."""
    return abs(eig_min / eig_max) if eig_max != 0 else math.nan


def nonconvexity_map(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    directions: Sequence[Tensor],
    alphas: Sequence[float],
    betas: Sequence[float],
    tol: float = 1e-2,
    max_iter: int = 40,
    seed: int = 0,
    statistics_data: Tensor | None = None,
) -> list[dict[str, float]]:
    """``lambda_min``, ``lambda_max`` and their ratio at ``theta + alpha d1 + beta d2``.

    Each point's extremes come from one Lanczos run on that point's Hessian
    (:func:`lossgeom.estimators.lanczos_extreme_eigenvalues`). A model with BatchNorm gets its
    statistics recomputed on ``statistics_data`` at every point, as along connectivity paths
    (:func:`lossgeom.connectivity.recompute_batchnorm`). The model is left as it came.

    Returns:
        One row per point: ``alpha, beta, eig_max, eig_min, ratio, n_hvp, converged``.
    """
    if len(directions) != 2:
        raise ValueError(f"a plane needs two directions, got {len(directions)}")
    centre = flat_parameters(model)
    d1, d2 = (d.to(centre) for d in directions)
    if d1.shape != centre.shape or d2.shape != centre.shape:
        raise ValueError(f"directions must have {centre.numel()} entries like the parameters")
    batchnorm = has_batchnorm(model)
    if batchnorm and statistics_data is None:
        raise ValueError("the model has BatchNorm layers: pass statistics_data (training inputs)")
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    rows = []
    try:
        for alpha in alphas:
            for beta in betas:
                set_flat_parameters(model, centre + float(alpha) * d1 + float(beta) * d2)
                if batchnorm:
                    recompute_batchnorm(model, statistics_data)
                with HessianOperator(model, loss_fn, batches) as operator:
                    extremes = lanczos_extreme_eigenvalues(
                        operator.matvec, operator.dim, tol=tol, max_iter=max_iter, seed=seed,
                        like=torch.empty(0, dtype=operator.dtype, device=operator.device),
                    )  # fmt: skip
                rows.append({
                    "alpha": float(alpha), "beta": float(beta), "eig_max": extremes.eig_max,
                    "eig_min": extremes.eig_min,
                    "ratio": nonconvexity_ratio(extremes.eig_min, extremes.eig_max),
                    "n_hvp": extremes.n_hvp, "converged": extremes.converged,
                })  # fmt: skip
    finally:
        model.load_state_dict(saved)
    return rows


# ------------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class StudySettings:
    """How the architecture study trains and measures one architecture (see the config).

    Attributes:
        seeds: training seeds.
        accuracy_target, accuracy_window: the trainability milestone
            (:class:`lossgeom.training.AccuracyTarget`).
        curvature_size: training samples (the first of the subset) defining the Hessian.
        curvature_epochs: how many epochs get a spectrum, evenly spaced from initialisation
            to the last epoch (:func:`measured_epochs`; every epoch when there are fewer).
        n_iter, n_runs: stochastic Lanczos quadrature per checkpoint.
        spectrum_tol, separation: :func:`summarise_spectrum`'s ``tol`` and ``separation``.
        density_points: grid points kept of each stored density.
        map_seeds: seeds whose solutions get a non-convexity map.
        map_resolution, map_span: the map's grid (``resolution`` points per axis on
            ``[-span, span]``, filter-normalised directions).
        map_iter, map_tol: Lanczos settings per map point.
        map_size: training samples defining each map point's Hessian.
        barrier_points, barrier_size: points on each path and training samples evaluated.
        chunk_size: samples per Hessian-vector-product chunk.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    accuracy_target: float = 0.95
    accuracy_window: int = 20
    curvature_size: int = 512
    curvature_epochs: int = 5
    n_iter: int = 30
    n_runs: int = 3
    spectrum_tol: float = 1e-2
    separation: float = 0.5
    density_points: int = 200
    map_seeds: tuple[int, ...] = (0,)
    map_resolution: int = 5
    map_span: float = 1.0
    map_iter: int = 30
    map_tol: float = 1e-2
    map_size: int = 256
    barrier_points: int = 11
    barrier_size: int = 2000
    chunk_size: int = 512


@dataclass
class ArchitectureResult:
    """One architecture's tables (lists of row dicts) and per-seed run facts."""

    rows: list[dict] = field(default_factory=list)
    curvature: list[dict] = field(default_factory=list)
    density: list[dict] = field(default_factory=list)
    barriers: list[dict] = field(default_factory=list)
    nonconvexity: list[dict] = field(default_factory=list)
    runs: dict[int, dict] = field(default_factory=dict)


def describe(model_spec: dict) -> dict[str, object]:
    """``family, depth, skip, norm`` of a registry model, as the architecture table states them.

    Depth counts hidden layers (MLP), conv-pool blocks (CNN), basic blocks (ResNet) or
    transformer blocks (ViT); ``skip`` is 1 where the network has skip connections.
    """
    spec = complete_spec(model_spec)
    name = spec["name"]
    if name == "mlp":
        return {"family": "mlp", "depth": len(spec["hidden"]),
                "skip": int(spec["residual"] and len(spec["hidden"]) > 1), "norm": spec["norm"]}  # fmt: skip
    if name == "cnn":
        return {
            "family": "cnn",
            "depth": len(spec["channels"]),
            "skip": 0,
            "norm": spec["norm"],
        }
    if name == "resnet":
        return {"family": "resnet", "depth": len(spec["channels"]) * spec["blocks"],
                "skip": int(spec["skip"]), "norm": spec["norm"]}  # fmt: skip
    return {"family": name, "depth": spec["depth"], "skip": 1, "norm": "layernorm"}


def schedule_priority(model_spec: dict) -> int:
    """The scheduler's priority of an architecture's job: the likely longest first.

    Image models (whose epochs cost tens of MLP epochs on a CPU) come before MLPs, and deeper
    networks before shallower ones, so that two cores do not end the stage on one long job.

    Example:
        >>> [schedule_priority(s) for s in ({"name": "resnet"}, {"name": "mlp", "hidden": [8, 8]})]
        [103, 2]
    """
    described = describe(model_spec)
    return (0 if described["family"] == "mlp" else 100) + int(described["depth"])


MLP_VARIANTS = {
    "plain": {"residual": False, "norm": "none"},
    "residual": {"residual": True, "norm": "none"},
    "residual_layernorm": {"residual": True, "norm": "layernorm"},
    "batchnorm": {"residual": False, "norm": "batchnorm"},
}


def study_entries(section: dict) -> dict[str, dict]:
    """The study's architectures by name: the MLP families, then the named models.

    Each MLP family member is ``mlp_<variant>_d<depth>`` (``depth`` hidden layers of
    ``mlp.width``; :data:`MLP_VARIANTS`); every entry gets the study's optimizer, epochs and
    batch size unless it names its own. Models are completed with their defaults
    (:func:`lossgeom.models.complete_spec`).

    Raises:
        ValueError: a named model that takes a family member's name, or names an unknown model
            or option (the message names the key).
    """
    from lossgeom.models import ModelConfigError, complete_spec

    mlp = section["mlp"]
    recipe = {k: section[k] for k in ("optimizer", "epochs", "batch_size")}
    entries = {}
    for variant in mlp["variants"]:
        for depth in mlp["depths"]:
            model = {"name": "mlp", "hidden": [mlp["width"]] * depth,
                     "activation": mlp["activation"], **MLP_VARIANTS[variant]}  # fmt: skip
            entries[f"mlp_{variant}_d{depth}"] = {"model": complete_spec(model), **recipe}
    for name, entry in section["models"].items():
        if name in entries:
            raise ValueError(f"architectures.models.{name}: the name of an MLP family member")
        try:
            model = complete_spec(entry["model"])
        except ModelConfigError as error:
            raise ModelConfigError(f"architectures.models.{name}.{error}") from None
        training = {k: v for k, v in entry.items() if k in ("optimizer", "epochs", "batch_size")}
        entries[name] = {**recipe, **training, "model": model}
    return entries


def study_jobs(section: dict) -> dict[str, list[str]]:
    """The study's jobs: each MLP family (its depths) is one job, each named model its own.

    A family's members are small, and each job pays several seconds of interpreter and torch
    start-up, so a family shares one (``mlp_<variant>``); the image models run alone.

    Raises:
        ValueError: a named model that takes a family job's name (naming the key).

    Example:
        >>> section = {"mlp": {"variants": ["plain"], "depths": [1, 2]}, "models": {"cnn": {}}}
        >>> study_jobs(section)
        {'mlp_plain': ['mlp_plain_d1', 'mlp_plain_d2'], 'cnn': ['cnn']}
    """
    mlp = section["mlp"]
    jobs = {f"mlp_{v}": [f"mlp_{v}_d{d}" for d in mlp["depths"]] for v in mlp["variants"]}
    for name in section["models"]:
        if name in jobs:
            raise ValueError(f"architectures.models.{name}: the name of an MLP family's job")
        jobs[name] = [name]
    return jobs


def study_settings(section: dict, name: str) -> dict:
    """The measuring settings of architecture ``name``: the study's, its own over them, seeds.

    Raises:
        ValueError: an override that is not a setting, or of another kind than the setting
            (the message names the key).
    """
    own = (section["models"].get(name) or {}).get("settings") or {}
    defaults = section["settings"]
    for key, value in own.items():
        where = f"architectures.models.{name}.settings.{key}"
        if key not in defaults:
            raise ValueError(f"{where}: not a setting; known: {sorted(defaults)}")
        expected = defaults[key]
        if isinstance(expected, list):
            if not isinstance(value, list) or not set(value) <= set(section["seeds"]):
                raise ValueError(
                    f"{where}: must list seeds among {section['seeds']}, got {value!r}"
                )
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{where}: must be a positive number, got {value!r}")
        elif isinstance(expected, int) and not isinstance(value, int):
            raise ValueError(f"{where}: must be an integer, got {value!r}")
    return {**defaults, **own, "seeds": section["seeds"]}


def _final_metric(rows: list[dict], split: str, metric: str) -> float:
    values = [r for r in rows if r["split"] == split and r["metric"] == metric]
    return max(values, key=lambda r: r["epoch"])["value"] if values else math.nan


def seed_pairs(seeds: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive seeds, cyclically: every pair for three seeds, one pair for two.

    Example:
        >>> seed_pairs([0, 1, 2])
        [(0, 1), (1, 2), (2, 0)]
    """
    seeds = list(seeds)
    if len(seeds) < 2:
        return []
    if len(seeds) == 2:
        return [(seeds[0], seeds[1])]
    return [(seeds[i], seeds[(i + 1) % len(seeds)]) for i in range(len(seeds))]


@dataclass
class _Study:
    """What every step of :func:`measure_architecture` shares."""

    name: str
    described: dict
    settings: StudySettings
    x: Tensor
    y: Tensor
    out: ArchitectureResult
    log: Callable[[str], None]

    def add(self, seed: int, params: int, rows: Sequence[tuple[str, float]]) -> None:
        self.out.rows += [{"experiment": self.name, **self.described, "params": params,
                           "seed": seed, "quantity": q, "value": float(v)} for q, v in rows]  # fmt: skip


def _settle(study: _Study, model: nn.Module) -> None:
    """Recompute BatchNorm statistics on the whole training subset (models without: no-op).

    Running averages lag far behind weights that moved fast, so after a short run the
    eval-mode network can be much worse than the one trained (a ResNet measured 33% training
    accuracy in eval mode against 89% in train mode); every measurement of the study is in eval
    mode, on these recomputed statistics.
    """
    if has_batchnorm(model):
        recompute_batchnorm(model, study.x)


def measured_epochs(epochs: Sequence[int], count: int) -> list[int]:
    """``count`` of ``epochs``, evenly spaced, the first and the last always among them.

    Example:
        >>> measured_epochs(range(9), 5)
        [0, 2, 4, 6, 8]
        >>> measured_epochs(range(3), 5)
        [0, 1, 2]
    """
    epochs = sorted(epochs)
    if count < 2:
        raise ValueError(f"count must be at least 2 (the first and the last epoch), got {count}")
    if len(epochs) <= count:
        return epochs
    positions = np.unique(np.round(np.linspace(0, len(epochs) - 1, count)).astype(int))
    return [epochs[i] for i in positions]


def _spectra(study: _Study, seed: int, model: nn.Module, states: dict) -> list[tuple[str, float]]:
    """The spectrum at the measured epochs' weights; the rows of the first and the last."""
    from lossgeom.hessian import spectral_density

    settings, size = study.settings, study.settings.curvature_size
    batches = chunks(study.x[:size], study.y[:size], settings.chunk_size)
    epochs, rows = measured_epochs(states, settings.curvature_epochs), []
    for epoch in epochs:
        model.load_state_dict(states[epoch])
        _settle(study, model)
        density = spectral_density(model, F.cross_entropy, batches, n_iter=settings.n_iter,
                                   n_runs=settings.n_runs, seed=seed)  # fmt: skip
        summary = summarise_spectrum(density, parameter_count(model), settings.spectrum_tol,
                                     settings.separation)  # fmt: skip
        study.out.curvature += [{"experiment": study.name, "seed": seed, "epoch": epoch,
                                 "quantity": q, "value": v} for q, v in summary.rows()]  # fmt: skip
        if epoch in (epochs[0], epochs[-1]):
            keep = np.linspace(0, len(density.grid) - 1, settings.density_points).astype(int)
            study.out.density += [{"experiment": study.name, "seed": seed, "epoch": epoch,
                                   "eigenvalue": float(density.grid[i]),
                                   "density": float(density.density[i])} for i in keep]  # fmt: skip
        if epoch == epochs[0]:
            rows += [("eig1_init", summary.eig_max), ("outliers_init", summary.outliers),
                     ("conditioning_init", summary.conditioning)]  # fmt: skip
    study.log(f"{study.name} seed {seed}: final spectrum {summary}")
    return rows + [("eig1", summary.eig_max), ("eig_min", summary.eig_min),
                   ("trace", summary.trace), ("outliers", summary.outliers),
                   ("conditioning", summary.conditioning), ("bulk_edge", summary.bulk_edge)]  # fmt: skip


def _barriers(study: _Study, models: dict[int, nn.Module]) -> None:
    """Linear and aligned barriers between consecutive seeds (training-subset loss)."""
    from lossgeom.connectivity import AlignmentError, aligned_model, barrier, linear_path

    settings = study.settings
    xb, yb = study.x[: settings.barrier_size], study.y[: settings.barrier_size]
    ts = np.linspace(0.0, 1.0, settings.barrier_points)
    for seed_a, seed_b in seed_pairs(settings.seeds):
        if seed_a not in models or seed_b not in models:
            continue
        model = models[seed_a]
        statistics = xb if has_batchnorm(model) else None
        ends, note = {"linear": flat_parameters(models[seed_b])}, ""
        try:
            ends["aligned"] = flat_parameters(aligned_model(model, models[seed_b]))
        except AlignmentError as error:
            note = f"not applicable: {error}"
        for path in ("linear", "aligned"):
            height = math.nan
            if path in ends:
                loss, _ = linear_path(model, flat_parameters(model), ends[path], ts, xb, yb,
                                      statistics)  # fmt: skip
                height = barrier(ts, loss)
            study.out.barriers.append({"experiment": study.name, "seed_a": seed_a,
                                       "seed_b": seed_b, "path": path, "barrier": height,
                                       "note": "" if path in ends else note})  # fmt: skip
            study.add(seed_a, parameter_count(model), [(f"barrier_{path}", height)])
        study.log(f"{study.name} seeds {seed_a}-{seed_b}: barriers {study.out.barriers[-2:]}")


def _maps(study: _Study, models: dict[int, nn.Module]) -> None:
    """Non-convexity maps on filter-normalised planes around the chosen seeds' solutions."""
    from lossgeom.directions import slice_directions

    settings = study.settings
    grid = np.linspace(-settings.map_span, settings.map_span, settings.map_resolution)
    xm, ym = study.x[: settings.map_size], study.y[: settings.map_size]
    for seed in settings.map_seeds:
        if seed not in models:
            continue
        model = models[seed]
        directions, _ = slice_directions("filter", model, seed=seed)
        points = nonconvexity_map(model, F.cross_entropy, chunks(xm, ym, settings.chunk_size),
                                  directions, grid, grid, tol=settings.map_tol,
                                  max_iter=settings.map_iter, seed=seed,
                                  statistics_data=xm if has_batchnorm(model) else None)  # fmt: skip
        keys = ("alpha", "beta", "eig_max", "eig_min", "ratio")
        study.out.nonconvexity += [{"experiment": study.name, "seed": seed,
                                    **{k: p[k] for k in keys}} for p in points]  # fmt: skip
        median = float(np.nanmedian([p["ratio"] for p in points]))
        centre = min(points, key=lambda p: abs(p["alpha"]) + abs(p["beta"]))["ratio"]
        study.add(seed, parameter_count(model),
                  [("nonconvexity_median", median), ("nonconvexity_centre", centre)])  # fmt: skip
        study.log(f"{study.name} seed {seed}: non-convexity median {median:.4g}")


def measure_architecture(
    name: str,
    spec: dict,
    data: Dataset,
    settings: StudySettings,
    checkpoint_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    identity: dict | None = None,
    log: Callable[[str], None] = print,
) -> ArchitectureResult:
    """Train ``spec`` for every seed and measure what the architecture study tabulates.

    Per seed: trainability (final training loss and test accuracy, steps to the accuracy
    target, divergence) and the Hessian spectrum at the measured epochs
    (:func:`measured_epochs`; :func:`summarise_spectrum` of one SLQ on the first
    ``curvature_size`` training samples), with the densities at the first and last epoch.
    Per pair of consecutive seeds (:func:`seed_pairs`): the loss barrier along the linear
    path, raw and after weight matching (NaN, noted as not applicable, where the model has no
    permutation specification). Per seed in ``map_seeds``: the non-convexity map.
    A diverged seed has trainability rows only. BatchNorm statistics are recomputed on the
    whole training subset before every measurement (:func:`_settle`).

    Args:
        name: the architecture's name (the ``experiment`` column).
        spec: ``{"model", "optimizer", "epochs", "batch_size"}`` as for
            :func:`lossgeom.training.train` (the model complete with its input size).
        data: training subset and test set, normalised.
        settings: the study's settings.
        checkpoint_dir: this architecture's checkpoint folder (one subfolder per seed).
        device: where to train and measure.
        identity: what else makes the runs (data checksums), for the checkpoint key.
        log: receives progress lines.
    """
    from lossgeom.training import AccuracyTarget, evaluate, train

    device = torch.device(device)
    study = _Study(name, describe(spec["model"]), settings, data.train_x.to(device),
                   data.train_y.to(device), ArchitectureResult(), log)  # fmt: skip
    target = AccuracyTarget(settings.accuracy_target, settings.accuracy_window)
    milestone = "steps_to_95" if settings.accuracy_target == 0.95 else "steps_to_target"
    models: dict[int, nn.Module] = {}
    for seed in settings.seeds:
        result = train(spec, data, seed, Path(checkpoint_dir) / f"seed{seed}", device=device,
                       progress=False, identity=identity, target=target)  # fmt: skip
        steps = result.extra["steps_to_target"]
        final = {"loss": _final_metric(result.rows, "train", "loss"),
                 "accuracy": _final_metric(result.rows, "test", "accuracy")}  # fmt: skip
        spectra = []
        if result.status != "diverged":
            models[seed] = result.model
            # Leaves the model at its last epoch, BatchNorm statistics recomputed (_settle).
            spectra = _spectra(study, seed, result.model, result.states)
            if has_batchnorm(result.model):  # the final metrics on those statistics too
                final["loss"] = evaluate(result.model, study.x, study.y)[0]
                final["accuracy"] = evaluate(result.model, data.test_x.to(device),
                                             data.test_y.to(device))[1]  # fmt: skip
        rows = [
            ("final_train_loss", final["loss"]),
            ("final_test_accuracy", final["accuracy"]),
            (milestone, math.nan if steps is None else float(steps)),
            ("diverged", float(result.status == "diverged")),
        ]
        study.out.runs[seed] = {"status": result.status, "reason": result.reason,
                                "seconds": result.seconds, "steps": result.extra["steps"],
                                **dict(rows)}  # fmt: skip
        log(f"{name} seed {seed}: {result.status} in {result.seconds:.1f}s; {dict(rows)}")
        rows += spectra
        study.add(seed, parameter_count(result.model), rows)
    _barriers(study, models)
    _maps(study, models)
    return study.out


__all__ = [
    "ArchitectureResult",
    "SPECTRUM_QUANTITIES",
    "StudySettings",
    "describe",
    "measure_architecture",
    "measured_epochs",
    "schedule_priority",
    "seed_pairs",
    "study_entries",
    "study_jobs",
    "study_settings",
    "SpectrumSummary",
    "nonconvexity_map",
    "nonconvexity_ratio",
    "summarise_spectrum",
]
