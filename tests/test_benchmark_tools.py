"""The run-comparison helpers of benchmarks/ on hand-made logs and tables."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def job(stamp: str, rule: str, jobid: int) -> list[str]:
    return [f"[{stamp}]", f"rule {rule}:", "    input: x", f"    jobid: {jobid}"]


def finished(stamp: str, jobid: int) -> list[str]:
    return [f"[{stamp}]", f"Finished jobid: {jobid} (Rule: x)"]


def test_wall_shares_split_parallel_seconds_and_add_up_to_the_busy_time():
    times = load("job_times")
    lines = (
        job("Sun Nov 29 10:00:00 2026", "train", 1)
        + finished("Sun Nov 29 10:00:30 2026", 1)  # alone: 30 s
        + job("Sun Nov 29 10:00:30 2026", "curvature", 2)
        + job("Sun Nov 29 10:00:30 2026", "curvature", 3)
        + finished("Sun Nov 29 10:00:50 2026", 2)  # two at once for 20 s
        + job("Sun Nov 29 10:00:50 2026", "density", 4)
        + finished("Sun Nov 29 10:01:10 2026", 3)  # curvature 3 beside density for 20 s
        + finished("Sun Nov 29 10:01:20 2026", 4)  # density alone for 10 s
    )
    per_rule, wall = times.job_times(lines)
    assert wall == 80 and sorted(per_rule["curvature"]) == [20, 40] and per_rule["density"] == [30]
    shares = times.wall_shares(times.job_intervals(lines)[0])
    assert shares == pytest.approx({"train": 30, "curvature": 10 + 10 + 10, "density": 10 + 10})
    assert sum(shares.values()) == pytest.approx(wall)


def run_compare(old, new, *flags):
    command = [sys.executable, str(REPO / "benchmarks" / "compare_runs.py"), str(old), str(new)]
    return subprocess.run([*command, *flags], capture_output=True, text=True, check=False)


def test_compare_runs_tells_equal_within_and_different(tmp_path):
    rows = {"quantity": ["eig1", "trace"], "value": [0.5, 20.0], "stderr": [None, 0.4],
            "n_hvp": [22, 20], "seconds": [1.0, 2.0]}  # fmt: skip
    for name in ("old", "new"):
        (tmp_path / name / "seed0").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "old" / "seed0" / "curvature.csv", index=False)
    rows["seconds"] = [9.0, 9.0]  # timings are left out
    pd.DataFrame(rows).to_csv(tmp_path / "new" / "seed0" / "curvature.csv", index=False)
    result = run_compare(tmp_path / "old", tmp_path / "new")
    assert result.returncode == 0 and "equal 1, within 0, different 0" in result.stdout

    rows["value"] = [0.5 * (1 + 1e-6), 20.4]  # round-off on eig1, another trace estimate
    pd.DataFrame(rows).to_csv(tmp_path / "new" / "seed0" / "curvature.csv", index=False)
    strict = run_compare(tmp_path / "old", tmp_path / "new", "--rtol", "1e-5")
    assert strict.returncode == 1 and "trace: value 2.0e-02, z 0.71" in strict.stdout
    lenient = run_compare(tmp_path / "old", tmp_path / "new", "--rtol", "1e-5",
                          "--skip-quantity", "trace")  # fmt: skip
    assert lenient.returncode == 0 and "equal 0, within 1, different 0" in lenient.stdout
    assert "eig1: value 1.0e-06" in lenient.stdout

    rows["quantity"] = ["eig2", "trace"]  # another label: not comparable row by row
    pd.DataFrame(rows).to_csv(tmp_path / "new" / "seed0" / "curvature.csv", index=False)
    changed = run_compare(tmp_path / "old", tmp_path / "new", "--rtol", "1")
    assert changed.returncode == 1 and "DIFFERENT:" in changed.stdout


def test_compare_runs_names_a_missing_or_empty_folder(tmp_path):
    missing = run_compare(tmp_path / "nowhere", tmp_path)
    assert missing.returncode == 2 and "nowhere is not a folder" in missing.stderr
    empty = run_compare(tmp_path, tmp_path)
    assert empty.returncode == 2 and "holds no CSV tables" in empty.stderr


def test_compare_devices_sets_differences_against_the_seed_spread(tmp_path):
    devices = load("compare_devices")
    first = pd.DataFrame({"experiment": "e", "seed": [0, 1, 2, 0, 1, 2], "epoch": [0] * 3 + [5] * 3,
                          "quantity": "eig1", "value": [10.0, 11.0, 12.0, 1.0, 1.2, 1.4]})  # fmt: skip
    second = first.assign(value=[10.0, 11.0, 12.0 * (1 + 1e-6), 1.1, 1.2, 1.4])
    summary = {r["label"]: r for r in devices.rows(first, second, ["quantity"], ["seed"], "value")}
    assert summary["e/0/eig1"]["rel"] == pytest.approx(1e-6, rel=1e-3)  # same initial weights
    trained = summary["e/5/eig1"]
    assert trained["max_diff"] == pytest.approx(0.1) and trained["sd_a"] == pytest.approx(0.2)
    assert trained["per_sd"] == pytest.approx(0.5) and trained["mean_b"] == pytest.approx(3.7 / 3)
    script = REPO / "benchmarks" / "compare_devices.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path), str(tmp_path)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 2 and "lacks training.csv" in result.stderr
