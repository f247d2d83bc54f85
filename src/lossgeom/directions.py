"""Directions in parameter space for loss-landscape slices.

All directions are flat vectors in the layout of ``parameters_to_vector`` and are drawn from
a seeded generator, so a slice can be reproduced from its seed alone.

* ``random_direction``: Gaussian, each parameter tensor rescaled to unit norm (the report's
  appendix normalisation).
* ``filter_normalized_direction``: Gaussian, each filter (row of a weight matrix, output
  channel of a convolution) rescaled to the norm of the same filter of the weights; biases
  and normalisation parameters set to zero unless ``include_bias`` (Li et al. 2018, "ignore
  biasbn").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _trainable(model: nn.Module) -> list[Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def _gaussian_like(params: list[Tensor], seed: int) -> list[Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) for p in params]


def random_direction(model: nn.Module, seed: int) -> Tensor:
    """A Gaussian direction with every parameter tensor scaled to unit norm (the report's)."""
    pieces = _gaussian_like(_trainable(model), seed)
    return torch.cat([(d / torch.linalg.vector_norm(d)).reshape(-1) for d in pieces])


def filter_normalized_direction(model: nn.Module, seed: int, include_bias: bool = False) -> Tensor:
    """A filter-normalised Gaussian direction (Li et al. 2018).

    Each filter ``d_i`` (a slice along the first axis of a weight with two or more axes) is
    rescaled to ``||theta_i||``; one-axis parameters (biases, norm scales and shifts) are set
    to zero, or, with ``include_bias``, rescaled as one filter to the parameter's norm.
    """
    params = _trainable(model)
    out = []
    for p, d in zip(params, _gaussian_like(params, seed), strict=True):
        w = p.detach()
        if w.ndim <= 1:
            if include_bias:
                d = d * (torch.linalg.vector_norm(w) / torch.linalg.vector_norm(d).clamp_min(1e-30))
            else:
                d = torch.zeros_like(d)
        else:
            d_norm = torch.linalg.vector_norm(d.reshape(d.shape[0], -1), dim=1)
            w_norm = torch.linalg.vector_norm(w.reshape(w.shape[0], -1), dim=1)
            scale = (w_norm / d_norm.clamp_min(1e-30)).reshape(-1, *([1] * (d.ndim - 1)))
            d = d * scale
        out.append(d.reshape(-1))
    return torch.cat(out)


def filter_norms(model: nn.Module, vector: Tensor) -> list[Tensor]:
    """Per-filter norms of a flat vector laid out like the model's weights (for checks)."""
    norms, offset = [], 0
    for p in _trainable(model):
        piece = vector[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
        if p.ndim > 1:
            norms.append(torch.linalg.vector_norm(piece.reshape(p.shape[0], -1), dim=1))
    return norms


def slice_directions(
    kind: str,
    model: nn.Module,
    seed: int,
    include_bias: bool = False,
    eigenvectors: Tensor | None = None,
) -> tuple[list[Tensor], list[int] | None]:
    """The two directions of a slice and the seeds that drew them.

    Args:
        kind: ``random`` (Gaussian, unit norm per tensor, as the report draws them),
            ``filter`` (filter-normalised, Li et al. 2018) or ``hessian`` (the top two
            Hessian eigenvectors, given in ``eigenvectors``).
        model: the network at the slice's centre.
        seed: the first direction's seed; the second uses ``seed + 1``.
        include_bias: ``filter`` only: keep the biases instead of zeroing them.
        eigenvectors: ``(k, P)`` top eigenvectors, descending (``hessian`` only).

    Returns:
        ``([d1, d2], [seed, seed + 1])``, or ``([v1, v2], None)`` for ``hessian``.

    Raises:
        ValueError: an unknown kind, or fewer than two eigenvectors for ``hessian``.
    """
    if kind == "random":
        return [random_direction(model, seed), random_direction(model, seed + 1)], [seed, seed + 1]
    if kind == "filter":
        pair = [filter_normalized_direction(model, s, include_bias) for s in (seed, seed + 1)]
        return pair, [seed, seed + 1]
    if kind != "hessian":
        raise ValueError(f"direction kind {kind!r} is unknown; known: random, filter, hessian")
    if eigenvectors is None or eigenvectors.shape[0] < 2:
        raise ValueError("fewer than two Hessian eigenvectors (curvature.top_k >= 2 needed)")
    return [eigenvectors[0], eigenvectors[1]], None
