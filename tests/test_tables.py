"""The stable tables' declared columns and types: reading, validation and collect_tables.py."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lossgeom import certificates, training
from lossgeom.provenance import write_table
from lossgeom.tables import TABLES, TableError, columns, read_table, table_name, validate_table
from tests.conftest import REPO

TRAINING_HEADER = "experiment,seed,epoch,split,metric,value"
GOOD_ROWS = ["report_mlp,0,0,train,loss,2.30", "report_mlp,0,0,test,accuracy,0.1"]


def write_csv(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def metrics(tmp_path: Path, *lines: str, header: str = TRAINING_HEADER) -> Path:
    """A per-run training table, results/runs/report_mlp/seed0/metrics.csv under tmp_path."""
    return write_csv(tmp_path / "runs" / "report_mlp" / "seed0" / "metrics.csv", header, *lines)


def error_of(path: Path, name: str = "training") -> str:
    with pytest.raises(TableError) as caught:
        read_table(path, name)
    message = str(caught.value)
    assert str(path) in message, message  # the file is always named
    return message


def test_a_good_table_reads_with_its_declared_dtypes(tmp_path):
    frame = read_table(metrics(tmp_path, *GOOD_ROWS), "training")
    assert list(frame.columns) == columns("training")
    assert frame.seed.dtype == "int64" and frame.epoch.dtype == "int64"
    assert frame.value.dtype == "float64" and frame.value.tolist() == [2.3, 0.1]
    assert frame.split.tolist() == ["train", "test"]


def test_an_extra_column_is_refused(tmp_path):
    path = metrics(
        tmp_path,
        *[row + ",1" for row in GOOD_ROWS],
        header=TRAINING_HEADER + ",extra",
    )
    assert pd.read_csv(path).shape == (2, 7)  # pandas alone takes it
    message = error_of(path)
    assert "unexpected extra" in message and "not a training table" in message


def test_a_junk_row_with_too_many_fields_is_refused(tmp_path):
    path = metrics(tmp_path, *GOOD_ROWS, "foo,bar,baz,qux,quux,corge,grault")
    message = error_of(path)
    assert "line 4: 7 fields, the header has 6" in message


def test_a_first_row_with_too_many_fields_is_refused(tmp_path):
    # pandas would silently take its first field as the index
    path = metrics(tmp_path, "foo,report_mlp,0,0,train,loss,2.3")
    assert list(pd.read_csv(path).columns) == TRAINING_HEADER.split(",")
    assert "line 2: 7 fields" in error_of(path)


def test_a_junk_row_of_the_right_length_is_refused(tmp_path):
    path = metrics(tmp_path, *GOOD_ROWS, "foo,bar,baz,qux,quux,corge")
    message = error_of(path)
    assert "line 4, column 'seed': 'bar' is not an integer" in message


def test_short_rows_and_blank_lines_are_refused(tmp_path):
    path = metrics(tmp_path, GOOD_ROWS[0], "report_mlp,0,1,train,loss")
    assert "line 3: 5 fields" in error_of(path)
    path = metrics(tmp_path, GOOD_ROWS[0], "", GOOD_ROWS[1])
    assert "line 3: blank line" in error_of(path)


def test_a_non_numeric_value_in_a_float_column_is_refused(tmp_path):
    path = metrics(tmp_path, *GOOD_ROWS, "report_mlp,0,1,train,loss,0.5x", "report_mlp,0,1,x,y,z")
    message = error_of(path)
    assert "line 4, column 'value': '0.5x' is not a number (and 1 more bad row)" in message


def test_nan_and_infinity_are_numbers(tmp_path):
    path = metrics(tmp_path, "m,0,1,train,loss,", "m,0,1,test,loss,nan", "m,0,1,train,diverged,inf")
    values = read_table(path, "training").value
    assert values.isna().tolist() == [True, True, False] and values.iloc[2] == math.inf


def test_a_missing_required_column_is_refused(tmp_path):
    path = metrics(
        tmp_path,
        *[row.rsplit(",", 1)[0] for row in GOOD_ROWS],
        header="experiment,seed,epoch,split,metric",
    )
    assert "missing value" in error_of(path)


def test_columns_out_of_order_are_refused(tmp_path):
    path = metrics(
        tmp_path, "0,report_mlp,0,train,loss,1", header="seed,experiment,epoch,split,metric,value"
    )
    assert "columns out of order" in error_of(path)


def test_a_missing_value_in_an_int_column_is_refused(tmp_path):
    path = metrics(tmp_path, *GOOD_ROWS, "report_mlp,,1,train,loss,0.5")
    message = error_of(path)
    assert "line 4, column 'seed': a value is required" in message
    path = metrics(tmp_path, *GOOD_ROWS, "report_mlp,0,1.5,train,loss,0.5")
    assert "line 4, column 'epoch': '1.5' is not an integer" in error_of(path)


def test_a_value_outside_the_allowed_ones_is_refused(tmp_path):
    path = metrics(tmp_path, *GOOD_ROWS, "report_mlp,0,1,valid,loss,0.5")
    assert "line 4, column 'split': 'valid' is not one of test, train" in error_of(path)
    runs = write_csv(
        tmp_path / "runs.csv",
        ",".join(columns("runs")),
        "report_mlp,0,completed,,,1.5,cpu,abc,def",
        "report_mlp,1,crashed,,,1.5,cpu,abc,def",
    )
    message = error_of(runs, "runs")
    assert "line 3, column 'status': 'crashed' is not one of" in message
    assert "completed, diverged, failed_to_train" in message


def test_a_quantity_must_match_its_pattern(tmp_path):
    path = write_csv(
        tmp_path / "curvature.csv",
        ",".join(columns("curvature")),
        "m,0,1,eig12,1.0,,10,0.1",
        "m,0,1,eig0,1.0,,10,0.1",
    )
    assert "line 3, column 'quantity': 'eig0'" in error_of(path, "curvature")


def test_a_header_only_table_is_valid(tmp_path):
    for name in TABLES:
        path = write_csv(tmp_path / f"{name}.csv", ",".join(columns(name)))
        frame = read_table(path, name)
        assert frame.empty and list(frame.columns) == columns(name)
    assert "empty file" in error_of(write_csv(tmp_path / "nothing.csv"))


def test_the_name_comes_from_the_file_name(tmp_path):
    assert table_name("results/tables/bound_terms.csv") == "bound_terms"
    path = write_csv(tmp_path / "results" / "tables" / "training.csv", TRAINING_HEADER, *GOOD_ROWS)
    assert len(read_table(path)) == 2
    for bad in ("results/tables/metrics.csv", "results/tables/training.tsv"):
        with pytest.raises(TableError, match="not a stable table"):
            table_name(bad)
    with pytest.raises(TableError, match="unknown table 'metrics'"):
        validate_table(pd.DataFrame(), "metrics", "x.csv")


def test_validate_table_types_a_frame_of_values():
    frame = pd.DataFrame(
        [{"experiment": "m", "seed": 0, "status": "diverged", "diverged_epoch": 3.0,
          "reason": None, "seconds": 2.5, "device": None, "config_hash": "0123",
          "git_commit": "unknown"}],
        columns=columns("runs"),
    )  # fmt: skip
    typed = validate_table(frame, "runs", "run.json")
    assert typed.diverged_epoch.dtype == "Int64" and typed.diverged_epoch.iloc[0] == 3
    assert typed.reason.iloc[0] == "" and typed.device.iloc[0] == ""
    assert typed.config_hash.iloc[0] == "0123"  # text stays text
    with pytest.raises(TableError, match=r"^run\.json: line 2, column 'git_commit'"):
        validate_table(frame.assign(git_commit=None), "runs", "run.json")


def test_line_numbers_follow_quoted_newlines(tmp_path):
    runs = pd.DataFrame(
        [["m", 0, "failed_to_train", None, "loss 9.1 > 10 x 0.9;\nat chance", 1.0, "cpu", "a", "b"],
         ["m", 1, "completed", None, "", 1.0, "cpu", "a", "b"],
         ["m", 2, "completed", 1.5, "", 1.0, "cpu", "a", "b"]],
        columns=columns("runs"),
    )  # fmt: skip
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    message = error_of(path, "runs")
    assert "line 5, column 'diverged_epoch': '1.5' is not an integer" in message
    runs.iloc[:2].to_csv(path, index=False)
    assert read_table(path, "runs").reason.tolist() == ["loss 9.1 > 10 x 0.9;\nat chance", ""]


def test_a_diverged_runs_tables_are_valid(tmp_path):
    """What the scripts write for a run that diverged: NaN values, empty tables."""
    curvature = load_script("curvature")
    nan_rows = [
        {"experiment": "m", "seed": 0, "epoch": 3, "quantity": q, "value": math.nan,
         "stderr": math.nan, "n_hvp": 0, "seconds": 0.0}
        for q in ("eig1", "eig2", "trace")
    ]  # fmt: skip
    write_table(pd.DataFrame(nan_rows, columns=curvature.COLUMNS), tmp_path / "curvature.csv")
    assert read_table(tmp_path / "curvature.csv").value.isna().all()
    table = certificates.Table()
    for quantity in certificates.QUANTITIES + certificates.OPTIMIZED:
        table.row(quantity, math.nan)
    rows, terms = table.frames({"experiment": "m", "seed": 0, "epoch": 5})
    write_table(rows, tmp_path / "bounds.csv")
    write_table(terms, tmp_path / "bound_terms.csv")
    bounds = read_table(tmp_path / "bounds.csv")
    assert bounds.n.isna().all() and bounds.n.dtype == "Int64"
    assert read_table(tmp_path / "bound_terms.csv").empty
    for name, script in (("density", "spectral_density"), ("landscape", "landscape")):
        write_table(pd.DataFrame(columns=load_script(script).COLUMNS), tmp_path / f"{name}.csv")
        assert read_table(tmp_path / f"{name}.csv").empty


def test_a_validated_table_round_trips(tmp_path):
    table = certificates.Table()
    table.row("test_error", 0.25, n=4)
    table.row("certificate_centered", 0.5, delta=0.025, n=600, mc_samples=5)
    table.row("jiang_sharpness", math.inf, n=600, mc_samples=2)
    rows, _ = table.frames({"experiment": "m", "seed": 1, "epoch": 2})
    write_table(rows, tmp_path / "per_run.csv")
    first = read_table(tmp_path / "per_run.csv", "bounds")
    write_table(first, tmp_path / "bounds.csv")
    assert "certificate_centered,0.5,0.025,600,5" in (tmp_path / "bounds.csv").read_text()
    pd.testing.assert_frame_equal(read_table(tmp_path / "bounds.csv"), first)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_declared_columns_are_those_the_code_writes():
    assert columns("curvature") == load_script("curvature").COLUMNS
    assert columns("density") == load_script("spectral_density").COLUMNS
    assert columns("landscape") == load_script("landscape").COLUMNS
    connectivity = load_script("connectivity")
    assert columns("paths") == connectivity.PATH_COLUMNS
    assert columns("barriers") == connectivity.BARRIER_COLUMNS
    assert columns("plane") == connectivity.PLANE_COLUMNS
    assert columns("bounds") == certificates.COLUMNS
    assert columns("bound_terms") == certificates.TERM_COLUMNS
    quantities = set(certificates.QUANTITIES + certificates.OPTIMIZED)
    assert TABLES["bounds"]["quantity"].allowed == quantities
    assert TABLES["bound_terms"]["quantity"].allowed == quantities
    statuses = TABLES["runs"]["status"].allowed
    assert set(getattr(training, "STATUSES", ("completed", "diverged"))) <= statuses
    text = (REPO / "scripts" / "train.py").read_text()
    assert '["experiment", "seed", "epoch", "split", "metric", "value"]' in text
    assert columns("training") == ["experiment", "seed", "epoch", "split", "metric", "value"]


def collect(tmp_path: Path, output: Path, *inputs: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "collect_tables.py"), "--output", str(output)]
    command += ["--inputs", *map(str, inputs)]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_collect_tables_refuses_a_bad_input_and_writes_nothing(tmp_path):
    good = write_csv(tmp_path / "runs" / "m" / "seed0" / "metrics.csv", TRAINING_HEADER, *GOOD_ROWS)
    bad = write_csv(
        tmp_path / "runs" / "m" / "seed1" / "metrics.csv",
        TRAINING_HEADER,
        "m,1,0,train,loss,2.3",
        "foo,bar,baz,qux,quux,corge,grault",
    )
    output = tmp_path / "results" / "tables" / "training.csv"
    result = collect(tmp_path, output, good, bad)
    assert result.returncode != 0
    assert f"error: {bad}: line 3: 7 fields" in result.stderr, result.stderr
    assert str(good) not in result.stderr and "Traceback" not in result.stderr
    assert not output.exists() and not output.with_name("training.csv.meta.json").exists()


def test_collect_tables_writes_a_valid_table(tmp_path):
    inputs = [
        write_csv(tmp_path / f"seed{s}" / "metrics.csv", TRAINING_HEADER, f"m,{s},0,train,loss,2.5")
        for s in (0, 1)
    ]
    output = tmp_path / "results" / "tables" / "training.csv"
    result = collect(tmp_path, output, *inputs)
    assert result.returncode == 0, result.stderr
    assert read_table(output).seed.tolist() == [0, 1]
    unknown = collect(tmp_path, tmp_path / "results" / "tables" / "metrics.csv", *inputs)
    assert unknown.returncode != 0 and "not a stable table" in unknown.stderr


def test_collect_tables_builds_runs_from_run_records(tmp_path):
    record = {"experiment": "m", "seed": 0, "status": "completed", "diverged_epoch": None,
              "seconds": 1.5, "device": "cpu", "run_config_hash": "1234", "git_commit": "abc",
              "config_hash": "ffff"}  # fmt: skip
    old = tmp_path / "seed0" / "run.json"  # written before runs had a reason
    failed = tmp_path / "seed1" / "run.json"
    for path, extra in ((old, {}), (failed, {"seed": 1, "status": "failed_to_train"})):
        path.parent.mkdir()
        reason = {"reason": "final test accuracy 0.1 is at chance"} if extra else {}
        path.write_text(json.dumps({**record, **extra, **reason}))
    output = tmp_path / "results" / "tables" / "runs.csv"
    result = collect(tmp_path, output, old, failed)
    assert result.returncode == 0, result.stderr
    runs = read_table(output)
    assert runs.reason.tolist() == ["", "final test accuracy 0.1 is at chance"]
    assert runs.config_hash.tolist() == ["1234", "1234"] and runs.diverged_epoch.isna().all()
    failed.write_text(json.dumps({**record, "status": "crashed"}))
    result = collect(tmp_path, output, old, failed)
    assert result.returncode != 0 and f"{failed}: run record, column 'status'" in result.stderr


def test_completed_only_drops_left_out_runs_and_their_pairs():
    from lossgeom.tables import completed_only, runs_note

    runs = pd.DataFrame(
        {
            "experiment": ["e", "e", "e"],
            "seed": [0, 1, 2],
            "status": ["completed", "completed", "diverged"],
            "reason": ["", "", "the minibatch loss became NaN or infinite in epoch 1"],
        }
    )
    per_run = pd.DataFrame({"experiment": ["e"] * 3, "seed": [0, 1, 2], "value": [1.0, 2.0, 3.0]})
    assert completed_only(per_run, runs).seed.tolist() == [0, 1]
    pairs = pd.DataFrame({"experiment": ["e"] * 3, "seed_a": [0, 0, 1], "seed_b": [1, 2, 2]})
    kept = completed_only(pairs, runs)
    assert kept[["seed_a", "seed_b"]].values.tolist() == [[0, 1]]
    assert runs_note(runs) == (
        "Left out (1 of 3 runs): e seed 2 diverged "
        "(the minibatch loss became NaN or infinite in epoch 1)."
    )
    assert completed_only(per_run.iloc[:0], runs).empty
