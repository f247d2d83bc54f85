"""The stable tables' declared columns, and reading them with every value checked.

Each stable table (``results/tables/<name>.csv``, described in the README) has a fixed list of
columns, each of one kind:

* ``str``: text, never missing;
* ``str?``: text, possibly empty (read as ``""``);
* ``int``: an integer, never missing (``2`` and ``2.0`` are both the integer 2);
* ``int?``: an integer or missing (pandas' nullable ``Int64``);
* ``float``: any number, NaN and infinities included (a diverged run writes NaN), or missing.

Categorical columns whose values the writing code fixes also name their allowed values (or a
pattern, for ``eig1``, ``eig2``, ... whose count is a setting). :func:`read_table` and
:func:`validate_table` refuse anything else with a :class:`TableError` that names the file,
the column and the first bad row, so garbage in a per-run table stops the workflow where it
enters instead of flowing into a stable table, and a notebook reading a damaged table fails
with the file named instead of with a dtype error deep in pandas.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"experiment": ["a"], "seed": ["0"], "epoch": ["1"],
    ...                       "split": ["train"], "metric": ["loss"], "value": ["0.5"]})
    >>> validate_table(frame, "training", "metrics.csv").dtypes["seed"]
    dtype('int64')
    >>> validate_table(frame.assign(split="valid"), "training", "metrics.csv")
    Traceback (most recent call last):
    ...
    lossgeom.tables.TableError: metrics.csv: line 2, column 'split': 'valid' is not one of test, train
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("str", "str?", "int", "int?", "float")


@dataclass(frozen=True)
class Column:
    """One declared column of a stable table.

    Attributes:
        kind: one of :data:`KINDS`.
        allowed: the only values a ``str`` column may hold, where the writing code fixes them.
        pattern: a regular expression every value of a ``str`` column must match in full.
    """

    kind: str
    allowed: frozenset[str] | None = None
    pattern: str | None = None


def _one_of(*values: str) -> Column:
    return Column("str", allowed=frozenset(values))


STR, INT, FLOAT = Column("str"), Column("int"), Column("float")
SPLIT = _one_of("train", "test")  # every stage evaluates on these two splits
PAIR = {"experiment": STR, "seed_a": INT, "seed_b": INT}
CONNECTIVITY_METRIC = _one_of("loss", "error")  # lossgeom.connectivity: error = 1 - accuracy
# The bounds stage's quantities, in its order (lossgeom.certificates writes them; defined
# here, where no torch is needed, so that notebooks validate tables without importing it).
BOUND_QUANTITIES = [
    "test_error",
    "train_error",
    "proxy",
    "jiang_sharpness",
    "jiang_magnitude_aware",
    "certificate_centered",
    "stochastic_test_error_centered",
]
OPTIMIZED_QUANTITIES = ["certificate_optimized", "stochastic_test_error_optimized"]
BOUND_QUANTITY = _one_of(*BOUND_QUANTITIES, *OPTIMIZED_QUANTITIES)
RUN = {"experiment": STR, "seed": INT}
# The dynamics study's quantities (lossgeom.noise, lossgeom.escape, lossgeom.temperature
# write them; defined here for the same reason).
NOISE_QUANTITIES = [
    "trace_sigma",
    "trace_h_sigma",
    "isotropic_trace_h_sigma",
    "anisotropy_ratio",
    "topk_noise_fraction",
    "isotropic_topk_fraction",
    "topk_alignment",
    "trace_hessian",
    "sharpness",
]
DYNAMICS = ["gd", "sgd", "gld_isotropic", "gld_diagonal", "gld_leading"]
ESCAPE_QUANTITIES = ["train_loss", "test_accuracy", "sharpness", "distance"]
ESCAPE_SUMMARY_QUANTITIES = [
    "final_test_accuracy",
    "final_sharpness",
    "final_distance",
    "escaped_fraction",
]
TEMPERATURE_QUANTITIES = ["final_sharpness", "final_trace", "test_accuracy", "train_loss"]
CHECKPOINT = {**RUN, "epoch": INT}
# The architecture study's quantities (lossgeom.architectures writes them).
SPECTRUM_QUANTITIES = [
    "eig_max",
    "eig_min",
    "trace",
    "trace_stderr",
    "mean_abs",
    "conditioning",
    "bulk_edge",
    "outliers",
]
ARCHITECTURE_QUANTITIES = [
    "final_train_loss",
    "final_test_accuracy",
    "steps_to_95",
    "steps_to_target",
    "diverged",
    "eig1_init",
    "outliers_init",
    "conditioning_init",
    "eig1",
    "eig_min",
    "trace",
    "outliers",
    "conditioning",
    "bulk_edge",
    "barrier_linear",
    "barrier_aligned",
    "nonconvexity_median",
    "nonconvexity_centre",
]
# The generalisation sweep's grid axes, measures and early look (lossgeom.sweep writes them).
SWEEP_AXES = ["dataset", "lr", "batch_size", "width", "depth", "weight_decay", "train_size",
              "init_scale"]  # fmt: skip
SWEEP_MEASURES = [
    "eig1", "trace", "proxy", "jiang_sharpness", "jiang_magnitude_aware",
    "certificate_centered", "frobenius_sq", "distance_sq", "spectral_product", "path_norm",
    "margin", "gradient_noise", "params", "final_train_loss",
]  # fmt: skip
SWEEP_EARLY_POINTS = ["tenth", "epoch1"]  # after a tenth of an epoch, after the first epoch
SWEEP_EARLY_QUANTITIES = ["loss", "loss_slope", "grad_norm", "eig1", "trace", "stability_ratio"]
SWEEP_STATUSES = ["reached", "not_reached", "diverged"]

# Each stable table's columns, in order, as the scripts write them (see the README).
TABLES: dict[str, dict[str, Column]] = {
    "training": {  # scripts/train.py, rows of lossgeom.training
        **CHECKPOINT,
        "split": SPLIT,
        "metric": _one_of("loss", "accuracy", "running_loss", "running_accuracy", "diverged"),
        "value": FLOAT,
    },
    "runs": {  # scripts/collect_tables.py, from each run's run.json
        **RUN,
        "status": _one_of("completed", "diverged", "failed_to_train"),  # training.STATUSES
        "diverged_epoch": Column("int?"),
        "reason": Column("str?"),  # why a run is not completed
        "seconds": FLOAT,
        "device": Column("str?"),
        "config_hash": STR,
        "git_commit": STR,
    },
    "curvature": {  # scripts/curvature.py: NaN values and n_hvp 0 for a diverged run
        **CHECKPOINT,
        "quantity": Column("str", pattern=r"eig[1-9][0-9]*|trace"),
        "value": FLOAT,
        "stderr": FLOAT,  # empty for eigenvalues
        "n_hvp": INT,
        "seconds": FLOAT,
    },
    "density": {  # scripts/spectral_density.py (header only for a diverged run)
        **CHECKPOINT,
        "eigenvalue": FLOAT,
        "density": FLOAT,
        "sigma": FLOAT,
        "n_hvp": INT,
        "seconds": FLOAT,
    },
    "landscape": {  # scripts/landscape.py (header only for a diverged run)
        **RUN,
        "directions": _one_of("random", "filter", "hessian"),
        "slice": _one_of("2d", "1d_alpha", "1d_beta"),
        "alpha": FLOAT,
        "beta": FLOAT,
        "split": SPLIT,
        "metric": _one_of("loss", "accuracy"),
        "value": FLOAT,
    },
    "paths": {  # scripts/connectivity.py
        **PAIR,
        "path": _one_of("linear", "aligned", "bezier", "aligned_bezier"),
        "t": FLOAT,
        "split": SPLIT,
        "metric": CONNECTIVITY_METRIC,
        "value": FLOAT,
    },
    "barriers": {
        **PAIR,
        "path": _one_of("linear", "aligned", "bezier", "aligned_bezier"),
        "split": SPLIT,
        "metric": CONNECTIVITY_METRIC,
        "barrier": FLOAT,
    },
    "plane": {
        **PAIR,
        "u": FLOAT,
        "v": FLOAT,
        "split": SPLIT,
        "metric": CONNECTIVITY_METRIC,
        "value": FLOAT,
        "bend_u": FLOAT,
        "bend_v": FLOAT,
    },
    "bounds": {  # lossgeom.certificates.Table: NaN values (and n) for a diverged run
        **CHECKPOINT,
        "quantity": BOUND_QUANTITY,
        "value": FLOAT,  # inf where Jiang's measures find no noise scale
        "delta": FLOAT,  # empty but for certificates
        "n": Column("int?"),
        "mc_samples": Column("int?"),
    },
    "bound_terms": {
        **CHECKPOINT,
        "quantity": BOUND_QUANTITY,
        "term": STR,
        "value": FLOAT,
    },
    "eos": {  # scripts/eos.py: one run of full-batch GD (train_loss only at a diverged step)
        "experiment": STR,
        "run": STR,
        "loss": _one_of("mse", "cross_entropy"),
        "lr": FLOAT,
        "momentum": FLOAT,
        "threshold": FLOAT,
        "step": INT,
        "quantity": _one_of("train_loss", "train_accuracy", "sharpness"),
        "value": FLOAT,
    },
    "eos_summary": {  # scripts/summarise_dynamics.py (lossgeom.eos.summary_table)
        "experiment": STR,
        "run": STR,
        "loss": _one_of("mse", "cross_entropy"),
        "lr": FLOAT,
        "momentum": FLOAT,
        "threshold": FLOAT,
        "lambda0": FLOAT,
        "first_step_at_threshold": Column("int?"),  # empty (and the ratios too) if never reached
        "median_ratio": FLOAT,
        "ratio_q10": FLOAT,
        "ratio_q90": FLOAT,
        "steps_at_edge": Column("int?"),
        "steps": INT,
        "diverged_step": Column("int?"),
    },
    "noise": {  # scripts/noise.py: NaN for a run that did not complete
        **CHECKPOINT,
        "quantity": _one_of(*NOISE_QUANTITIES),
        "value": FLOAT,
        "stderr": FLOAT,  # 0 where exact, empty where not estimated
    },
    "escape": {  # scripts/escape.py
        "experiment": STR,
        "seed": INT,
        "dynamics": _one_of(*DYNAMICS),
        "step": INT,
        "quantity": _one_of(*ESCAPE_QUANTITIES),
        "value": FLOAT,
    },
    "escape_summary": {  # scripts/summarise_dynamics.py (lossgeom.escape.summary_table)
        "dynamics": _one_of(*DYNAMICS),
        "n_seeds": INT,
        "quantity": _one_of(*ESCAPE_SUMMARY_QUANTITIES),
        "mean": FLOAT,
        "ci_low": FLOAT,
        "ci_high": FLOAT,
    },
    "architectures": {  # scripts/architecture.py (lossgeom.architectures.measure_architecture)
        "experiment": STR,
        "family": _one_of("mlp", "cnn", "resnet", "vit"),
        "depth": INT,
        "skip": INT,  # 1: the network has skip connections
        "norm": _one_of("none", "batchnorm", "layernorm"),
        "params": INT,
        "seed": INT,  # barrier rows: the pair's first seed (lossgeom.architectures.seed_pairs)
        "quantity": _one_of(*ARCHITECTURE_QUANTITIES),
        "value": FLOAT,
    },
    "architecture_curvature": {  # the spectrum at every epoch (lossgeom.architectures)
        **CHECKPOINT,
        "quantity": _one_of(*SPECTRUM_QUANTITIES),
        "value": FLOAT,
    },
    "architecture_density": {  # smoothed SLQ densities at the first and the last epoch
        **CHECKPOINT,
        "eigenvalue": FLOAT,
        "density": FLOAT,
    },
    "architecture_barriers": {  # training-subset loss barriers between seeds
        **PAIR,
        "path": _one_of("linear", "aligned"),
        "barrier": FLOAT,  # NaN where the path is not applicable
        "note": Column("str?"),  # why not applicable
    },
    "nonconvexity": {  # Li et al. 2018's map on a filter-normalised plane
        **RUN,
        "alpha": FLOAT,
        "beta": FLOAT,
        "eig_max": FLOAT,
        "eig_min": FLOAT,
        "ratio": FLOAT,
    },
    "sweep": {  # scripts/sweep.py: one row per model (lossgeom.sweep); NaN where it diverged
        "model_id": STR,
        "config_group": STR,  # the model id without the seed
        "dataset": STR,
        "lr": FLOAT,
        "batch_size": INT,
        "width": INT,
        "depth": INT,
        "weight_decay": FLOAT,
        "train_size": INT,
        "init_scale": FLOAT,
        "seed": INT,
        "status": _one_of(*SWEEP_STATUSES),
        "reached_criterion": INT,
        "steps": INT,
        "seconds": FLOAT,
        "train_error": FLOAT,
        "test_error": FLOAT,
        "gap": FLOAT,
        **{measure: FLOAT for measure in SWEEP_MEASURES},
        **{f"{q}_{p}": FLOAT for p in SWEEP_EARLY_POINTS for q in SWEEP_EARLY_QUANTITIES},
    },
    "measure_correlations": {  # scripts/sweep_analysis.py (lossgeom.correlation)
        "measure": _one_of(*SWEEP_MEASURES),
        "target": _one_of("gap", "test_error"),
        "tau": FLOAT,
        "tau_ci_low": FLOAT,
        "tau_ci_high": FLOAT,
        "psi": FLOAT,
        "n_models": INT,
    },
    "measure_correlations_by_axis": {
        "measure": _one_of(*SWEEP_MEASURES),
        "target": _one_of("gap", "test_error"),
        "axis": _one_of(*SWEEP_AXES),
        "tau": FLOAT,  # NaN where no group varies this axis alone
        "n_pairs": INT,
    },
    "prediction": {  # scripts/sweep_analysis.py (lossgeom.prediction)
        "task": _one_of("failure", "steps_to_criterion"),
        "features": _one_of("early_loss", "early_curvature", "both", "learning_rate", "none"),
        "metric": _one_of("auroc", "spearman"),
        "value": FLOAT,
        "ci_low": FLOAT,
        "ci_high": FLOAT,
        "n_models": INT,
    },
    "reparametrisation": {  # scripts/reparametrisation.py (lossgeom.sweep.reparametrisation_rows)
        "alpha": FLOAT,
        "quantity": _one_of("test_error", "train_error", "output_change", *SWEEP_MEASURES),
        "value": FLOAT,
    },
    "temperature": {  # scripts/temperature.py: NaN for a cell that did not complete
        "lr": FLOAT,
        "batch_size": INT,
        "seed": INT,
        "quantity": _one_of(*TEMPERATURE_QUANTITIES),
        "value": FLOAT,
    },
}


class TableError(ValueError):
    """A table that is not what its name declares; the message names the file."""


class _CellError(TableError):
    """A bad value; ``position`` is its row's (0-based) position, to report the first one."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def columns(name: str) -> list[str]:
    """The declared columns of the stable table ``name``, in order."""
    return list(_schema(name))


def table_name(path: str | os.PathLike) -> str:
    """The stable table a path names: ``results/tables/<name>.csv`` gives ``<name>``.

    Raises:
        TableError: the file name is not ``<name>.csv`` for a name in :data:`TABLES`.
    """
    path = Path(path)
    if path.suffix != ".csv" or path.stem not in TABLES:
        raise TableError(f"{path}: not a stable table (<name>.csv, name in {', '.join(TABLES)})")
    return path.stem


def _schema(name: str) -> dict[str, Column]:
    if name not in TABLES:
        raise TableError(f"unknown table {name!r}; the stable tables are {', '.join(TABLES)}")
    return TABLES[name]


def _check_columns(found: list[str], name: str, source: str) -> None:
    expected = columns(name)
    if found == expected:
        return
    problems = []
    if missing := [c for c in expected if c not in found]:
        problems.append("missing " + ", ".join(missing))
    if unexpected := [c for c in found if c not in expected]:
        problems.append("unexpected " + ", ".join(unexpected))
    if duplicated := sorted({c for c in found if found.count(c) > 1}):
        problems.append("repeated " + ", ".join(duplicated))
    if not problems:
        problems.append("columns out of order")
    raise TableError(
        f"{source}: not a {name} table: {'; '.join(problems)} "
        f"(expected {','.join(expected)}; found {','.join(found)})"
    )


def _missing(series: pd.Series) -> np.ndarray:
    """Missing values: NaN, None or the empty string (an empty CSV field)."""
    return (series.isna() | (series == "")).to_numpy(dtype=bool)


def _fail(source: str, column: str, lines: Sequence, bad: np.ndarray, what: str) -> None:
    """Raise for the first row flagged in ``bad``; ``what`` describes its value."""
    position = int(np.flatnonzero(bad)[0])
    where = lines[position]
    where = f"line {where}" if isinstance(where, int) else str(where)
    others = int(bad.sum()) - 1
    more = f" (and {others} more bad row{'s' * (others > 1)})" if others else ""
    raise _CellError(f"{source}: {where}, column {column!r}: {what}{more}", position)


def _shown(value: object) -> str:
    """A value as the message shows it: text quoted, numpy scalars as plain numbers."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _numbers(series: pd.Series, column: str, spec: Column, source: str, lines) -> pd.Series:
    missing = _missing(series)
    numeric = pd.to_numeric(series.where(~missing, None), errors="coerce").astype("float64")
    unparsed = numeric.isna().to_numpy() & ~missing
    for position in np.flatnonzero(unparsed):  # "nan" is a number; anything else is not
        value = series.iloc[position]
        unparsed[position] = not (isinstance(value, str) and value.strip().lower() == "nan")
    if unparsed.any():
        value = series.iloc[int(np.flatnonzero(unparsed)[0])]
        what = "a number" if spec.kind == "float" else "an integer"
        _fail(source, column, lines, unparsed, f"{_shown(value)} is not {what}")
    if spec.kind == "float":
        return numeric
    absent = numeric.isna().to_numpy()
    if spec.kind == "int" and absent.any():
        _fail(source, column, lines, absent, "a value is required (an integer)")
    values = numeric.to_numpy()
    fractional = ~absent & ~(np.isfinite(values) & (np.floor(values) == values))
    if fractional.any():
        value = series.iloc[int(np.flatnonzero(fractional)[0])]
        _fail(source, column, lines, fractional, f"{_shown(value)} is not an integer")
    return numeric.astype("int64" if spec.kind == "int" else "Int64")


def _strings(series: pd.Series, column: str, spec: Column, source: str, lines) -> pd.Series:
    missing = _missing(series)
    if spec.kind == "str" and missing.any():
        _fail(source, column, lines, missing, "a value is required")
    text = series.where(~missing, "").astype(str)
    if spec.allowed is not None:
        bad = ~text.isin(spec.allowed).to_numpy()
    elif spec.pattern is not None:
        bad = ~text.str.fullmatch(spec.pattern).astype(bool).to_numpy()
    else:
        return text
    if bad.any():
        value = text.iloc[int(np.flatnonzero(bad)[0])]
        rule = ", ".join(sorted(spec.allowed)) if spec.allowed is not None else spec.pattern
        _fail(source, column, lines, bad, f"{value!r} is not one of {rule}")
    return text


def validate_table(
    frame: pd.DataFrame,
    name: str,
    source: str | os.PathLike,
    *,
    lines: Sequence[int | str] | None = None,
) -> pd.DataFrame:
    """Check a table against the declared columns of ``name`` and give each its dtype.

    Args:
        frame: the table, as read (text, or values already typed).
        name: a key of :data:`TABLES`.
        source: the file the table came from (or goes to), named in every error.
        lines: where each row is in ``source``: its 1-based line, or a description (a row
            that came from elsewhere); default: row ``i`` (counted from 0) on line ``i + 2``,
            after the header, as :meth:`pandas.DataFrame.to_csv` writes it.

    Returns:
        A new frame with the same rows and columns: ``str`` and ``str?`` columns as text
        (``""`` for an empty ``str?``), ``int`` as ``int64``, ``int?`` as ``Int64``, ``float``
        as ``float64``.

    Raises:
        TableError: missing, unexpected, repeated or reordered columns; a value that is not of
            its column's kind; a missing value in a column that requires one; a value outside
            the allowed ones. The message names ``source``, the column and the first bad row.
    """
    schema = _schema(name)
    source = str(source)
    _check_columns([str(c) for c in frame.columns], name, source)
    lines = list(range(2, len(frame) + 2)) if lines is None else list(lines)
    if len(lines) != len(frame):
        raise ValueError(f"{len(lines)} line numbers for {len(frame)} rows")
    checked, errors = {}, []
    for column, spec in schema.items():
        series = frame[column].reset_index(drop=True)
        check = _strings if spec.kind in ("str", "str?") else _numbers
        try:
            checked[column] = check(series, column, spec, source, lines)
        except _CellError as error:
            errors.append(error)
    if errors:  # the first bad row; in it, the first bad column
        first = min(errors, key=lambda error: error.position)
        raise TableError(str(first)) from None
    return pd.DataFrame(checked, index=frame.index)


def _read_rows(path: Path, name: str) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the rows and each row's first line; checks the header, then each length."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise TableError(f"{path}: empty file (not even a header)")
            _check_columns(header, name, str(path))
            rows, lines, end = [], [], reader.line_num
            for row in reader:
                if len(row) != len(header):
                    what = "blank line" if not row else f"{len(row)} fields"
                    raise TableError(
                        f"{path}: line {end + 1}: {what}, the header has {len(header)} "
                        f"({','.join(header)})"
                    )
                rows.append(row)
                lines.append(end + 1)
                end = reader.line_num
    except (csv.Error, UnicodeDecodeError) as error:
        raise TableError(f"{path}: not a readable CSV file ({error})") from None
    return header, rows, lines


def read_table(path: str | os.PathLike, name: str | None = None) -> pd.DataFrame:
    """Read a stable (or per-job) table and validate it (:func:`validate_table`).

    A file holding only the header is a valid, empty table (a diverged run's slices).

    Args:
        path: the CSV file.
        name: a key of :data:`TABLES`; default: from the file name (:func:`table_name`).

    Returns:
        The table with its declared dtypes.

    Raises:
        TableError: an unreadable CSV (a row with more or fewer fields than the header, a blank
            line, bad quoting or encoding) or a table that fails :func:`validate_table`; the
            message names ``path``.
    """
    path = Path(path)
    name = table_name(path) if name is None else name
    _schema(name)
    header, rows, lines = _read_rows(path, name)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return validate_table(frame, name, path, lines=lines)


__all__ = [
    "KINDS",
    "TABLES",
    "Column",
    "TableError",
    "columns",
    "read_table",
    "table_name",
    "validate_table",
]


def left_out_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that did not complete (diverged or failed to train), with their reasons."""
    return runs.loc[runs["status"] != "completed", ["experiment", "seed", "status", "reason"]]


def runs_note(runs: pd.DataFrame) -> str:
    """One sentence for a notebook: every run completed, or which were left out and why.

    Example:
        >>> runs = pd.DataFrame({"experiment": ["e", "e"], "seed": [0, 1],
        ...                      "status": ["completed", "failed_to_train"],
        ...                      "reason": ["", "final test accuracy 0.1 is at chance"]})
        >>> runs_note(runs)
        'Left out (1 of 2 runs): e seed 1 failed_to_train (final test accuracy 0.1 is at chance).'
    """
    bad = left_out_runs(runs)
    if bad.empty:
        return f"Every run completed ({len(runs)} of {len(runs)})."
    items = "; ".join(
        f"{r.experiment} seed {r.seed} {r.status} ({r.reason})" for r in bad.itertuples()
    )
    return f"Left out ({len(bad)} of {len(runs)} runs): {items}."


def completed_only(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` that belong to completed runs only.

    Rows are matched on ``experiment`` and ``seed`` (per-run tables) or on both of
    ``seed_a`` and ``seed_b`` (pair tables: a pair is kept only when both runs completed).
    """
    done = runs.loc[runs["status"] == "completed", ["experiment", "seed"]]
    keys = set(zip(done["experiment"], done["seed"], strict=True))
    if "seed" in frame.columns:
        mask = [(e, s) in keys for e, s in zip(frame["experiment"], frame["seed"], strict=True)]
    else:
        mask = [
            (e, a) in keys and (e, b) in keys
            for e, a, b in zip(frame["experiment"], frame["seed_a"], frame["seed_b"], strict=True)
        ]
    return frame.loc[np.asarray(mask, dtype=bool)].reset_index(drop=True)
