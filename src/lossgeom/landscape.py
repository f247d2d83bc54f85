"""Loss and accuracy on 1D and 2D slices ``theta + sum_r c_r d_r`` of parameter space.

:func:`evaluate_slice` evaluates all points of a slice with no-grad passes. For models whose
first layer is an affine map of the (fixed) input, such as the registry's MLPs, it uses that
the first layer's output is affine in its own parameters:

    X (W + sum_r c_r D_r)^T + (b + sum_r c_r e_r) = Z_0 + sum_r c_r Z_r,

so ``Z_0, Z_1, ...`` are computed once per data chunk and each point costs only a linear
combination plus the layers after the first. For the report's MLP the first layer holds 99%
of the FLOPs, so this removes nearly all of the work. For plain MLPs (no norm layers) the
points then go through the remaining layers a block at a time: along a grid row only the last
coefficient varies, so ``u = Z_0 + alpha Z_1`` is summed once per row and a block of points is
one ``(k, N, width)`` tensor ``u + beta_j Z_2`` with batched products (1.7 to 1.9x the earlier
evaluation of one point after the other on the report's MLP, with losses equal to it to 4e-6
relative and accuracies exactly). Other models fall back to one forward pass per point.
:func:`evaluate_slice_reference` is the per-point loop of the report's appendix, kept as the
reference the fast path is tested and benchmarked against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from lossgeom.models import MLP, evaluation_mode


def grid_1d(resolution: int, span: float) -> np.ndarray:
    """``resolution`` evenly spaced coefficients on ``[-span, span]``."""
    if resolution < 2:
        raise ValueError(f"a slice needs at least 2 points per axis, got {resolution}")
    if span <= 0:
        raise ValueError(f"the slice span must be positive, got {span}")
    return np.linspace(-span, span, resolution)


def grid_2d(resolution: int, span: float) -> np.ndarray:
    """``(resolution**2, 2)`` coefficients, alpha varying slowest."""
    axis = grid_1d(resolution, span)
    alpha, beta = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([alpha.ravel(), beta.ravel()], axis=1)


def _named_trainable(model: nn.Module) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _split(vector: Tensor, named: list[tuple[str, Tensor]]) -> dict[str, Tensor]:
    out, offset = {}, 0
    for name, p in named:
        out[name] = vector[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    if offset != vector.numel():
        raise ValueError(f"a direction has {vector.numel()} entries, the model {offset} parameters")
    return out


def _point_parameters(
    base: dict[str, Tensor], directions: list[dict[str, Tensor]], c: Sequence[float], skip: set[str]
) -> dict[str, Tensor]:
    out = {}
    for name, value in base.items():
        if name in skip:
            continue
        for coefficient, direction in zip(c, directions, strict=True):
            value = value + float(coefficient) * direction[name]
        out[name] = value
    return out


def _plain_tail(model: nn.Module) -> bool:
    """Whether an MLP's layers after the first are plain affine maps and activations."""
    if not isinstance(model, MLP) or not all(p.requires_grad for p in model.parameters()):
        return False
    return all(isinstance(norm, nn.Identity) for norm in model.norms)


def _batched_linear(h: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear`` per point: ``h`` is ``(k, N, in)``, ``weight`` ``(k, out, in)``."""
    if bias is None:
        return torch.bmm(h, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def _mlp_tail_batched(model: MLP, params: dict[str, Tensor], z: Tensor) -> Tensor:
    """``MLP.forward`` after the first preactivation, for ``k`` points at once.

    ``z`` is ``(k, N, width)`` (overwritten); each of ``params`` has a leading axis of ``k``
    (point ``i``'s parameters at index ``i``). Returns the ``(k, N, classes)`` logits: the
    operations of ``functional_call`` of the model (plain MLPs only, see
    :func:`_plain_tail`), with batched matrix products, so equal to them to round-off.
    """
    if model.output_layer is None:
        return z
    relu = type(model.activation) is nn.ReLU and not model.activation.inplace
    h = F.relu_(z) if relu else model.activation(z)
    for i in range(len(model.hidden_layers)):
        name = f"hidden_layers.{i}"
        out = model.activation(
            _batched_linear(h, params[f"{name}.weight"], params.get(f"{name}.bias"))
        )
        h = h + out if model.residual else out
    return _batched_linear(h, params["output_layer.weight"], params.get("output_layer.bias"))


# Points of a plain MLP evaluated together (one (k, N, width) tensor per step): 8 measured
# fastest on one CPU core for the report's MLP (against 4 and 41); a slice job took 0.53 of
# the time of the previous point-by-point evaluation (README, "Results on this machine").
BLOCK_POINTS = 8


def _slice_plan(coefficients: np.ndarray) -> tuple[int | None, list[list[tuple[int, int]]]]:
    """How to walk a slice's points: the coordinate that varies, and runs of points.

    Returns ``(varying, runs)``: ``varying`` is the column whose removal leaves the fewest
    consecutive runs of equal remaining coefficients (a 2D grid's last axis, a 1D profile's
    nonzero column; ``None`` without columns); ``runs`` lists each run as its blocks, the
    ``(start, stop)`` of at most :data:`BLOCK_POINTS` consecutive points. Within a run every
    point is ``u + c_varying d_varying`` with the run's ``u`` computed once.
    """
    count, width = coefficients.shape
    if width == 0:
        varying, breaks = None, np.zeros(max(count - 1, 0), dtype=bool)
    else:
        best = None
        for column in range(width):
            rest = np.delete(coefficients, column, axis=1)
            changes = np.any(rest[1:] != rest[:-1], axis=1)
            if best is None or changes.sum() <= best[1].sum():
                best = (column, changes)
        varying, breaks = best
    starts = [0, *(np.flatnonzero(breaks) + 1).tolist()]
    stops = [*starts[1:], count]
    runs = [[(lo, min(lo + BLOCK_POINTS, stop)) for lo in range(start, stop, BLOCK_POINTS)]
            for start, stop in zip(starts, stops, strict=True) if stop > start]  # fmt: skip
    return varying, runs


def _cross_entropy_sums(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per point, the summed cross-entropy and the correct predictions of ``(k, N, C)`` logits.

    The log-sum-exp is taken directly: on a CPU ``F.cross_entropy`` over ten classes spent
    more time than the layers did.
    """
    top = logits.amax(2, keepdim=True)
    log_norm = (logits - top).exp_().sum(2).log_().add_(top.squeeze(2))
    picked = logits.gather(2, y.expand(logits.shape[0], -1).unsqueeze(2)).squeeze(2)
    return (log_norm - picked).sum(1), (logits.argmax(2) == y).sum(1)


@torch.no_grad()
def evaluate_slices(
    model: nn.Module,
    directions: Sequence[Tensor],
    slices: Sequence[tuple[Sequence[int], np.ndarray]],
    x: Tensor,
    y: Tensor,
    chunk_size: int = 1000,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Several slices in one pass over the data: :func:`evaluate_slice` for each.

    Each data chunk's first-layer products (MLPs) are computed once for all slices, and each
    point's first-layer output is summed into one reused buffer; the arithmetic per point is
    that of :func:`evaluate_slice`, so the values are bitwise the same.

    Args:
        model: the network at the slices' centre ``theta`` (left unchanged, mode restored).
        directions: flat direction vectors, shared by the slices.
        slices: per slice, the indices of its directions and its ``(G, r)`` coefficients.
        x: inputs of the samples the loss averages over.
        y: their integer class labels.
        chunk_size: samples per chunk (about 1,000 keep a chunk's products in cache; a
            plain MLP's block holds ``BLOCK_POINTS * chunk_size * width`` values on top).

    Returns:
        ``(loss, accuracy)`` per slice, each of shape ``(G,)``.
    """
    named = _named_trainable(model)
    base = {name: p.detach() for name, p in named}
    split = [_split(d.to(named[0][1]), named) for d in directions]
    fast, direct = isinstance(model, MLP), _plain_tail(model)
    first = {"input_layer.weight", "input_layer.bias"} if fast else set()
    jobs = []  # (direction indices, coefficients, per-point or per-block work, loss, correct)
    for indices, coefficients in slices:
        coefficients = np.asarray(coefficients, dtype=np.float64)
        if coefficients.ndim != 2 or coefficients.shape[1] != len(indices):
            raise ValueError(
                f"coefficients must have shape (G, {len(indices)}), got {coefficients.shape}"
            )
        chosen = [split[i] for i in indices]
        if direct:  # per run and block: the varying coefficients and stacked tail parameters
            varying, runs = _slice_plan(coefficients)
            work = (varying, [[(lo, hi, _block_scales(coefficients, varying, lo, hi, named[0][1]),
                                _block_parameters(base, chosen, coefficients[lo:hi], first))
                               for lo, hi in run] for run in runs])  # fmt: skip
        else:
            work = [_point_parameters(base, chosen, c, first) for c in coefficients]
        # sums in float64 on the data's device: no host synchronisation per point (on a GPU
        # that, not the arithmetic, bounds the throughput); each chunk's float32 sum is added
        # in float64 as a Python float would be, so the values are those of a host sum
        totals = [torch.zeros(len(coefficients), dtype=torch.float64, device=x.device)
                  for _ in range(2)]  # fmt: skip
        jobs.append((list(indices), coefficients, work, *totals))
    with evaluation_mode(model), torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            xb, yb = x[start : start + chunk_size], y[start : start + chunk_size]
            if fast:
                flat = xb.flatten(1)
                z0 = F.linear(flat, base["input_layer.weight"], base["input_layer.bias"])
                zr = [F.linear(flat, d["input_layer.weight"], d["input_layer.bias"]) for d in split]
                buffer = torch.empty_like(z0)
            if direct:
                blocks = torch.empty((BLOCK_POINTS, *z0.shape), dtype=z0.dtype, device=z0.device)
            for indices, coefficients, work, total_loss, correct in jobs:
                if direct:
                    _direct_chunk(model, z0, zr, indices, coefficients, work, yb, buffer,
                                  blocks, total_loss, correct)  # fmt: skip
                else:
                    first_layer = (z0, zr, buffer) if fast else None
                    _per_point_chunk(model, first_layer, indices, coefficients, work, xb, yb,
                                     total_loss, correct)  # fmt: skip
    return [(job[3].cpu().numpy() / x.shape[0], job[4].cpu().numpy() / x.shape[0]) for job in jobs]


def _block_parameters(
    base: dict[str, Tensor],
    directions: list[dict[str, Tensor]],
    coefficients: np.ndarray,
    skip: set[str],
) -> dict[str, Tensor]:
    """The block's points' parameters (those not in ``skip``), stacked along a first axis."""
    points = [_point_parameters(base, directions, c, skip) for c in coefficients]
    return {name: torch.stack([point[name] for point in points]) for name in points[0]}


def _block_scales(
    coefficients: np.ndarray, varying: int | None, lo: int, hi: int, like: Tensor
) -> Tensor:
    """The varying coefficient of points ``lo:hi`` as a ``(k, 1, 1)`` tensor like ``like``."""
    values = coefficients[lo:hi, varying] if varying is not None else np.zeros(hi - lo)
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1)


def _per_point_chunk(
    model: nn.Module,
    first_layer: tuple[Tensor, list[Tensor], Tensor] | None,
    indices: list[int],
    coefficients: np.ndarray,
    points: list[dict[str, Tensor]],
    x: Tensor,
    y: Tensor,
    total_loss: Tensor,
    correct: Tensor,
) -> None:
    """One chunk of a slice, point by point through ``functional_call``.

    For MLPs with norm layers or frozen parameters (from the first-layer products
    ``first_layer``: ``z0``, the directions' ``z_r`` and a buffer) and for other models (full
    passes, ``first_layer=None``).
    """
    losses, hits = [], []
    for c, params in zip(coefficients, points, strict=True):
        if first_layer is not None:
            z0, zr, buffer = first_layer
            z = torch.add(z0, zr[indices[0]], alpha=float(c[0]), out=buffer)
            for coefficient, i in zip(c[1:], indices[1:], strict=True):
                z.add_(zr[i], alpha=float(coefficient))
            out = functional_call(model, params, (x,), {"first_preactivation": z})
        else:
            out = functional_call(model, params, (x,))
        losses.append(F.cross_entropy(out, y, reduction="sum"))
        hits.append((out.argmax(1) == y).sum())
    if losses:
        total_loss += torch.stack(losses).double()
        correct += torch.stack(hits).double()


def _direct_chunk(
    model: MLP,
    z0: Tensor,
    zr: list[Tensor],
    indices: list[int],
    coefficients: np.ndarray,
    work: tuple,
    y: Tensor,
    buffer: Tensor,
    blocks: Tensor,
    total_loss: Tensor,
    correct: Tensor,
) -> None:
    """One chunk of a plain MLP's slice, a block of points at a time (see :func:`_slice_plan`).

    Per run the fixed coefficients' first-layer terms are summed once into ``buffer``; each
    block is then ``u + c d_varying`` for its points, one ``(k, N, width)`` tensor, through
    the layers after the first with batched products.
    """
    varying, runs = work
    for run in runs:
        c = coefficients[run[0][0]]
        u = z0
        for column, i in enumerate(indices):
            if column != varying and c[column] != 0:
                u = torch.add(u, zr[i], alpha=float(c[column]), out=buffer)
        d = zr[indices[varying]] if varying is not None else torch.zeros_like(z0)
        for lo, hi, scales, params in run:
            z = torch.addcmul(u, scales, d, out=blocks[: hi - lo])
            loss, hits = _cross_entropy_sums(_mlp_tail_batched(model, params, z), y)
            total_loss[lo:hi] += loss.double()
            correct[lo:hi] += hits.double()


def evaluate_slice(
    model: nn.Module,
    directions: Sequence[Tensor],
    coefficients: np.ndarray,
    x: Tensor,
    y: Tensor,
    chunk_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy and accuracy at ``theta + sum_r c_r d_r`` for each row ``c``.

    Data are processed in chunks; about 1,000 samples keep a chunk's first-layer outputs in
    cache on a CPU, which measured 1.6x faster than 10,000 (the chunk loop is outside the
    point loop, so each chunk's products are computed once).

    Args:
        model: the network at the slice's centre ``theta`` (left unchanged, mode restored).
        directions: flat direction vectors ``d_r``.
        coefficients: ``(G, r)`` array of points.
        x: inputs of the samples the loss averages over.
        y: their integer class labels.
        chunk_size: samples per chunk.

    Returns:
        ``(loss, accuracy)``, each of shape ``(G,)``.
    """
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if coefficients.ndim != 2 or coefficients.shape[1] != len(directions):
        raise ValueError(
            f"coefficients must have shape (G, {len(directions)}), got {coefficients.shape}"
        )
    slices = [(range(len(directions)), coefficients)]
    return evaluate_slices(model, directions, slices, x, y, chunk_size)[0]


@torch.no_grad()
def evaluate_slice_reference(
    model: nn.Module,
    directions: Sequence[Tensor],
    coefficients: np.ndarray,
    x: Tensor,
    y: Tensor,
) -> tuple[np.ndarray, np.ndarray]:
    """The report's per-point loop: write each point's weights, run the full forward pass."""
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    split = [
        [piece for piece in _split(d.to(params[0]), _named_trainable(model)).values()]
        for d in directions
    ]
    loss = np.zeros(len(coefficients))
    accuracy = np.zeros(len(coefficients))
    with evaluation_mode(model):
        try:
            for g, c in enumerate(np.asarray(coefficients, dtype=np.float64)):
                for i, (p, p0) in enumerate(zip(params, saved, strict=True)):
                    value = p0.clone()
                    for coefficient, direction in zip(c, split, strict=True):
                        value += float(coefficient) * direction[i]
                    p.copy_(value)
                out = model(x)
                loss[g] = float(F.cross_entropy(out, y))
                accuracy[g] = float((out.argmax(1) == y).float().mean())
        finally:
            for p, p0 in zip(params, saved, strict=True):
                p.copy_(p0)
    return loss, accuracy


def slice_records(
    model: nn.Module,
    directions: Sequence[Tensor],
    resolution: int,
    resolution_1d: int,
    span: float,
    splits: dict[str, tuple[Tensor, Tensor]],
    chunk_size: int = 1000,
) -> list[dict]:
    """The 2D slice and both 1D profiles through the centre, on every split.

    Args:
        model: the network at the slice's centre.
        directions: the two flat directions.
        resolution: 2D points per axis on ``[-span, span]``.
        resolution_1d: points of each 1D profile (along ``d1`` with ``beta = 0``, then ``d2``).
        span: half-width of the slices, in units of the directions.
        splits: ``{name: (x, y)}`` sets each slice is evaluated on.
        chunk_size: samples per chunk (see :func:`evaluate_slice`).

    Returns:
        Records ``{slice, alpha, beta, split, metric, value}`` (``slice`` in ``2d``,
        ``1d_alpha``, ``1d_beta``; ``metric`` in ``loss``, ``accuracy``; arrays per point).
    """
    by_kind = slice_records_by_kind(
        model, {"": directions}, resolution, resolution_1d, span, splits, chunk_size
    )
    return by_kind[""]


def slice_records_by_kind(
    model: nn.Module,
    pairs: dict[str, Sequence[Tensor]],
    resolution: int,
    resolution_1d: int,
    span: float,
    splits: dict[str, tuple[Tensor, Tensor]],
    chunk_size: int = 1000,
) -> dict[str, list[dict]]:
    """:func:`slice_records` for several pairs of directions, in one pass per split.

    Every slice of every pair is evaluated by one :func:`evaluate_slices` call per split, so
    the data are chunked and the first layer's products computed once for all of them; the
    values are bitwise those of separate :func:`slice_records` calls.

    Args:
        model: the network at the slices' centre.
        pairs: name (e.g. the kind of directions) -> its two flat directions.
        resolution: 2D points per axis on ``[-span, span]``.
        resolution_1d: points of each 1D profile.
        span: half-width of the slices, in units of the directions.
        splits: ``{name: (x, y)}`` sets each slice is evaluated on.
        chunk_size: samples per chunk (see :func:`evaluate_slice`).

    Returns:
        Per name, the records of :func:`slice_records`, in its order.
    """
    axis_1d, zeros = grid_1d(resolution_1d, span), np.zeros(resolution_1d)
    slices = {
        "2d": grid_2d(resolution, span),
        "1d_alpha": np.stack([axis_1d, zeros], 1),
        "1d_beta": np.stack([zeros, axis_1d], 1),
    }
    directions = [d for pair in pairs.values() for d in pair]
    offsets = np.cumsum([0] + [len(pair) for pair in pairs.values()])
    jobs = [(offset, points) for offset in offsets[:-1] for points in slices.values()]
    results = {
        split: evaluate_slices(
            model, directions, [(range(o, o + 2), p) for o, p in jobs], x, y, chunk_size
        )
        for split, (x, y) in splits.items()
    }
    out = {}
    for k, name in enumerate(pairs):
        records = []
        for j, (slice_name, points) in enumerate(slices.items()):
            for split in splits:
                loss, accuracy = results[split][k * len(slices) + j]
                for metric, values in (("loss", loss), ("accuracy", accuracy)):
                    records.append({"slice": slice_name, "alpha": points[:, 0],
                                    "beta": points[:, 1], "split": split, "metric": metric,
                                    "value": values})  # fmt: skip
        out[name] = records
    return out
