"""Compare the per-job (or stable) tables of two pipeline runs, timing and provenance aside.

Usage: python benchmarks/compare_runs.py OLD/results/runs NEW/results/runs [--skip-seed 2]
Every CSV under OLD is compared with the same path under NEW, exactly (pandas
``assert_frame_equal(check_exact=True)``), leaving out the columns ``seconds``, ``git_commit``,
``config_hash``, ``device`` and ``reason`` and every ``bound_terms`` row whose term holds
"seconds". Prints one line per file and the counts; exits 1 when any file differs.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

SKIP = {"seconds", "git_commit", "config_hash", "device", "reason"}


def comparable(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if "term" in frame.columns:
        frame = frame[~frame.term.str.contains("seconds")].reset_index(drop=True)
    return frame[[c for c in frame.columns if c not in SKIP]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--skip-seed", type=int, action="append", default=[])
    args = parser.parse_args()
    counts = {"equal": 0, "different": 0, "missing": 0}
    for path in sorted(args.old.rglob("*.csv")):
        relative = path.relative_to(args.old)
        if any(f"seed{s}" in part for s in args.skip_seed for part in relative.parts):
            continue
        other = args.new / relative
        if not other.exists():
            print(f"{relative}: not in the new run")
            counts["missing"] += 1
            continue
        a, b = comparable(path), comparable(other)
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)
            print(f"{relative}: equal ({len(a)} rows)")
            counts["equal"] += 1
        except AssertionError as error:
            print(f"{relative}: DIFFERENT: {str(error)[:400]}")
            counts["different"] += 1
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 1 if counts["different"] else 0


if __name__ == "__main__":
    sys.exit(main())
