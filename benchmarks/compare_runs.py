"""Compare the per-job (or stable) tables of two pipeline runs, timing and provenance aside.

Usage: python benchmarks/compare_runs.py OLD/results/runs NEW/results/runs [--skip-seed 2]
                                          [--rtol 1e-4] [--skip-quantity trace]
Every CSV under OLD is compared with the same path under NEW, exactly (pandas
``assert_frame_equal(check_exact=True)``), leaving out the columns ``seconds``, ``git_commit``,
``config_hash``, ``device`` and ``reason`` and every ``bound_terms`` row whose term holds
"seconds". Prints one line per file and the counts; exits 1 when any file differs.

A file that is not exactly equal but has the same rows and labels is then measured: per label
(``quantity``, ``term``, ``metric``, ... as present), the largest difference of each numeric
column relative to that column's largest magnitude, and for rows with a standard error
(``stderr``) the largest ``|old - new| / sqrt(se_old^2 + se_new^2)``. With ``--rtol``, a file
whose relative differences all lie within it (labels named by ``--skip-quantity`` aside, which
are reported but not judged, e.g. a stochastic estimate whose estimator changed) counts as
"within".
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

SKIP = {"seconds", "git_commit", "config_hash", "device", "reason"}
LABELS = ("quantity", "term", "measure", "metric", "directions", "slice", "split", "path")
COUNTS = {"n_hvp", "n", "mc_samples", "epoch", "seed", "seed_a", "seed_b"}


def differences(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, dict[str, float]] | None:
    """Per label, the largest relative difference of each numeric column (None: not comparable)."""
    text = [c for c in a.columns if not pd.api.types.is_numeric_dtype(a[c])]
    if list(a.columns) != list(b.columns) or len(a) != len(b) or not a[text].equals(b[text]):
        return None
    labels = [c for c in LABELS if c in text]
    keys = a[labels].astype(str).agg("/".join, axis=1) if labels else pd.Series("all", a.index)
    numeric = [c for c in a.columns if c not in text and c not in COUNTS and c != "stderr"]
    out: dict[str, dict[str, float]] = {}
    for key in keys.unique():
        rows = keys == key
        entry = {}
        for column in numeric:
            x, y = a.loc[rows, column].astype(float), b.loc[rows, column].astype(float)
            scale = max(x.abs().max(), y.abs().max())
            gap = (x - y).abs().max()
            entry[column] = 0.0 if gap == 0 or pd.isna(gap) else float(gap / scale)
        if "stderr" in a.columns and a.loc[rows, "stderr"].notna().any():
            se = (a.loc[rows, "stderr"] ** 2 + b.loc[rows, "stderr"] ** 2) ** 0.5
            entry["z"] = float(((a.loc[rows, "value"] - b.loc[rows, "value"]).abs() / se).max())
        if any(entry.values()):
            out[key] = entry
    return out


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
    parser.add_argument("--rtol", type=float, default=None, help="relative tolerance")
    parser.add_argument("--skip-quantity", action="append", default=[],
                        help="a label reported but not judged against --rtol")  # fmt: skip
    args = parser.parse_args()
    for folder in (args.old, args.new):
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
    if not any(args.old.rglob("*.csv")):
        parser.error(f"{args.old} holds no CSV tables")
    counts = {"equal": 0, "within": 0, "different": 0, "missing": 0}
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
            gaps = differences(a, b)
            if gaps is None:
                print(f"{relative}: DIFFERENT: {str(error)[:400]}")
                counts["different"] += 1
                continue
            judged = [max((v for c, v in e.items() if c != "z"), default=0.0)
                      for k, e in gaps.items() if k.split("/")[0] not in args.skip_quantity]  # fmt: skip
            worst = max(judged, default=0.0)
            within = args.rtol is not None and worst <= args.rtol
            counts["within" if within else "different"] += 1
            detail = "; ".join(
                f"{k}: "
                + ", ".join(f"{c} {v:.1e}" if c != "z" else f"z {v:.2f}" for c, v in e.items())
                for k, e in list(gaps.items())[:6]
            )
            more = f" (+{len(gaps) - 6} labels)" if len(gaps) > 6 else ""
            verdict = "within" if within else "DIFFERENT"
            print(
                f"{relative}: {verdict} (largest relative difference {worst:.1e}): {detail}{more}"
            )
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 1 if counts["different"] else 0


if __name__ == "__main__":
    sys.exit(main())
