"""Mode connectivity: paths between two solutions, their barriers, curves and alignment.

* Linear path ``theta(t) = (1 - t) a + t b`` and its barrier
  ``max_t [L(theta(t)) - ((1 - t) L(a) + t L(b))]`` (Frankle et al. 2020).
* Quadratic Bezier curve ``theta(t) = (1 - t)^2 a + 2 t (1 - t) c + t^2 b`` with one trained
  bend ``c`` (Garipov et al. 2018): each minibatch samples ``t ~ U(0, 1)`` and steps on
  ``L(theta(t))``; the endpoints stay fixed.
* Weight matching (Ainsworth et al. 2022, "Git Re-Basin"): permute the hidden units of ``b``
  to match ``a`` by a linear assignment per permutation group, iterated over the groups in
  random order until no group improves. The permuted network computes the same function.
* The plane through ``a``, ``b`` and the bend (Garipov et al. 2018, their figure of the loss
  surface): orthonormal ``u`` along ``b - a``, ``v`` along the bend's offset from that line,
  coordinates in units of ``|b - a|``.

Both paths are affine in at most two directions (the curve in ``t`` and ``t^2``), so they are
evaluated as slices with :func:`lossgeom.landscape.evaluate_slice`: batched, no-grad passes.
All vectors are flat, in the layout of ``parameters_to_vector``. A bend's training is
checkpointed through :class:`lossgeom.checkpoints.CheckpointStore`, keyed by every setting
that shapes it (:func:`curve_settings`).

:mod:`lossgeom.training` is imported inside the functions that use it, so that a notebook
drawing the curve on the plane with :func:`bezier_point` imports no estimator.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.func import functional_call

from lossgeom.checkpoints import CheckpointStore, capture_rng, restore_rng, tensor_digest
from lossgeom.landscape import evaluate_slice
from lossgeom.models import CNN, MLP, ResNet, flat_parameters, set_flat_parameters

logger = logging.getLogger(__name__)


class AlignmentError(ValueError):
    """A model whose hidden units weight matching cannot permute."""


def _model_at(model: nn.Module, vector: Tensor) -> nn.Module:
    clone = copy.deepcopy(model)
    set_flat_parameters(clone, vector)
    return clone


def _check_same_size(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: endpoints have {a.numel()} and {b.numel()} parameters")


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has BatchNorm layers, whose statistics a path must recompute.

    Args:
        model: any module.

    Returns:
        True if any submodule is a BatchNorm layer.
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: Tensor, batch_size: int = 1000) -> None:
    """Replace every BatchNorm's running statistics by the mean and variance over ``x``.

    Garipov et al. (2018) recompute them at each point of a path: statistics of the endpoints
    do not carry over to the weights in between.

    Args:
        model: the network (its modes and the layers' momenta are restored).
        x: the inputs the statistics are computed on.
        batch_size: inputs per forward pass.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    modes = [(module, module.training) for module in model.modules()]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches
    model.train()
    try:
        for i in range(0, x.shape[0], batch_size):
            model(x[i : i + batch_size])
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for module, mode in modes:
            module.training = mode


def evaluate_points(
    model: nn.Module, points: Sequence[Tensor], x: Tensor, y: Tensor, statistics_data: Tensor | None
) -> tuple[np.ndarray, np.ndarray]:
    """One model per point, BatchNorm statistics recomputed on ``statistics_data``."""
    from lossgeom.training import evaluate  # imported here: see the note at the top

    if statistics_data is None:
        raise ValueError(
            "the model has BatchNorm layers: pass statistics_data (training inputs) so that "
            "their statistics are recomputed at every point of the path"
        )
    losses, accuracies = [], []
    for vector in points:
        probe = _model_at(model, vector)
        recompute_batchnorm(probe, statistics_data)
        loss, accuracy = evaluate(probe, x, y)
        losses.append(loss)
        accuracies.append(accuracy)
    return np.array(losses), np.array(accuracies)


def linear_path(
    model: nn.Module,
    a: Tensor,
    b: Tensor,
    ts: Sequence[float],
    x: Tensor,
    y: Tensor,
    statistics_data: Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at ``(1 - t) a + t b`` for each ``t`` (``model`` gives the architecture).

    Models with BatchNorm need ``statistics_data``: their statistics are recomputed per point.
    """
    _check_same_size(a, b, "linear_path")
    ts = np.asarray(ts, dtype=np.float64)
    if has_batchnorm(model):
        return evaluate_points(model, [(1 - t) * a + t * b for t in ts], x, y, statistics_data)
    return evaluate_slice(_model_at(model, a), [b - a], ts[:, None], x, y)


def bezier_point(a: Tensor, bend: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """The quadratic Bezier curve ``(1 - t)^2 a + 2 t (1 - t) c + t^2 b`` (Garipov et al. 2018).

    Args:
        a: the start (a tensor, or a numpy array such as plane coordinates).
        bend: the bend ``c``, shaped like the endpoints.
        b: the end.
        t: the point on the curve; an array of shape ``(N, 1)`` gives ``N`` points at once.

    Returns:
        The point(s) of the curve, of the endpoints' type.
    """
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * bend + t**2 * b


def bezier_path(
    model: nn.Module,
    a: Tensor,
    bend: Tensor,
    b: Tensor,
    ts: Sequence[float],
    x: Tensor,
    y: Tensor,
    statistics_data: Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy along the quadratic Bezier curve (Garipov et al. 2018).

    The curve is evaluated as the affine slice ``a + t * 2 (c - a) + t^2 (a - 2 c + b)``, or
    per point with recomputed statistics for models with BatchNorm.

    Args:
        model: the architecture (its weights are not used).
        a: the start, a flat vector.
        bend: the bend ``c``.
        b: the end.
        ts: the points of the curve.
        x: evaluation inputs.
        y: evaluation labels.
        statistics_data: inputs for the BatchNorm statistics (models with BatchNorm only).

    Returns:
        ``(loss, accuracy)``, each of shape ``(len(ts),)``.
    """
    _check_same_size(a, b, "bezier_path")
    _check_same_size(a, bend, "bezier_path")
    ts = np.asarray(ts, dtype=np.float64)
    if has_batchnorm(model):
        points = [bezier_point(a, bend, b, float(t)) for t in ts]
        return evaluate_points(model, points, x, y, statistics_data)
    directions = [2 * (bend - a), a - 2 * bend + b]
    return evaluate_slice(_model_at(model, a), directions, np.stack([ts, ts**2], 1), x, y)


def barrier(ts: Sequence[float], values: Sequence[float]) -> float:
    """``max_t [v(t) - ((1 - t) v(0) + t v(1))]`` over the points with ``0 <= t <= 1``.

    ``ts`` must contain 0 and 1 exactly (points outside [0, 1], an extrapolation, are ignored).
    """
    ts, values = np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64)
    start, end = np.flatnonzero(ts == 0.0), np.flatnonzero(ts == 1.0)
    if not len(start) or not len(end):
        raise ValueError("a barrier needs the endpoints t = 0 and t = 1 among the points")
    inside = (ts >= 0) & (ts <= 1)
    baseline = (1 - ts) * values[start[0]] + ts * values[end[0]]
    return float(np.max(values[inside] - baseline[inside]))


def path_points(n_points: int, extrapolate: float) -> np.ndarray:
    """The ``t`` of a straight path: ``n_points`` from ``-extrapolate`` to ``1 + extrapolate``.

    The endpoints 0 and 1 are added when the grid misses them, since :func:`barrier` needs
    them exactly (Frankle et al. 2020 measure the barrier between the two solutions).

    Args:
        n_points: points of the evenly spaced grid.
        extrapolate: how far past each endpoint the grid reaches, in units of the path.

    Returns:
        The sorted, distinct values of ``t``.
    """
    ts = np.linspace(-extrapolate, 1 + extrapolate, n_points)
    return np.unique(np.r_[ts, 0.0, 1.0])


def path_records(
    model: nn.Module,
    a: Tensor,
    lines: dict[str, Tensor],
    curves: dict[str, tuple[Tensor, Tensor]],
    splits: dict[str, tuple[Tensor, Tensor]],
    ts: Sequence[float],
    curve_ts: Sequence[float],
    statistics_data: Tensor | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Loss and error along straight paths and Bezier curves from ``a``, and their barriers.

    Straight paths are the linear interpolation of Frankle et al. (2020), towards ``b`` or
    towards ``b`` aligned by weight matching (Ainsworth et al. 2022); curves are quadratic
    Bezier curves with a trained bend (Garipov et al. 2018).

    Args:
        model: the architecture (its weights are not used).
        a: the common start of every path, a flat vector.
        lines: path name -> end of a straight path, evaluated at ``ts``.
        curves: path name -> ``(bend, end)`` of a Bezier curve, evaluated at ``curve_ts``.
        splits: split name -> ``(x, y)`` to evaluate on.
        ts: the points of the straight paths (containing 0 and 1).
        curve_ts: the points of the curves (containing 0 and 1).
        statistics_data: inputs for the BatchNorm statistics recomputed at every point
            (required only for models with BatchNorm).

    Returns:
        ``(paths, barriers)``: per split, path (lines first) and metric (``loss``, then
        ``error`` = 1 - accuracy), a record ``{"path", "t", "split", "metric", "value"}`` with
        arrays ``t`` and ``value``, and a record ``{"path", "split", "metric", "barrier"}``.
    """
    paths: list[dict[str, Any]] = []
    barriers: list[dict[str, Any]] = []
    for split, (x, y) in splits.items():
        evaluated = {
            name: (ts, linear_path(model, a, end, ts, x, y, statistics_data))
            for name, end in lines.items()
        }
        for name, (bend, end) in curves.items():
            values = bezier_path(model, a, bend, end, curve_ts, x, y, statistics_data)
            evaluated[name] = (curve_ts, values)
        for name, (points, (loss, accuracy)) in evaluated.items():
            for metric, values in (("loss", loss), ("error", 1 - accuracy)):
                paths.append(
                    {"path": name, "t": points, "split": split, "metric": metric, "value": values}
                )
                barriers.append(
                    {
                        "path": name,
                        "split": split,
                        "metric": metric,
                        "barrier": barrier(points, values),
                    }
                )
        logger.info(
            "%s barriers: %s",
            split,
            {
                r["path"]: round(r["barrier"], 4)
                for r in barriers
                if r["split"] == split and r["metric"] == "loss"
            },
        )
    return paths, barriers


@dataclass
class CurveResult:
    """A trained Bezier bend (Garipov et al. 2018) and how it was trained.

    Attributes:
        bend: the trained bend ``c``, a flat vector like the endpoints.
        losses: the mean minibatch loss of every epoch, resumed epochs included.
        resumed_from: the epoch of the checkpoint training resumed from, or ``None``.
        seconds: wall-clock seconds of this call.
        checkpoints: the folder of this curve's checkpoints (the store's ``directory``), or
            ``None`` when training kept none.
    """

    bend: Tensor
    losses: list[float]
    resumed_from: int | None
    seconds: float
    checkpoints: Path | None = None


def curve_settings(
    model: nn.Module,
    a: Tensor,
    b: Tensor,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    momentum: float,
    batch_size: int,
    seed: int,
    optimizer: str,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every setting that shapes a bend trained by :func:`train_bezier` (Garipov et al. 2018).

    Its hash keys the bend's :class:`~lossgeom.checkpoints.CheckpointStore`, so a bend is only
    resumed under the same settings, endpoints, data and architecture.

    Args:
        model: the architecture (``repr`` and trainable parameter names and shapes).
        a: the start (a digest of its values, with ``b``'s).
        b: the end.
        x: the training inputs (a digest of their values, with ``y``'s).
        y: the training labels.
        epochs: as for :func:`train_bezier`.
        lr: as for :func:`train_bezier`.
        momentum: as for :func:`train_bezier`.
        batch_size: as for :func:`train_bezier`.
        seed: as for :func:`train_bezier`.
        optimizer: as for :func:`train_bezier`.
        identity: anything else that makes the bend (JSON-serialisable).

    Returns:
        A JSON-serialisable dict.
    """
    return {
        "epochs": int(epochs),
        "lr": float(lr),
        "momentum": float(momentum),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "optimizer": str(optimizer),
        "endpoints": tensor_digest(a, b),
        "data": tensor_digest(x, y),
        "architecture": repr(model),
        "parameters": [[n, list(p.shape)] for n, p in model.named_parameters() if p.requires_grad],
        "device": a.device.type,
        "identity": identity or {},
    }


@dataclass
class _Curve:
    """The mutable state of a bend's training: what a checkpoint saves and a resume restores."""

    bend: Tensor
    optimizer: torch.optim.Optimizer
    order: torch.Generator  # minibatch order and the t of each minibatch
    losses: list[float]

    def checkpoint(self) -> dict[str, Any]:
        return {
            "bend": self.bend.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng(self.bend.device, order=self.order),
            "losses": list(self.losses),
        }

    def restore(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.bend.copy_(state["bend"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], self.bend.device, order=self.order)
        self.losses = list(state["losses"])


def _parameter_views(model: nn.Module) -> Callable[[Tensor], dict[str, Tensor]]:
    """A function splitting a flat vector into views shaped as the trainable parameters."""
    named = [(n, p.shape) for n, p in model.named_parameters() if p.requires_grad]

    def unflatten(vector: Tensor) -> dict[str, Tensor]:
        out, offset = {}, 0
        for name, shape in named:
            size = int(np.prod(shape))
            out[name] = vector[offset : offset + size].view(shape)
            offset += size
        return out

    return unflatten


def _curve_epoch(
    model: nn.Module,
    curve: _Curve,
    a: Tensor,
    b: Tensor,
    x: Tensor,
    y: Tensor,
    batch_size: int,
    buffers: dict[str, Tensor],
) -> float:
    """One pass over shuffled ``(x, y)``, a fresh ``t ~ U(0, 1)`` per minibatch; the mean loss."""
    views = _parameter_views(model)
    order = torch.randperm(x.shape[0], generator=curve.order).to(x.device)
    total, seen = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        index = order[i : i + batch_size]
        t = float(torch.rand((), generator=curve.order))
        params = views(bezier_point(a, curve.bend, b, t))
        output = functional_call(model, {**params, **buffers}, (x[index],))
        loss = F.cross_entropy(output, y[index])
        curve.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        curve.optimizer.step()
        total += loss.item() * index.numel()
        seen += index.numel()
    return total / seen


def _resume(curve: _Curve, store: CheckpointStore | None) -> int | None:
    """Restore the newest checkpoint of ``store`` into ``curve``; its epoch, or None if none."""
    saved = store.latest() if store is not None else None
    if saved is None:
        return None
    curve.restore(saved)
    return saved["epoch"]


def _train_curve(
    model: nn.Module,
    curve: _Curve,
    a: Tensor,
    b: Tensor,
    x: Tensor,
    y: Tensor,
    epochs: range,
    batch_size: int,
    store: CheckpointStore | None,
) -> None:
    """Train ``curve`` for ``epochs``, checkpointing after each; ``model``'s modes restored.

    BatchNorm layers train on batch statistics; their running buffers are updated on copies,
    so ``model`` is left as it was.
    """
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    modes = [(module, module.training) for module in model.modules()]
    model.train()
    try:
        for epoch in epochs:
            curve.losses.append(_curve_epoch(model, curve, a, b, x, y, batch_size, buffers))
            if store is not None:
                store.save(epoch, curve.checkpoint())
    finally:
        for module, mode in modes:
            module.training = mode


def train_bezier(
    model: nn.Module,
    a: Tensor,
    b: Tensor,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    batch_size: int = 128,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    optimizer: str = "sgd",
    identity: dict[str, Any] | None = None,
) -> CurveResult:
    """Train the bend of a quadratic Bezier curve between fixed endpoints (Garipov et al. 2018).

    The bend starts at the midpoint. Each minibatch draws ``t ~ U(0, 1)`` and takes an
    optimiser step on ``L(curve(t))``. BatchNorm layers train on batch statistics; their
    running buffers are updated on copies, so ``model`` is left as it was.

    Args:
        model: the architecture (its weights are not used; its modes are restored).
        a: the start, a flat vector.
        b: the end.
        x: the training inputs.
        y: the training labels.
        epochs: epochs in all, resumed ones included.
        lr: the learning rate.
        momentum: SGD's momentum (unused by Adam).
        batch_size: minibatch size.
        seed: seeds the minibatch order and the ``t`` of each minibatch.
        checkpoint_dir: the root of a :class:`~lossgeom.checkpoints.CheckpointStore` keyed by
            :func:`curve_settings`; the bend, optimiser and RNG states are saved after every
            epoch, and a rerun with the same settings resumes from the last one. Checkpoints
            of other settings (or other endpoints or data) are never resumed.
        optimizer: ``"sgd"`` or ``"adam"``.
        identity: anything else that makes the bend; it enters the checkpoint key.

    Returns:
        A :class:`CurveResult`.

    Raises:
        ValueError: for endpoints of different sizes, ``epochs < 0``, ``batch_size < 1``,
            ``lr <= 0`` or an unknown optimiser.
    """
    from lossgeom.training import build_optimizer  # imported here: see the note at the top

    _check_same_size(a, b, "train_bezier")
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"epochs >= 0, batch_size >= 1 and lr > 0 are required, got {epochs}, {batch_size}, {lr}"
        )
    start_time = time.perf_counter()
    a, b = a.detach(), b.detach()
    bend = ((a + b) / 2).clone().requires_grad_(True)
    spec = {"name": optimizer, "lr": lr, "momentum": momentum}
    curve = _Curve(
        bend, build_optimizer(spec, [bend]), torch.Generator().manual_seed(int(seed)), []
    )
    store = None
    if checkpoint_dir is not None:
        settings = curve_settings(
            model, a, b, x, y, epochs, lr, momentum, batch_size, seed, optimizer, identity
        )
        store = CheckpointStore(checkpoint_dir, settings)
    resumed_from = _resume(curve, store)
    epochs_left = range((resumed_from or 0) + 1, epochs + 1)
    _train_curve(model, curve, a, b, x, y, epochs_left, batch_size, store)
    seconds = time.perf_counter() - start_time
    directory = store.directory if store is not None else None
    return CurveResult(bend.detach(), curve.losses, resumed_from, seconds, directory)


# ----------------------------------------------------------------------------- the plane


class PlaneBasis(NamedTuple):
    """An orthonormal basis of the plane through ``a``, ``b`` and a bend (Garipov et al. 2018).

    Attributes:
        u_dir: unit vector along ``b - a``.
        v_dir: unit vector along the bend's offset from the line through ``a`` and ``b``.
        scale: ``|b - a|``, the unit of the plane's coordinates.
        bend_uv: the bend's coordinates ``(u, v)``; ``a`` is at (0, 0) and ``b`` at (1, 0).
    """

    u_dir: Tensor
    v_dir: Tensor
    scale: float
    bend_uv: tuple[float, float]


def plane_basis(a: Tensor, b: Tensor, bend: Tensor) -> PlaneBasis:
    """The plane through two solutions and a curve's bend, as Garipov et al. (2018) draw it.

    Args:
        a: the start, a flat vector (at (0, 0)).
        b: the end (at (1, 0)).
        bend: the bend of the Bezier curve between them.

    Returns:
        A :class:`PlaneBasis` (a named tuple ``(u_dir, v_dir, scale, bend_uv)``), with
        coordinates in units of ``|b - a|``.

    Raises:
        ValueError: when ``a`` and ``b`` coincide.
    """
    _check_same_size(a, b, "plane_basis")
    _check_same_size(a, bend, "plane_basis")
    e1 = b - a
    scale = float(e1.norm())
    if scale == 0:
        raise ValueError("plane_basis: a and b coincide, so they span no direction")
    u_dir = e1 / scale
    offset = bend - a
    v_dir = offset - torch.dot(offset, u_dir) * u_dir
    v_dir = v_dir / v_dir.norm()
    bend_uv = (float(torch.dot(offset, u_dir)) / scale, float(torch.dot(offset, v_dir)) / scale)
    return PlaneBasis(u_dir, v_dir, scale, bend_uv)


def plane_grid(bend_uv: tuple[float, float], resolution: int, margin: float) -> np.ndarray:
    """A square grid on the plane of :func:`plane_basis` covering ``a``, ``b`` and the bend.

    Args:
        bend_uv: the bend's coordinates.
        resolution: points along each axis.
        margin: how far the grid reaches past ``u`` in [0, 1] and ``v`` between 0 and the bend.

    Returns:
        A ``(resolution**2, 2)`` array of ``(u, v)``, ``u`` varying slowest.
    """
    us = np.linspace(-margin, 1 + margin, resolution)
    vs = np.linspace(min(0.0, bend_uv[1]) - margin, max(0.0, bend_uv[1]) + margin, resolution)
    return np.stack(np.meshgrid(us, vs, indexing="ij"), -1).reshape(-1, 2)


def evaluate_plane(
    model: nn.Module,
    a: Tensor,
    basis: PlaneBasis,
    grid: np.ndarray,
    x: Tensor,
    y: Tensor,
    statistics_data: Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at ``a + scale (u u_dir + v v_dir)`` for each ``(u, v)`` of ``grid``.

    Models with BatchNorm are evaluated point by point with statistics recomputed on
    ``statistics_data`` (Garipov et al. 2018); others as one batched slice.

    Args:
        model: the architecture (its weights are not used).
        a: the plane's origin, a flat vector.
        basis: from :func:`plane_basis`.
        grid: ``(G, 2)`` coordinates, as from :func:`plane_grid`.
        x: evaluation inputs.
        y: evaluation labels.
        statistics_data: inputs for the BatchNorm statistics (models with BatchNorm only).

    Returns:
        ``(loss, accuracy)``, each of shape ``(G,)``.
    """
    u_dir, v_dir, scale, _ = basis
    if has_batchnorm(model):
        vectors = [a + scale * (float(p) * u_dir + float(q) * v_dir) for p, q in grid]
        return evaluate_points(model, vectors, x, y, statistics_data)
    return evaluate_slice(_model_at(model, a), [u_dir * scale, v_dir * scale], grid, x, y)


def plane_records(
    model: nn.Module,
    a: Tensor,
    basis: PlaneBasis,
    grid: np.ndarray,
    splits: dict[str, tuple[Tensor, Tensor]],
    statistics_data: Tensor | None = None,
) -> list[dict[str, Any]]:
    """:func:`evaluate_plane` on every split, as tidy records (Garipov et al. 2018).

    Args:
        model: as for :func:`evaluate_plane`.
        a: as for :func:`evaluate_plane`.
        basis: as for :func:`evaluate_plane`.
        grid: as for :func:`evaluate_plane`.
        splits: split name -> ``(x, y)``.
        statistics_data: as for :func:`evaluate_plane`.

    Returns:
        Per split and metric (``loss``, then ``error`` = 1 - accuracy), a record
        ``{"u", "v", "split", "metric", "value", "bend_u", "bend_v"}`` (arrays ``u``, ``v``
        and ``value``).
    """
    records = []
    for split, (x, y) in splits.items():
        loss, accuracy = evaluate_plane(model, a, basis, grid, x, y, statistics_data)
        for metric, values in (("loss", loss), ("error", 1 - accuracy)):
            records.append(
                {
                    "u": grid[:, 0],
                    "v": grid[:, 1],
                    "split": split,
                    "metric": metric,
                    "value": values,
                    "bend_u": basis.bend_uv[0],
                    "bend_v": basis.bend_uv[1],
                }
            )
    return records


@dataclass
class Connectivity:
    """Everything :func:`measure_connectivity` measures between two solutions.

    Attributes:
        paths: records of :func:`path_records`.
        barriers: records of :func:`path_records`.
        plane: records of :func:`plane_records`.
        bends: path name (``bezier``, and ``aligned_bezier`` with an aligned curve) -> its
            trained bend.
        basis: the plane through ``a``, ``b`` and the ``bezier`` bend.
    """

    paths: list[dict[str, Any]]
    barriers: list[dict[str, Any]]
    plane: list[dict[str, Any]]
    bends: dict[str, CurveResult]
    basis: PlaneBasis


def measure_connectivity(
    model_a: nn.Module,
    model_b: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    splits: dict[str, tuple[Tensor, Tensor]],
    statistics_data: Tensor | None,
    *,
    n_points: int,
    extrapolate: float,
    curve_points: int,
    curve_epochs: int,
    curve_optimizer: str,
    curve_lr: float,
    curve_momentum: float,
    curve_batch_size: int,
    curve_seed: int,
    aligned_curve: bool,
    plane_resolution: int,
    plane_margin: float,
    checkpoint_dir: str | os.PathLike | None = None,
) -> Connectivity:
    """Paths, barriers, bends and the plane between two solutions ``a`` and ``b``.

    Straight paths to ``b`` and to ``b`` aligned by weight matching (Ainsworth et al. 2022)
    with their barriers (Frankle et al. 2020); a Bezier curve to ``b`` (and, with
    ``aligned_curve``, one to aligned ``b``) with a trained bend, and the loss on the plane
    through ``a``, ``b`` and the first bend (Garipov et al. 2018).

    Args:
        model_a: the solution ``a``, where every path starts.
        model_b: the solution ``b``, of the same architecture.
        x_train: the inputs the bends are trained on.
        y_train: their labels.
        splits: split name -> ``(x, y)`` the paths and the plane are evaluated on.
        statistics_data: inputs for BatchNorm statistics (models with BatchNorm only).
        n_points: points of the straight paths (:func:`path_points`).
        extrapolate: how far they reach past the solutions (:func:`path_points`).
        curve_points: evenly spaced points of each curve, from 0 to 1.
        curve_epochs: the bends' ``epochs`` (:func:`train_bezier`).
        curve_optimizer: their ``optimizer``.
        curve_lr: their ``lr``.
        curve_momentum: their ``momentum``.
        curve_batch_size: their ``batch_size``.
        curve_seed: their ``seed``.
        aligned_curve: also a curve between ``a`` and aligned ``b``.
        plane_resolution: the ``resolution`` of the plane's grid (:func:`plane_grid`).
        plane_margin: its ``margin``.
        checkpoint_dir: each bend's checkpoints go to ``checkpoint_dir/<path name>``.

    Returns:
        A :class:`Connectivity`.
    """
    a, b = flat_parameters(model_a), flat_parameters(model_b)
    aligned = flat_parameters(aligned_model(model_a, model_b))
    ends = {"bezier": b, **({"aligned_bezier": aligned} if aligned_curve else {})}
    curve = {
        "epochs": curve_epochs,
        "lr": curve_lr,
        "momentum": curve_momentum,
        "batch_size": curve_batch_size,
        "seed": curve_seed,
        "optimizer": curve_optimizer,
    }
    root = None if checkpoint_dir is None else Path(checkpoint_dir)
    folders = {name: None if root is None else root / name for name in ends}
    bends = {
        name: train_bezier(model_a, a, end, x_train, y_train, checkpoint_dir=folders[name], **curve)
        for name, end in ends.items()
    }
    lines = {"linear": b, "aligned": aligned}
    curves = {name: (result.bend, ends[name]) for name, result in bends.items()}
    ts, curve_ts = path_points(n_points, extrapolate), np.linspace(0, 1, curve_points)
    paths, barriers = path_records(model_a, a, lines, curves, splits, ts, curve_ts, statistics_data)
    basis = plane_basis(a, b, bends["bezier"].bend)
    grid = plane_grid(basis.bend_uv, plane_resolution, plane_margin)
    plane = plane_records(model_a, a, basis, grid, splits, statistics_data)
    return Connectivity(paths, barriers, plane, bends, basis)


# ----------------------------------------------------------------------------- weight matching


@dataclass
class PermutationSpec:
    """Which permutation group acts on each axis of each state-dict entry.

    ``axes[name][k]`` is the group permuting axis ``k`` of entry ``name`` (None: not permuted),
    counted on the entry's shape or, for names in ``views``, on that shape (the first fully
    connected layer after a convolution sees ``channels x positions`` inputs as one flat axis:
    its weight is permuted as ``(out, channels, positions)``).
    """

    groups: list[str]
    axes: dict[str, tuple[str | None, ...]]
    views: dict[str, tuple[int, ...]]

    def view(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """The entries in the shapes the axes refer to."""
        return {n: v.reshape(self.views[n]) if n in self.views else v for n, v in state.items()}

    def sizes(self, state: dict[str, Tensor]) -> dict[str, int]:
        """Each group's size, read off the (viewed) state."""
        viewed = self.view(state)
        return {
            g: next(viewed[n].shape[k] for n, spec in self.axes.items()
                    for k, h in enumerate(spec) if h == g)
            for g in self.groups
        }  # fmt: skip


class _SpecBuilder:
    """Collects axes entry by entry from a state dict (weights, biases, norm statistics)."""

    def __init__(self, model: nn.Module) -> None:
        self.state = model.state_dict()
        self.axes: dict[str, tuple[str | None, ...]] = {}
        self.views: dict[str, tuple[int, ...]] = {}

    def layer(self, prefix: str, out: str | None, into: str | None, view: tuple | None = None):
        """A linear or convolutional layer: weight ``(out, in, ...)`` and its bias if any."""
        weight = self.state[f"{prefix}.weight"]
        shape = view or tuple(weight.shape)
        self.axes[f"{prefix}.weight"] = (out, into) + (None,) * (len(shape) - 2)
        if view is not None:
            self.views[f"{prefix}.weight"] = view
        if f"{prefix}.bias" in self.state:
            self.axes[f"{prefix}.bias"] = (out,)

    def norm(self, prefix: str, group: str) -> None:
        """A norm layer's per-unit entries (scale, shift, running statistics) follow ``group``."""
        for name, value in self.state.items():
            if name.startswith(prefix + "."):
                self.axes[name] = (group,) if value.ndim == 1 else ()

    def spec(self) -> PermutationSpec:
        missing = set(self.state) - set(self.axes)
        if missing:
            raise AlignmentError(f"no permutation rule for {sorted(missing)}")
        groups = sorted({g for spec in self.axes.values() for g in spec if g is not None})
        return PermutationSpec(groups, self.axes, self.views)


def _mlp_spec(model: MLP) -> PermutationSpec:
    """Residual MLPs tie all hidden layers to one group (``h + f(h)`` adds unit by unit)."""
    n_hidden = len(model.norms)
    if n_hidden == 0:
        raise AlignmentError("the model has no hidden units to permute (hidden=[])")
    group = (lambda i: "hidden") if model.residual else (lambda i: f"hidden{i}")
    build = _SpecBuilder(model)
    build.layer("input_layer", group(0), None)
    for i in range(n_hidden - 1):
        build.layer(f"hidden_layers.{i}", group(i + 1), group(i))
    build.layer("output_layer", None, group(n_hidden - 1))
    for i in range(n_hidden):
        build.norm(f"norms.{i}", group(i))
    return build.spec()


def _cnn_spec(model: CNN) -> PermutationSpec:
    """Channels of each convolution and units of each hidden fully connected layer."""
    build = _SpecBuilder(model)
    previous = None
    for i in range(len(model.convs)):
        build.layer(f"convs.{i}", f"conv{i}", previous)
        build.norm(f"conv_norms.{i}", f"conv{i}")
        previous = f"conv{i}"
    last = len(model.fcs) - 1
    for j in range(len(model.fcs)):
        out = None if j == last else f"fc{j}"
        if j == 0:
            weight = model.fcs[0].weight
            view = (weight.shape[0], model.convs[-1].out_channels, -1)
            build.layer("fcs.0", out, previous, view=view)
        else:
            build.layer(f"fcs.{j}", out, previous)
        previous = out
    return build.spec()


def _resnet_spec(model: ResNet) -> PermutationSpec:
    """A ResNet's channel groups.

    With skips, each stage's residual stream is one group (the skip adds channel by channel,
    Ainsworth et al. 2022); inside a block the first convolution's channels are free. Without
    skips every convolution's channels are their own group.
    """
    build = _SpecBuilder(model)
    stream = "stage0" if model.stages[0][0].skip else "stem"
    build.layer("stem", stream, None)
    build.norm("stem_norm", stream)
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            prefix, inner = f"stages.{s}.{b}", f"stage{s}.block{b}"
            out = f"stage{s}" if block.skip else f"{inner}.out"
            build.layer(f"{prefix}.conv1", f"{inner}.mid", stream)
            build.norm(f"{prefix}.norm1", f"{inner}.mid")
            build.layer(f"{prefix}.conv2", out, f"{inner}.mid")
            build.norm(f"{prefix}.norm2", out)
            if block.projection is not None:
                build.layer(f"{prefix}.projection.0", out, stream)
                build.norm(f"{prefix}.projection.1", out)
            stream = out
    build.layer("head", None, stream)
    return build.spec()


_SPECS: dict[type, Callable[[Any], PermutationSpec]] = {
    MLP: _mlp_spec,
    CNN: _cnn_spec,
    ResNet: _resnet_spec,
}


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The permutation symmetries of a registry model (MLP, CNN, ResNet).

    Raises:
        AlignmentError: for a model without one (a vision transformer: attention heads and the
            residual stream would need a joint head-and-feature matching this library does not
            implement), or an MLP without hidden units.
    """
    builder = _SPECS.get(type(model))
    if builder is None:
        raise AlignmentError(
            f"weight matching is not applicable to {type(model).__name__}: it has no "
            f"permutation specification (implemented for {', '.join(t.__name__ for t in _SPECS)})"
        )
    return builder(model)


def permute_state(
    state: dict[str, Tensor], spec: PermutationSpec, perms: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Apply index permutations (``new[i] = old[perm[i]]`` along each permuted axis)."""
    out = {}
    for name, value in state.items():
        shape = value.shape
        value = value.reshape(spec.views[name]) if name in spec.views else value
        for axis, group in enumerate(spec.axes[name]):
            if group is not None:
                value = value.index_select(axis, perms[group].to(value.device))
        out[name] = value.reshape(shape)
    return out


@dataclass
class AlignmentResult:
    """The permutations found and the permuted state of ``b``."""

    perms: dict[str, Tensor]
    state: dict[str, Tensor]
    iterations: int


def weight_matching(
    model_a: nn.Module, model_b: nn.Module, max_iter: int = 100, seed: int = 0
) -> AlignmentResult:
    """Permute the hidden units (channels) of ``model_b`` to match ``model_a``.

    Ainsworth et al. 2022: for a group ``g`` with the other groups fixed, ``sum_w <w_a, P_g
    w_b>`` over every entry with an axis in ``g`` is linear in ``P_g``; it is maximised by a
    linear assignment on ``S = sum_w w_a(g axis first) @ w_b(others permuted, g axis
    first)^T``. Groups are visited in a seeded random order until a full sweep improves none.
    """
    spec, spec_b = permutation_spec(model_a), permutation_spec(model_b)
    raw_a, raw_b = model_a.state_dict(), model_b.state_dict()
    if (spec.axes != spec_b.axes or raw_a.keys() != raw_b.keys()
            or any(raw_a[k].shape != raw_b[k].shape for k in raw_a)):  # fmt: skip
        raise AlignmentError("the two models have different architectures")
    # The matching runs on CPU in float64 whatever the models' device (the assignment is
    # scipy's); the permutations are applied to ``model_b``'s own tensors at the end.
    state_a = spec.view({k: v.detach().cpu() for k, v in raw_a.items()})
    state_b = spec.view({k: v.detach().cpu() for k, v in raw_b.items()})
    params = {n for n, _ in model_a.named_parameters()}
    sizes = spec.sizes(raw_a)
    perms = {g: torch.arange(sizes[g]) for g in spec.groups}
    rng = np.random.default_rng(seed)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        improved = False
        for g in rng.permutation(spec.groups):
            similarity = torch.zeros(sizes[g], sizes[g], dtype=torch.float64)
            for name, axes in spec.axes.items():
                if name not in params:
                    continue  # buffers (running statistics) follow the units but do not vote
                for axis, h in enumerate(axes):
                    if h != g:
                        continue
                    wa = state_a[name].double().movedim(axis, 0).reshape(sizes[g], -1)
                    wb = state_b[name].double()
                    for other_axis, other in enumerate(axes):
                        if other is not None and other_axis != axis:
                            wb = wb.index_select(other_axis, perms[other])
                    wb = wb.movedim(axis, 0).reshape(sizes[g], -1)
                    similarity += wa @ wb.T
            rows, cols = linear_sum_assignment(similarity.numpy(), maximize=True)
            new = torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)
            old_score = float(similarity[torch.arange(sizes[g]), perms[g]].sum())
            new_score = float(similarity[torch.arange(sizes[g]), new].sum())
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[g], improved = new, True
        if not improved:
            break
    return AlignmentResult(perms, permute_state(raw_b, spec, perms), iterations)


def aligned_model(model_a: nn.Module, model_b: nn.Module, **kwargs) -> nn.Module:
    """A copy of ``model_b`` with its hidden units permuted to match ``model_a``."""
    result = weight_matching(model_a, model_b, **kwargs)
    out = copy.deepcopy(model_b)
    out.load_state_dict(result.state)
    return out


__all__ = [
    "AlignmentError",
    "AlignmentResult",
    "Connectivity",
    "CurveResult",
    "aligned_model",
    "barrier",
    "bezier_path",
    "bezier_point",
    "curve_settings",
    "evaluate_plane",
    "evaluate_points",
    "has_batchnorm",
    "recompute_batchnorm",
    "linear_path",
    "measure_connectivity",
    "path_points",
    "path_records",
    "permutation_spec",
    "permute_state",
    "PermutationSpec",
    "PlaneBasis",
    "plane_basis",
    "plane_grid",
    "plane_records",
    "train_bezier",
    "weight_matching",
]
