"""Shared plumbing for the pipeline's entry points: weight files, data subsets, CLI bits."""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

import torch
from torch import nn

from lossgeom.data import Dataset, chunks, load_mnist, subset_indices
from lossgeom.models import build_model
from lossgeom.provenance import save_torch


def save_weights(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor] | None,
    model_spec: dict[str, Any],
    **meta: Any,
) -> None:
    """Write one epoch's weights (``state=None`` marks an epoch a diverged run never reached)."""
    save_torch({"state_dict": state, "model": model_spec, **meta}, path)


def load_weights(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module | None, dict]:
    """Load a weight file; returns ``(None, meta)`` for a diverged run's missing epoch."""
    blob = torch.load(path, map_location=device, weights_only=True)
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    if blob["state_dict"] is None:
        return None, meta
    model = build_model(blob["model"]).to(device)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, meta


def check_same_architecture(spec_a: dict, spec_b: dict, what: str) -> None:
    if spec_a != spec_b:
        raise ValueError(f"{what}: architectures differ ({spec_a} vs {spec_b})")


def training_subset(data: Dataset, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed, seeded training subset that curvature and slices are measured on."""
    index = subset_indices(data.train_x.shape[0], size, seed).to(data.train_x.device)
    return data.train_x[index], data.train_y[index]


def subset_batches(data: Dataset, size: int, seed: int, chunk_size: int):
    x, y = training_subset(data, size, seed)
    return chunks(x, y, chunk_size)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="tensor file written by prepare_data.py")
    parser.add_argument("--mean", type=float, required=True, help="normalisation mean")
    parser.add_argument("--std", type=float, required=True, help="normalisation std")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")


def setup(args: argparse.Namespace) -> tuple[torch.device, Dataset]:
    from lossgeom.training import resolve_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_mnist(args.data, args.mean, args.std, device=device)
    return device, data


def json_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from error
