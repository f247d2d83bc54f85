"""Shared plumbing for the pipeline's entry points: weight files, data subsets, CLI bits."""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

import torch
from torch import nn

from lossgeom.data import DATASETS, Dataset, chunks, load_dataset, subset_indices
from lossgeom.models import build_model
from lossgeom.provenance import load_torch, save_torch


def save_weights(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor] | None,
    model_spec: dict[str, Any],
    **meta: Any,
) -> None:
    """Write one epoch's weights (``state=None`` marks an epoch a diverged run never reached)."""
    save_torch({"state_dict": state, "model": model_spec, **meta}, path)


def load_weights(
    path: str | os.PathLike, device: torch.device | str = "cpu", usable_only: bool = True
) -> tuple[nn.Module | None, dict]:
    """Load a weight file (its content checksum verified).

    Returns ``(None, meta)`` for an epoch a diverged run never reached and, with
    ``usable_only``, for every epoch of a run that failed to train; ``meta["skipped"]`` then
    says why, for the log and the tables.
    """
    blob = load_torch(path, map_location=device)
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    if blob["state_dict"] is None:
        meta["skipped"] = f"{path}: the run diverged before this epoch ({meta.get('reason', '')})"
        return None, meta
    if usable_only and meta.get("status") == "failed_to_train":
        meta["skipped"] = f"{path}: the run failed to train ({meta.get('reason', '')})"
        return None, meta
    model = build_model(blob["model"]).to(device)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, meta


def check_same_architecture(spec_a: dict, spec_b: dict, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` when two model specifications differ."""
    if spec_a != spec_b:
        raise ValueError(f"{what}: architectures differ ({spec_a} vs {spec_b})")


def training_subset(data: Dataset, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed, seeded training subset that curvature and slices are measured on."""
    n_total = data.train_x.shape[0]
    if size > n_total:
        logging.warning("a subset of %d asked for; the training set has %d: using all of it",
                        size, n_total)  # fmt: skip
    index = subset_indices(n_total, size, seed).to(data.train_x.device)
    return data.train_x[index], data.train_y[index]


def subset_batches(data: Dataset, size: int, seed: int, chunk_size: int):
    """The training subset of :func:`training_subset` in chunks of ``chunk_size`` samples."""
    x, y = training_subset(data, size, seed)
    return chunks(x, y, chunk_size)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every measuring script takes: data file, dataset, device and threads."""
    parser.add_argument("--data", required=True, help="tensor file written by prepare_data.py")
    parser.add_argument(
        "--dataset",
        required=True,
        choices=sorted(DATASETS),
        help="the registry dataset the data file holds",
    )
    parser.add_argument("--device", required=True, help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, required=True, help="torch CPU threads (0: default)")


SIGNED = ("seed", "subset_seed", "hessian_seed", "momentum")
"""Flags that :func:`add_required` leaves unrestricted (zero is a valid seed and momentum)."""


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value}")
    return value


def add_required(
    parser: argparse.ArgumentParser, signed: tuple[str, ...] = SIGNED, **flags: Any
) -> None:
    """Required flags, one keyword each: ``name=type`` or ``name=(type, help)``.

    ``subset_seed=int`` adds ``--subset-seed``; ``json`` as the type parses the value as JSON;
    ``int`` and ``float`` mean positive values (:func:`positive_int`, :func:`positive_float`)
    unless the name is in ``signed`` (seeds, momentum: any value the library accepts).
    """
    for name, spec in flags.items():
        kind, help_text = spec if isinstance(spec, tuple) else (spec, None)
        if name not in signed:
            kind = {int: positive_int, float: positive_float}.get(kind, kind)
        kind = json_argument if kind is json else kind
        parser.add_argument("--" + name.replace("_", "-"), type=kind, required=True, help=help_text)


def setup(args: argparse.Namespace) -> tuple[torch.device, Dataset]:
    """Logging, threads, the device and the normalised data named by the common flags."""
    from lossgeom.training import resolve_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset(args.data, device=device, expect=args.dataset)
    return device, data


def json_argument(text: str) -> Any:
    """An argparse type: the flag's value parsed as JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from error
