"""Every notebook runs, and says so, when runs did not complete (scenarios 2 and 3).

Scenario 2: seeds 0, 1 and 2 of one experiment, seed 1 failed to train; what is left is partial
(two seeds, one connectivity pair: 0-2). Scenario 3: every run failed; every table the later
stages write for them is header-only or NaN, so each notebook draws a placeholder figure and
prints sentences instead of tables. The dynamics study's own runs (edge of stability, escape,
temperature grid) do not depend on the training runs: they are populated in scenario 2 (an
EoS run at the edge, one that never gets there and one that diverges; a temperature cell
that did not complete) and header-only in scenario 3, so that the notebooks' empty paths run
too. So are the architecture study's (scenario 2: one seed of one architecture diverged, the
ViT's aligned barriers not applicable). The tables are small synthetic ones with the declared columns (lossgeom.tables.TABLES);
the notebooks run through scripts/run_notebook.py, as the workflow runs them.
"""

from __future__ import annotations

import concurrent.futures
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from lossgeom.tables import (
    BOUND_QUANTITIES,
    DYNAMICS,
    ESCAPE_QUANTITIES,
    ESCAPE_SUMMARY_QUANTITIES,
    NOISE_QUANTITIES,
    OPTIMIZED_QUANTITIES,
    TEMPERATURE_QUANTITIES,
    columns,
    read_table,
    runs_note,
)
from tests.conftest import REPO

pytestmark = pytest.mark.workflow
EXPERIMENT = "e"
SEEDS = [0, 1, 2]
EPOCHS = [0, 1, 2]
REASON = "final test accuracy 0.1000 is at chance (0.1000 + margin 0.05)"
SETTINGS = {  # the .meta.json sidecars' config: only the keys the notebooks read
    "bounds": {"eps": 1.0, "jiang_upper": 2.0, "jiang_steps": 15, "jiang_target": 0.1},
    "curvature": {"top_k": 3},
    "density": {"n_iter": 10},
    "barriers": {"n_points": 5},
    "eos_summary": {"edge": 0.95},
    "escape_summary": {"escape_ratio": 0.5},
}
# The settings the workflow passes to the notebooks that declare them (NOTEBOOK_SETTINGS).
NOTEBOOK_SETTINGS = {
    "tracked_seed": "0",
    "report_experiment": EXPERIMENT,  # the report's run is this scenario's experiment
    "report_lr": "0.1",
    "report_momentum": "0.9",
    "escape_ratio": "0.5",
}
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
ARCHITECTURE_NOTEBOOKS = {"architecture_depth", "architecture_spectra", "nonconvexity_maps",
                          "architecture_barriers"}  # fmt: skip
# The studies that train their own networks: their notebooks read no runs table.
STUDY_NOTEBOOKS = ARCHITECTURE_NOTEBOOKS | {"measure_ranking", "difficulty_prediction",
                                           "reparametrisation", "four_questions"}  # fmt: skip


def per_run(seeds, rows):
    """Rows for every (seed, row) with experiment and seed in front."""
    return [{"experiment": EXPERIMENT, "seed": s, **row} for s in seeds for row in rows]


def training_rows() -> list[dict]:
    rows = []
    for epoch in EPOCHS:
        for split in ("train", "test"):
            rows.append(
                {"epoch": epoch, "split": split, "metric": "loss", "value": 2.3 / (1 + epoch)}
            )
            rows.append(
                {"epoch": epoch, "split": split, "metric": "accuracy", "value": 0.1 + 0.3 * epoch}
            )
    return rows


def curvature_rows(value: float) -> list[dict]:
    rows = []
    for epoch in EPOCHS:
        for k in (1, 2, 3):
            rows.append(
                {
                    "epoch": epoch,
                    "quantity": f"eig{k}",
                    "value": value / k / (1 + epoch),
                    "stderr": np.nan,
                    "n_hvp": 20,
                    "seconds": 1.0,
                }
            )
        rows.append(
            {
                "epoch": epoch,
                "quantity": "trace",
                "value": 10 * value / (1 + epoch),
                "stderr": 0.5,
                "n_hvp": 60,
                "seconds": 2.0,
            }
        )
    return rows


def density_rows() -> list[dict]:
    grid = np.linspace(-1, 6, 30)
    density = np.exp(-(grid**2) / 0.1) + 1e-5 * np.exp(-((grid - 5.5) ** 2) / 0.1)
    return [
        {"epoch": epoch, "eigenvalue": x, "density": d, "sigma": 0.1, "n_hvp": 100, "seconds": 3.0}
        for epoch in (0, 2)
        for x, d in zip(grid, density, strict=True)
    ]


def slice_value(kind: str, metric: str, a: float, b: float) -> float:
    """A bowl; the hessian loss slice is constant, so it is drawn without contours."""
    if metric == "accuracy":
        return 0.9 - 0.1 * (a * a + b * b)
    return 0.7 if kind == "hessian" else 0.3 + a * a + 2 * b * b


def landscape_rows() -> list[dict]:
    axis = np.linspace(-1, 1, 5)
    rows = []
    for kind in ("random", "filter", "hessian"):
        for split in ("train", "test"):
            for metric in ("loss", "accuracy"):
                common = {"directions": kind, "split": split, "metric": metric}
                for a in axis:
                    rows += [
                        {
                            **common,
                            "slice": "2d",
                            "alpha": a,
                            "beta": b,
                            "value": slice_value(kind, metric, a, b),
                        }
                        for b in axis
                    ]
                    rows.append(
                        {
                            **common,
                            "slice": "1d_alpha",
                            "alpha": a,
                            "beta": 0.0,
                            "value": slice_value(kind, metric, a, 0.0),
                        }
                    )
                    rows.append(
                        {
                            **common,
                            "slice": "1d_beta",
                            "alpha": 0.0,
                            "beta": a,
                            "value": slice_value(kind, metric, 0.0, a),
                        }
                    )
    return rows


def pair_tables(pairs) -> dict[str, list[dict]]:
    kinds = ["linear", "aligned", "bezier", "aligned_bezier"]
    combos = [(s, m) for s in ("train", "test") for m in ("loss", "error")]
    paths, barriers, plane = [], [], []
    for a, b in pairs:
        pair = {"experiment": EXPERIMENT, "seed_a": a, "seed_b": b}
        for split, metric in combos:
            for kind in kinds:
                paths += [
                    {
                        **pair,
                        "path": kind,
                        "t": t,
                        "split": split,
                        "metric": metric,
                        "value": 0.2 + (kind == "linear") * t * (1 - t),
                    }
                    for t in np.linspace(0, 1, 5)
                ]
                barriers.append(
                    {
                        **pair,
                        "path": kind,
                        "split": split,
                        "metric": metric,
                        "barrier": 0.25 * (kind == "linear"),
                    }
                )
            plane += [
                {
                    **pair,
                    "u": u,
                    "v": v,
                    "split": split,
                    "metric": metric,
                    "value": 0.2 + v * v + u * (1 - u),
                    "bend_u": 0.5,
                    "bend_v": 0.2,
                }
                for u in np.linspace(-0.2, 1.2, 4)
                for v in np.linspace(-0.2, 0.4, 4)
            ]
    return {"paths": paths, "barriers": barriers, "plane": plane}


def bounds_rows(seed: int, failed: bool) -> tuple[list[dict], list[dict]]:
    """The bounds stage's rows of a seed: every epoch for seed 0 (tracked), else the last."""
    rows, terms = [], []
    for epoch in EPOCHS if seed == 0 else EPOCHS[-1:]:
        quantities = BOUND_QUANTITIES + (OPTIMIZED_QUANTITIES if epoch == EPOCHS[-1] else [])
        for i, quantity in enumerate(quantities):
            value = np.nan if failed else 0.1 + 0.05 * i + 0.01 * seed
            if quantity.startswith("jiang"):
                value = np.nan if failed else 100.0 * (1 + epoch) + seed
                if seed == 0 and epoch == 1 and quantity == "jiang_sharpness":
                    value = np.inf  # no noise scale found: marked, not silently dropped
            certificate = quantity.startswith("certificate")
            rows.append(
                {
                    "experiment": EXPERIMENT,
                    "seed": seed,
                    "epoch": epoch,
                    "quantity": quantity,
                    "value": value,
                    "delta": 0.025 if certificate else np.nan,
                    "n": 1000,
                    "mc_samples": 10,
                }
            )
            for term in ("mc_error", "kl", "confidence") if certificate else ():
                terms.append(
                    {
                        "experiment": EXPERIMENT,
                        "seed": seed,
                        "epoch": epoch,
                        "quantity": quantity,
                        "term": term,
                        "value": np.nan if failed else 0.5,
                    }
                )
    return rows, terms


def eos_tables() -> tuple[list[dict], list[dict]]:
    """Three full-batch GD runs: at the edge, never there, diverged at step 8; and a summary."""
    rows, summary = [], []
    runs = [  # run, lr, momentum, sharpness at step 0 and at the end, diverged step
        ("c1.5", 0.02, 0.0, 60.0, 101.0, None),
        ("c3", 0.01, 0.9, 60.0, 80.0, None),
        ("c2", 0.02, 0.0, 50.0, 130.0, 8),
    ]
    for run, lr, momentum, first, last, diverged in runs:
        threshold = 2 * (1 + momentum) / lr
        common = {"experiment": "m", "run": run, "loss": "mse", "lr": lr, "momentum": momentum}
        common["threshold"] = threshold
        for step in range(11):
            if step == diverged:  # the loss only, and not finite
                rows.append({**common, "step": step, "quantity": "train_loss", "value": np.inf})
                break
            rows.append({**common, "step": step, "quantity": "train_loss", "value": 1 / (1 + step)})
            rows.append({**common, "step": step, "quantity": "train_accuracy", "value": 0.5})
            if step % 2 == 0:
                value = first + (last - first) * min(1, step / 4)
                rows.append({**common, "step": step, "quantity": "sharpness", "value": value})
        reached = last >= 0.95 * threshold
        summary.append(
            {
                **common,
                "lambda0": first,
                "first_step_at_threshold": 4 if reached else None,
                "median_ratio": last / threshold if reached else np.nan,
                "ratio_q10": last / threshold if reached else np.nan,
                "ratio_q90": last / threshold if reached else np.nan,
                "steps_at_edge": (6 if diverged is None else 2) if reached else None,
                "steps": 10 if diverged is None else diverged,
                "diverged_step": diverged,
            }
        )
    return rows, summary


def noise_rows(failed: bool) -> list[dict]:
    """One seed's gradient-noise geometry at every epoch (NaN if its run did not complete)."""
    return [
        {
            "epoch": epoch,
            "quantity": quantity,
            "value": np.nan
            if failed
            else 1e-3
            if quantity.startswith("isotropic")
            else 5.0 / (1 + i),
            "stderr": np.nan if failed or quantity == "topk_alignment" else 0.1 / (1 + i),
        }
        for epoch in EPOCHS
        for i, quantity in enumerate(NOISE_QUANTITIES)
    ]


def escape_tables() -> tuple[list[dict], list[dict]]:
    """Two seeds of every dynamics from a sharp minimum, and their summary."""
    rows = [
        {
            "experiment": "escape",
            "seed": seed,
            "dynamics": dynamics,
            "step": step,
            "quantity": quantity,
            "value": 10.0 / (1 + d * step / 10) + seed if quantity == "sharpness" else 0.5 + step,
        }
        for seed in (0, 1)
        for d, dynamics in enumerate(DYNAMICS)
        for step in (0, 5, 10)
        for quantity in ESCAPE_QUANTITIES
    ]
    summary = [
        {
            "dynamics": dynamics,
            "n_seeds": 2,
            "quantity": quantity,
            "mean": 0.5 + d / 10,
            "ci_low": 0.4 + d / 10 if d != 1 else np.nan,  # sgd: no interval
            "ci_high": 0.6 + d / 10 if d != 1 else np.nan,
        }
        for d, dynamics in enumerate(DYNAMICS)
        for quantity in ESCAPE_SUMMARY_QUANTITIES
    ]
    return rows, summary


def temperature_rows() -> list[dict]:
    """A 2 x 2 grid of (lr, batch size), two seeds; the cell lr 0.1, B 32 did not complete."""
    return [
        {
            "lr": lr,
            "batch_size": batch,
            "seed": seed,
            "quantity": quantity,
            "value": np.nan if (lr, batch) == (0.1, 32) else 10 * batch * lr / (1 + seed / 10),
        }
        for lr in (0.05, 0.1)
        for batch in (32, 64)
        for seed in (0, 1)
        for quantity in TEMPERATURE_QUANTITIES
    ]


def dynamics_tables(failed: set[int]) -> dict[str, list[dict]]:
    """The dynamics study's tables: its own runs header-only when every training run failed."""
    noise = [r for s in SEEDS for r in per_run([s], noise_rows(s in failed))]
    if failed == set(SEEDS):
        own = ["eos", "eos_summary", "escape", "escape_summary", "temperature"]
        return {"noise": noise, **{name: [] for name in own}}
    (eos, eos_summary), (escape, escape_summary) = eos_tables(), escape_tables()
    return {
        "noise": noise,
        "eos": eos,
        "eos_summary": eos_summary,
        "escape": escape,
        "escape_summary": escape_summary,
        "temperature": temperature_rows(),
    }


ARCHITECTURES = {  # name: (family, depth, skip, norm)
    "mlp_plain_d1": ("mlp", 1, 0, "none"),
    "mlp_plain_d2": ("mlp", 2, 0, "none"),
    "mlp_residual_d2": ("mlp", 2, 1, "none"),
    "resnet": ("resnet", 3, 1, "batchnorm"),
    "resnet_noskip": ("resnet", 3, 0, "batchnorm"),
    "vit": ("vit", 2, 1, "layernorm"),
}


def sweep_tables(failed: set[int]) -> dict[str, list[dict]]:
    """The sweep's tables from a synthetic population, analysed by the real functions.

    Every model fails to reach the criterion when every seed of the scenario failed (the
    analysis tables then hold NaN); otherwise 24 of 32 models reach it and 4 diverge.
    """
    from lossgeom.correlation import measure_correlations
    from lossgeom.prediction import prediction_table
    from lossgeom.sweep import AXES, sweep_models
    from lossgeom.tables import SWEEP_EARLY_POINTS, SWEEP_EARLY_QUANTITIES, SWEEP_MEASURES

    rng = np.random.default_rng(0)
    axes = {"dataset": ["mnist", "fashion_mnist"], "lr": [0.02, 0.5], "batch_size": [32, 128],
            "width": [16], "depth": [1, 2], "weight_decay": [0.0], "train_size": [500],
            "init_scale": [1.0]}  # fmt: skip
    rows = []
    for m in sweep_models({"axes": axes, "seeds": [0, 1]}):
        status = "diverged" if m.lr == 0.5 and m.depth == 2 and m.batch_size == 32 else (
            "not_reached" if m.lr == 0.5 or failed == set(SEEDS) else "reached")  # fmt: skip
        gap = 0.1 + 0.05 * (m.dataset == "fashion_mnist") + rng.normal(scale=0.02)
        row = {"model_id": m.model_id, "config_group": m.config_group, **m.axes(), "seed": m.seed,
               "status": status, "reached_criterion": int(status == "reached"),
               "steps": 2000 if status != "reached" else int(300 + 100 * rng.random()),
               "seconds": 1.0, "train_error": 0.0, "test_error": gap, "gap": gap}  # fmt: skip
        row.update({k: (np.nan if status == "diverged" else gap * (1 + j) + rng.normal(scale=0.05))
                    for j, k in enumerate(SWEEP_MEASURES)})  # fmt: skip
        row.update({f"{q}_{p}": (5 * m.lr if q == "stability_ratio" else rng.uniform(0.5, 2.0))
                    for p in SWEEP_EARLY_POINTS for q in SWEEP_EARLY_QUANTITIES})  # fmt: skip
        rows.append(row)
    frame = pd.DataFrame(rows)
    reached = frame[frame.status == "reached"]
    overall, by_axis = measure_correlations(reached, SWEEP_MEASURES, ["gap", "test_error"],
                                            [a for a in AXES if reached[a].nunique() > 1],
                                            fixed=["seed"], n_resamples=100)  # fmt: skip
    prediction, _ = prediction_table(frame, "tenth", n_resamples=100)
    reparametrisation = [{"alpha": a, "quantity": q, "value": (a**2 if q == "eig1" else 1.0)}
                         for a in (0.1, 1.0, 10.0)
                         for q in ("test_error", "train_error", "output_change", *SWEEP_MEASURES)]  # fmt: skip
    return {"sweep": rows, "measure_correlations": overall.to_dict("records"),
            "measure_correlations_by_axis": by_axis.to_dict("records"),
            "prediction": prediction.to_dict("records"), "reparametrisation": reparametrisation}  # fmt: skip


def architecture_tables(failed: set[int]) -> dict[str, list[dict]]:
    """The architecture study's tables (its own runs): header-only when every run failed.

    Otherwise seed 1 of mlp_plain_d2 diverged (trainability rows only) and the ViT's aligned
    barriers do not apply.
    """
    names = ["architectures", "architecture_curvature", "architecture_density",
             "architecture_barriers", "nonconvexity"]  # fmt: skip
    if failed == set(SEEDS):
        return {name: [] for name in names}
    rng = np.random.default_rng(0)
    rows, curvature, density, barriers, maps = [], [], [], [], []
    for index, (name, (family, depth, skip, norm)) in enumerate(ARCHITECTURES.items()):
        keys = {"experiment": name, "family": family, "depth": depth, "skip": skip,
                "norm": norm, "params": 1000 * (index + 1)}  # fmt: skip
        for seed in SEEDS:
            diverged = name == "mlp_plain_d2" and seed == 1
            values = {"final_train_loss": np.nan if diverged else 0.1 * depth,
                      "final_test_accuracy": np.nan if diverged else 0.9,
                      "steps_to_95": np.nan if diverged or depth > 1 else 40.0,
                      "diverged": float(diverged)}  # fmt: skip
            if not diverged:
                values.update(eig1_init=3.0, outliers_init=2, conditioning_init=10.0,
                              eig1=5.0 + depth + seed, eig_min=-0.1 * depth, trace=50.0,
                              outliers=9 + seed % 2, conditioning=20.0 * depth, bulk_edge=0.5)  # fmt: skip
                curvature += [{"experiment": name, "seed": seed, "epoch": e, "quantity": q,
                               "value": v} for e in EPOCHS for q, v in
                              (("eig_max", 4.0 + e), ("eig_min", -0.1), ("trace", 40.0),
                               ("trace_stderr", 1.0), ("mean_abs", 0.2),
                               ("conditioning", 20.0 + e), ("bulk_edge", 0.5),
                               ("outliers", 9.0))]  # fmt: skip
                grid = np.linspace(-1, 6, 30)
                density += [{"experiment": name, "seed": seed, "epoch": e, "eigenvalue": x,
                             "density": float(np.exp(-x * x))} for e in (0, 2) for x in grid]  # fmt: skip
            rows += [{**keys, "seed": seed, "quantity": q, "value": v} for q, v in values.items()]
        for a, b in ((0, 1), (1, 2), (2, 0)):
            if name == "mlp_plain_d2" and 1 in (a, b):
                continue
            for path in ("linear", "aligned"):
                na = path == "aligned" and family == "vit"
                height = np.nan if na else float(rng.uniform(0, 0.5))
                barriers.append({"experiment": name, "seed_a": a, "seed_b": b, "path": path,
                                 "barrier": height, "note": "not applicable: ViT" if na else ""})  # fmt: skip
                rows.append({**keys, "seed": a, "quantity": f"barrier_{path}", "value": height})
        for alpha in (-1.0, 0.0, 1.0):
            for beta in (-1.0, 0.0, 1.0):
                ratio = float(rng.uniform(0, 0.3))
                maps.append({"experiment": name, "seed": 0, "alpha": alpha, "beta": beta,
                             "eig_max": 5.0, "eig_min": -5.0 * ratio, "ratio": ratio})  # fmt: skip
        rows.append({**keys, "seed": 0, "quantity": "nonconvexity_median", "value": 0.1})
    return dict(zip(names, (rows, curvature, density, barriers, maps), strict=True))


def write_scenario(folder: Path, failed: set[int]) -> pd.DataFrame:
    """Write every stable table of a run where the seeds in ``failed`` failed to train."""
    done = [s for s in SEEDS if s not in failed]
    runs = pd.DataFrame(
        [
            {
                "experiment": EXPERIMENT,
                "seed": s,
                "status": "failed_to_train" if s in failed else "completed",
                "diverged_epoch": None,
                "reason": REASON if s in failed else "",
                "seconds": 1.0,
                "device": "cpu",
                "config_hash": "abc",
                "git_commit": "def",
            }
            for s in SEEDS
        ]
    )
    curvature = [
        r for s in SEEDS for r in per_run([s], curvature_rows(np.nan if s in failed else 5.0 + s))
    ]
    bounds, terms = zip(*(bounds_rows(s, s in failed) for s in SEEDS), strict=True)
    pairs = [(a, b) for a in done for b in done if a < b]
    tables = {
        "runs": runs,
        "training": per_run(SEEDS, training_rows()),  # written for failed runs too
        "curvature": curvature,
        "density": per_run(done, density_rows()),
        "landscape": per_run(done, landscape_rows()),
        "bounds": sum(bounds, []),
        "bound_terms": sum(terms, []),
        **pair_tables(pairs),
        **dynamics_tables(failed),
        **architecture_tables(failed),
        **sweep_tables(failed),
    }
    for name, rows in tables.items():
        frame = pd.DataFrame(rows, columns=columns(name))
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        read_table(path, name)  # every table is valid, header-only ones included
        config = SETTINGS.get(name, {})
        (folder / f"{name}.csv.meta.json").write_text(json.dumps({"config": config}))
    return read_table(folder / "runs.csv", "runs")


def parameters(notebook: Path) -> list[str]:
    """The names in a notebook's cell tagged "parameters"."""
    text = notebook.read_text()
    cell = text.split('# %% tags=["parameters"]', 1)[1].split("# %%", 1)[0]
    return re.findall(r"^(\w+) = ", cell, flags=re.MULTILINE)


def run_and_check(notebook: Path, tables: Path, out: Path, note: str) -> list[str]:
    """Executes one notebook on the scenario's tables; returns what is wrong with it."""
    problems = []
    names = parameters(notebook)
    # The studies train their own networks: their notebooks read no runs table.
    reads_runs = "runs_table" in names
    assert reads_runs != (notebook.stem in STUDY_NOTEBOOKS), notebook.name
    name = notebook.stem
    args = [
        f"{p}={tables / (p.removesuffix('_table') + '.csv')}" for p in names if p.endswith("_table")
    ]
    args += [f"figure_png={out / (name + '.png')}", f"figure_pdf={out / (name + '.pdf')}"]
    args += [f"{p}={v}" for p, v in NOTEBOOK_SETTINGS.items() if p in names]
    ipynb, page = out / f"{name}.ipynb", out / f"{name}.html"
    command = [
        sys.executable,
        str(REPO / "scripts" / "run_notebook.py"),
        str(notebook),
        "--ipynb",
        str(ipynb),
        "--html",
        str(page),
    ]
    for arg in args:
        command += ["-p", arg]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return [f"{name}: exit {result.returncode}\n{result.stderr[-3000:]}"]
    body = page.read_text()
    executed = nbformat.read(ipynb, as_version=4)
    tags = [t for c in executed.cells for t in c.metadata.get("tags", [])]
    if reads_runs and html.escape(note) not in body and note not in body:
        problems.append(f"{name}: the HTML does not say which runs were left out")
    if (
        "results/tables/runs.csv" in body  # the default value, shown by the tagged cell
        or tags.count("parameters")
        or tags.count("injected-parameters") != 1
    ):
        problems.append(f"{name}: the parameters cell is shown twice (defaults and injected)")
    if not (out / f"{name}.png").stat().st_size or not (out / f"{name}.pdf").stat().st_size:
        problems.append(f"{name}: no figure")
    return problems


@pytest.mark.parametrize(
    "failed", [pytest.param({1}, id="one-seed-failed"), pytest.param(set(SEEDS), id="all-failed")]
)
def test_every_notebook_runs_and_names_the_runs_left_out(tmp_path, failed):
    tables, out = tmp_path / "tables", tmp_path / "out"
    tables.mkdir()
    out.mkdir()
    note = runs_note(write_scenario(tables, failed))
    assert len(NOTEBOOKS) == 20
    # Two notebooks at a time (each starts its own kernel, mostly on one core).
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        found = pool.map(lambda notebook: run_and_check(notebook, tables, out, note), NOTEBOOKS)
    problems = [problem for problems in found for problem in problems]
    assert not problems, "\n".join(problems)
