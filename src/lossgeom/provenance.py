"""Atomic file writes, configuration hashes and provenance records.

Every table and checkpoint the pipeline writes goes through :func:`atomic_write` so that a
killed job never leaves a half-written file, and carries a provenance record (configuration
hash, package versions, git commit, device) so that a number can be traced to its origin.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: the Snakefile hashes configurations without torch
    import pandas as pd
    import torch


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path`` and move it into place only on success.

    Args:
        path: final destination.
        mode: ``"wb"`` or ``"w"``.

    Yields:
        An open file object; on an exception the temporary file is removed and ``path`` is
        left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


CHECKSUM_KEY = "content_sha256"


class IntegrityError(ValueError):
    """A file's content does not match the checksum written with it (or it has none)."""


def _feed(digest: Any, obj: Any) -> None:
    """Feed a nested structure of tensors, containers and scalars into ``digest``."""
    import torch

    if isinstance(obj, torch.Tensor):
        flat = obj.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tuple(obj.shape)}{obj.dtype};".encode())
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(digest, key)
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        digest.update(f"L{len(obj)};".encode())
        for item in obj:
            _feed(digest, item)
    else:
        digest.update(f"S{type(obj).__name__}:{obj!r};".encode())


def content_digest(obj: Any) -> str:
    """SHA-256 of a nested structure's content: tensor shapes, dtypes and bytes, keys, scalars.

    Independent of the file format, so it checks what a load returns, not how it was stored.

    Example:
        >>> import torch
        >>> a = {"w": torch.ones(3), "epoch": 2}
        >>> content_digest(a) == content_digest({"epoch": 2, "w": torch.ones(3)})
        True
        >>> content_digest(a) == content_digest({"w": torch.tensor([1.0, 1.0, 1.5]), "epoch": 2})
        False
    """
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def save_torch(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` of a dict through :func:`atomic_write`, with its content checksum.

    The SHA-256 of the content (:func:`content_digest`) is stored under ``content_sha256``;
    :func:`load_torch` recomputes and compares it, so a flipped byte is an error, not a number.
    """
    import torch

    if not isinstance(obj, dict) or CHECKSUM_KEY in obj:
        raise TypeError(f"save_torch takes a dict without a {CHECKSUM_KEY!r} key")
    blob = {**obj, CHECKSUM_KEY: content_digest(obj)}
    with atomic_write(path, "wb") as handle:
        torch.save(blob, handle)


def load_torch(path: str | os.PathLike, map_location: Any = None) -> dict:
    """Load a file written by :func:`save_torch` (``weights_only=True``) and verify its content.

    Raises:
        IntegrityError: the file is unreadable, has no checksum, or its content does not
            match it; the message names the file.
    """
    import torch

    if not os.path.exists(path):
        raise IntegrityError(f"{path}: no such file; run the job that writes it first")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
        raise IntegrityError(f"{path}: unreadable ({error}); delete it and rerun") from error
    if not isinstance(blob, dict) or CHECKSUM_KEY not in blob:
        raise IntegrityError(
            f"{path}: has no content checksum (written by an older lossgeom or another "
            "program); delete it and rerun the job that writes it"
        )
    stored = blob.pop(CHECKSUM_KEY)
    actual = content_digest(blob)
    if stored != actual:
        raise IntegrityError(
            f"{path}: content checksum mismatch (stored {stored[:16]}..., computed "
            f"{actual[:16]}...): the file is corrupted; delete it and rerun the job that "
            "writes it"
        )
    return blob


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


def config_hash(obj: Any) -> str:
    """A short, stable hash of a JSON-serialisable configuration."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit(start: str | os.PathLike | None = None) -> str:
    """The commit of the repository holding ``start`` (default: this package), or ``unknown``."""
    where = Path(start) if start is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return commit + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def device_description(device: torch.device | str) -> str:
    """A human-readable description of a torch device."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def provenance(config: Any = None, device: torch.device | str | None = None, **extra: Any) -> dict:
    """A provenance record: configuration and its hash, versions, commit, device, time."""
    import numpy
    import scipy
    import torch

    from lossgeom import __version__

    record = {
        "config": config,
        "config_hash": config_hash(config),
        "lossgeom": __version__,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "git_commit": git_commit(),
        "host": platform.node(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        record["device"] = device_description(device)
    record.update(extra)
    return record


def write_table(frame: pd.DataFrame, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Write a CSV table atomically, with its provenance in ``<path>.meta.json`` beside it."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        frame.to_csv(handle, index=False)
    if meta is not None:
        write_json(meta, path.with_name(path.name + ".meta.json"))
