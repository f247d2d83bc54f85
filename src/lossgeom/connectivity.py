"""Mode connectivity: paths between two solutions, their barriers, curves and alignment.

* Linear path ``theta(t) = (1 - t) a + t b`` and its barrier
  ``max_t [L(theta(t)) - ((1 - t) L(a) + t L(b))]`` (Frankle et al. 2020).
* Quadratic Bezier curve ``theta(t) = (1 - t)^2 a + 2 t (1 - t) c + t^2 b`` with one trained
  bend ``c`` (Garipov et al. 2018): each minibatch samples ``t ~ U(0, 1)`` and steps on
  ``L(theta(t))``; the endpoints stay fixed.
* Weight matching (Ainsworth et al. 2022, "Git Re-Basin"): permute the hidden units of ``b``
  to match ``a`` by a linear assignment per permutation group, iterated over the groups in
  random order until no group improves. The permuted network computes the same function.

Both paths are affine in at most two directions (the curve in ``t`` and ``t^2``), so they are
evaluated as slices with :func:`lossgeom.landscape.evaluate_slice`: batched, no-grad passes.
All vectors are flat, in the layout of ``parameters_to_vector``.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.func import functional_call

from lossgeom.landscape import evaluate_slice
from lossgeom.models import MLP, set_flat_parameters
from lossgeom.provenance import save_torch
from lossgeom.training import build_optimizer, evaluate


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
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: Tensor, batch_size: int = 1000) -> None:
    """Replace every BatchNorm's running statistics by the exact mean and variance of its
    inputs over ``x`` (Garipov et al. recompute them at each point of a path: statistics of
    the endpoints do not carry over to the weights in between)."""
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
    model: nn.Module, a: Tensor, b: Tensor, ts: Sequence[float], x: Tensor, y: Tensor,
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
    """``(1 - t)^2 a + 2 t (1 - t) c + t^2 b``."""
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * bend + t**2 * b


def bezier_path(
    model: nn.Module, a: Tensor, bend: Tensor, b: Tensor, ts: Sequence[float], x: Tensor, y: Tensor,
    statistics_data: Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy along the quadratic Bezier curve, written as the affine slice
    ``a + t * 2 (c - a) + t^2 (a - 2 c + b)`` (per point, with recomputed statistics, for
    models with BatchNorm)."""
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


@dataclass
class CurveResult:
    """A trained Bezier bend and how it was trained."""

    bend: Tensor
    losses: list[float]  # mean minibatch loss per epoch
    resumed_from: int | None
    seconds: float


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
) -> CurveResult:
    """Train the bend of a quadratic Bezier curve between fixed endpoints (Garipov et al. 2018).

    The bend starts at the midpoint. Each minibatch draws ``t ~ U(0, 1)`` and takes an SGD
    step on ``L(curve(t))``. With ``checkpoint_dir`` the bend, optimiser and RNG states are
    saved atomically after every epoch, and a rerun resumes from the last one. ``optimizer``
    is ``"sgd"`` (with ``momentum``) or ``"adam"``.
    """
    _check_same_size(a, b, "train_bezier")
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs >= 0, batch_size >= 1 and lr > 0 are required, got {epochs}, {batch_size}, {lr}")
    start_time = time.perf_counter()
    # BatchNorm layers train on batch statistics; their running buffers are updated on copies
    # so the endpoint model is left as it was.
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for n, p in model.named_parameters() if p.requires_grad]
    a, b = a.detach(), b.detach()
    bend = ((a + b) / 2).clone().requires_grad_(True)
    optimizer = build_optimizer({"name": optimizer, "lr": lr, "momentum": momentum}, [bend])
    generator = torch.Generator().manual_seed(int(seed))
    losses: list[float] = []
    first, resumed_from = 1, None
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(directory.glob("epoch*.pt"))
        if existing:
            state = torch.load(existing[-1], weights_only=False, map_location=a.device)
            if not (torch.equal(state["a"], a.cpu()) and torch.equal(state["b"], b.cpu())):
                raise RuntimeError(f"{existing[-1]} was trained between other endpoints; move it away")
            with torch.no_grad():
                bend.copy_(state["bend"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            losses, resumed_from = state["losses"], state["epoch"]
            first = state["epoch"] + 1

    def unflatten(vector: Tensor) -> dict[str, Tensor]:
        out, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            out[name] = vector[offset : offset + size].view(shape)
            offset += size
        return out

    modes = [(module, module.training) for module in model.modules()]
    model.train()
    try:
        for epoch in range(first, epochs + 1):
            order = torch.randperm(x.shape[0], generator=generator).to(x.device)
            total, seen = 0.0, 0
            for i in range(0, x.shape[0], batch_size):
                index = order[i : i + batch_size]
                t = float(torch.rand((), generator=generator))
                params = unflatten(bezier_point(a, bend, b, t))
                loss = F.cross_entropy(functional_call(model, {**params, **buffers}, (x[index],)), y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * index.numel()
                seen += index.numel()
            losses.append(total / seen)
            if directory is not None:
                save_torch(
                    {"bend": bend.detach().cpu(), "optimizer": optimizer.state_dict(),
                     "generator": generator.get_state(), "epoch": epoch, "losses": losses,
                     "a": a.cpu(), "b": b.cpu()},
                    directory / f"epoch{epoch:03d}.pt",
                )
    finally:
        for module, mode in modes:
            module.training = mode
    return CurveResult(bend.detach(), losses, resumed_from, time.perf_counter() - start_time)


# ----------------------------------------------------------------------------- weight matching


def permutation_spec(model: nn.Module) -> tuple[list[str], dict[str, tuple[str | None, ...]]]:
    """Which permutation group acts on each axis of each parameter and buffer.

    Returns ``(groups, axes)``: ``axes[name][k]`` is the group permuting axis ``k`` of the
    state-dict entry ``name`` (None: not permuted). Residual MLPs tie all hidden layers to one
    group, since ``h + f(h)`` adds units position by position.

    Raises:
        AlignmentError: for a model that is not a registry MLP with hidden layers.
    """
    if not isinstance(model, MLP):
        raise AlignmentError(
            f"weight matching is implemented for the registry's MLPs; {type(model).__name__} "
            "has no permutation specification"
        )
    n_hidden = len(model.norms)
    if n_hidden == 0:
        raise AlignmentError("the model has no hidden units to permute (hidden=[])")
    group = (lambda i: "hidden") if model.residual else (lambda i: f"hidden{i}")
    axes: dict[str, tuple[str | None, ...]] = {
        "input_layer.weight": (group(0), None),
        "input_layer.bias": (group(0),),
        "output_layer.weight": (None, group(n_hidden - 1)),
        "output_layer.bias": (None,),
    }
    for i in range(n_hidden - 1):
        axes[f"hidden_layers.{i}.weight"] = (group(i + 1), group(i))
        axes[f"hidden_layers.{i}.bias"] = (group(i + 1),)
    for name, value in model.state_dict().items():
        if name.startswith("norms."):
            index = int(name.split(".")[1])
            axes[name] = (group(index),) if value.ndim == 1 else ()
    missing = set(model.state_dict()) - set(axes)
    if missing:
        raise AlignmentError(f"no permutation rule for {sorted(missing)}")
    groups = sorted({g for spec in axes.values() for g in spec if g is not None})
    return groups, axes


def permute_state(
    state: dict[str, Tensor], axes: dict[str, tuple[str | None, ...]], perms: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Apply index permutations (``new[i] = old[perm[i]]`` along each permuted axis)."""
    out = {}
    for name, value in state.items():
        for axis, group in enumerate(axes[name]):
            if group is not None:
                value = value.index_select(axis, perms[group].to(value.device))
        out[name] = value
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
    """Permute the hidden units of ``model_b`` to match ``model_a`` (Ainsworth et al. 2022).

    For a group ``g`` with the other groups fixed, ``sum_w <w_a, P_g w_b>`` over every entry
    with an axis in ``g`` is linear in ``P_g``; it is maximised by a linear assignment on
    ``S = sum_w w_a(g axis first) @ w_b(others permuted, g axis first)^T``. Groups are visited in
    a seeded random order until a full sweep improves none.
    """
    groups, axes = permutation_spec(model_a)
    groups_b, axes_b = permutation_spec(model_b)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    if axes != axes_b or any(state_a[k].shape != state_b[k].shape for k in state_a):
        raise AlignmentError("the two models have different architectures")
    params = {n for n, _ in model_a.named_parameters()}
    sizes = {g: next(state_a[n].shape[k] for n, spec in axes.items() for k, h in enumerate(spec) if h == g)
             for g in groups}
    perms = {g: torch.arange(sizes[g]) for g in groups}
    rng = np.random.default_rng(seed)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        improved = False
        for g in rng.permutation(groups):
            similarity = torch.zeros(sizes[g], sizes[g], dtype=torch.float64)
            for name, spec in axes.items():
                if name not in params:
                    continue  # buffers (running statistics) follow the units but do not vote
                for axis, h in enumerate(spec):
                    if h != g:
                        continue
                    wa = state_a[name].double().movedim(axis, 0).reshape(sizes[g], -1)
                    wb = state_b[name].double()
                    for other_axis, other in enumerate(spec):
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
    return AlignmentResult(perms, permute_state(state_b, axes, perms), iterations)


def aligned_model(model_a: nn.Module, model_b: nn.Module, **kwargs) -> nn.Module:
    """A copy of ``model_b`` with its hidden units permuted to match ``model_a``."""
    result = weight_matching(model_a, model_b, **kwargs)
    out = copy.deepcopy(model_b)
    out.load_state_dict(result.state)
    return out


__all__ = [
    "AlignmentError",
    "AlignmentResult",
    "CurveResult",
    "aligned_model",
    "barrier",
    "bezier_path",
    "bezier_point",
    "evaluate_points",
    "has_batchnorm",
    "recompute_batchnorm",
    "linear_path",
    "permutation_spec",
    "permute_state",
    "train_bezier",
    "weight_matching",
]
