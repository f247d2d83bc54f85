"""The real Snakemake workflow on the smoke preset and a tiny synthetic MNIST mirror."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SNAKEMAKE, snakemake

pytestmark = pytest.mark.workflow


def test_dry_run_lists_every_stage(smoke_run):
    _, dry = smoke_run
    for rule in (
        "prepare_data",
        "train",
        "curvature",
        "spectral_density",
        "landscape",
        "connectivity",
        "bounds",
        "bounds_table",
        "eos",
        "noise",
        "escape",
        "temperature",
        "dynamics_table",
        "dynamics_summary",
        "architecture",
        "architecture_table",
        "figure",
        "index",
    ):
        assert re.search(rf"^{rule}\s+\d+", dry, flags=re.M), rule


def test_every_declared_output_exists(smoke_run):
    workdir, _ = smoke_run
    listed = snakemake(workdir, "--list-target-rules", check=False)
    assert listed.returncode == 0
    summary = snakemake(workdir, "--summary", "all").stdout
    rows = [line.split("\t") for line in summary.splitlines()[1:] if "\t" in line]
    assert len(rows) > 40
    for row in rows:
        assert (workdir / row[0]).exists(), row[0]
        assert "missing" not in row, row
    for name in (
        "training_curves",
        "landscape_2d",
        "landscape_1d",
        "spectral_density",
        "connectivity_paths",
        "connectivity_plane",
        "bounds_seeds",
        "bounds_epochs",
        "edge_of_stability",
        "noise_geometry",
        "escape",
        "temperature",
        "architecture_depth",
        "architecture_spectra",
        "nonconvexity_maps",
        "architecture_barriers",
    ):
        for path in (
            f"results/figures/{name}.png",
            f"results/figures/{name}.pdf",
            f"results/notebooks/{name}.ipynb",
            f"results/notebooks/{name}.html",
        ):
            assert (workdir / path).stat().st_size > 0, path
    assert "training_curves.html" in (workdir / "results" / "index.html").read_text()


def test_dynamics_tables(smoke_run):
    """The dynamics study's tables, from the smoke preset's toy runs (config/presets/smoke.yaml)."""
    from lossgeom.tables import read_table

    workdir, _ = smoke_run
    tables = workdir / "results" / "tables"
    eos = read_table(tables / "eos.csv")
    summary = read_table(tables / "eos_summary.csv").set_index(["experiment", "run"])
    runs = {("tanh_mse", "c1.5"), ("tanh_mse", "c2"), ("tanh_mse_momentum", "c1.5"),
            ("relu_mse", "c1.5"), ("relu_cross_entropy", "c1.5")}  # fmt: skip
    assert set(summary.index) == runs
    # The step is set from the measured initial sharpness: eta = 2 (1 + beta) / (c lambda0).
    factor = summary.index.get_level_values("run").str[1:].astype(float)
    expected = 2 * (1 + summary.momentum) / (factor * summary.lambda0)
    assert ((summary.lr - expected).abs() <= 1e-9 * expected).all()
    assert ((summary.threshold - 2 * (1 + summary.momentum) / summary.lr).abs() < 1e-6).all()
    sharp = eos[eos.quantity == "sharpness"]
    assert sorted(sharp[sharp.experiment == "tanh_mse"].step.unique()) == [0, 10, 20, 30]
    assert (summary.steps == 30).all()
    noise = read_table(tables / "noise.csv")
    assert sorted(noise.seed.unique()) == [0, 1, 2] and sorted(noise.epoch.unique()) == [0, 1, 2]
    assert noise[noise.seed == 2].value.isna().all()  # the failed run: NaN, left out
    done = noise[noise.seed < 2].pivot_table(
        index=["seed", "epoch"], columns="quantity", values="value"
    )
    assert (done.anisotropy_ratio > 0).all() and (done.trace_sigma > 0).all()
    assert ((done.topk_noise_fraction >= 0) & (done.topk_noise_fraction <= 1)).all()
    escape = read_table(tables / "escape.csv")
    assert set(escape.dynamics) == {"gd", "sgd", "gld_isotropic", "gld_diagonal", "gld_leading"}
    assert sorted(escape.seed.unique()) == [0, 1]
    start = escape[(escape.step == 0) & (escape.quantity == "sharpness")]
    # Every dynamics of a seed starts from the same minimum.
    assert (start.groupby("seed").value.nunique() == 1).all()
    escape_summary = read_table(tables / "escape_summary.csv")
    assert len(escape_summary) == 5 * 4 and (escape_summary.n_seeds == 2).all()
    temperature = read_table(tables / "temperature.csv")
    assert len(temperature) == 2 * 2 * 1 * 4
    assert temperature.value.notna().all()


def test_architecture_tables(smoke_run):
    from lossgeom.tables import read_table

    workdir, _ = smoke_run
    tables = workdir / "results" / "tables"
    names = {"mlp_plain_d1", "mlp_plain_d2", "mlp_residual_layernorm_d1",
             "mlp_residual_layernorm_d2", "cnn", "resnet", "resnet_noskip", "vit"}  # fmt: skip
    table = read_table(tables / "architectures.csv")
    assert set(table.experiment) == names
    assert set(table.family) == {"mlp", "cnn", "resnet", "vit"}
    assert sorted(table.seed.unique()) == [0, 1]
    skips = table.drop_duplicates("experiment").set_index("experiment").skip
    assert skips["resnet"] == 1 and skips["resnet_noskip"] == 0 and skips["mlp_plain_d2"] == 0
    assert skips["mlp_residual_layernorm_d2"] == 1
    barriers = read_table(tables / "architecture_barriers.csv")
    vit = barriers[(barriers.experiment == "vit") & (barriers.path == "aligned")]
    assert vit.barrier.isna().all() and vit.note.str.contains("not applicable").all()
    others = barriers[barriers.experiment != "vit"]
    assert others.barrier.notna().all() and (others.barrier >= 0).all()
    maps = read_table(tables / "nonconvexity.csv")
    assert set(maps.experiment) == names and len(maps) == len(names) * 9
    assert (maps.ratio >= 0).all()
    curvature = read_table(tables / "architecture_curvature.csv")
    assert set(curvature.epoch) == {0, 1}
    density = read_table(tables / "architecture_density.csv")
    assert len(density) == len(names) * 2 * 2 * 50  # seeds x (first, last epoch) x points


def test_tables_have_the_stable_columns(smoke_run):
    from lossgeom.tables import TABLES, read_table

    workdir, _ = smoke_run
    tables = workdir / "results" / "tables"
    # Every stable table has exactly its declared columns, each value of its column's kind
    # and within the allowed values (lossgeom.tables.TABLES); read_table raises otherwise.
    read = {name: read_table(tables / f"{name}.csv", name) for name in TABLES}
    assert all(list(read[name].columns) == list(TABLES[name]) for name in TABLES)
    for name in ("training", "curvature", "landscape"):  # the same values as pandas alone reads
        pd.testing.assert_frame_equal(
            read[name], pd.read_csv(tables / f"{name}.csv"), check_dtype=False
        )
    runs = read["runs"].set_index("seed")
    assert runs.status.to_dict() == {0: "completed", 1: "completed", 2: "failed_to_train"}
    assert runs.reason[0] == runs.reason[1] == "" and runs.diverged_epoch.isna().all()
    assert runs.reason[2].startswith("final training loss") and "at chance" in runs.reason[2]
    training = read["training"]
    assert sorted(training.seed.unique()) == [0, 1, 2]
    assert sorted(training.epoch.unique()) == [0, 1, 2]
    curvature = read["curvature"]
    assert set(curvature.quantity) == {"eig1", "eig2", "eig3", "trace"}
    assert len(curvature) == 3 * 3 * 4  # the failed seed's rows say NaN: it was left out
    assert curvature[curvature.seed == 2].value.isna().all()
    curvature = curvature[curvature.seed < 2]
    assert curvature.value.notna().all() and (curvature.n_hvp > 0).all()
    eig = curvature[curvature.quantity.str.startswith("eig")].pivot_table(
        index=["seed", "epoch"], columns="quantity", values="value"
    )
    assert (eig.eig1 >= eig.eig2).all() and (eig.eig2 >= eig.eig3).all()
    landscape = read["landscape"]
    assert set(landscape.directions) == {"random", "filter", "hessian"}
    assert (
        len(
            landscape[
                (landscape.slice == "2d")
                & (landscape.metric == "loss")
                & (landscape.split == "train")
            ]
        )
        == 2 * 3 * 25
    )
    density = read["density"]
    assert sorted(density.epoch.unique()) == [0, 2]
    barriers = read["barriers"]
    assert set(barriers.path) == {"linear", "aligned", "bezier", "aligned_bezier"}
    assert (barriers.barrier >= 0).all() and len(barriers) == 4 * 2 * 2  # one pair of seeds
    paths = read["paths"]
    assert sorted(paths[paths.path == "bezier"].t.unique()) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(read["plane"]) > 0
    bounds = read["bounds"]
    assert sorted(bounds[bounds.epoch == 2].seed.unique()) == [0, 1, 2]  # every final epoch
    assert bounds[bounds.seed == 2].value.isna().all()  # the failed run is left out
    bounds = bounds[bounds.seed < 2]
    final = bounds[bounds.epoch == 2]
    assert sorted(bounds[bounds.seed == 0].epoch.unique()) == [
        0,
        1,
        2,
    ]  # the tracked seed along training
    assert sorted(bounds[bounds.seed == 1].epoch.unique()) == [2]
    assert set(final.quantity) == {
        "test_error",
        "train_error",
        "proxy",
        "jiang_sharpness",
        "jiang_magnitude_aware",
        "certificate_centered",
        "stochastic_test_error_centered",
        "certificate_optimized",
        "stochastic_test_error_optimized",
    }
    assert "certificate_optimized" not in set(bounds[bounds.epoch < 2].quantity)
    certificates = bounds[bounds.quantity.str.startswith("certificate")]
    assert certificates.value.between(0, 1).all() and (certificates.delta == 0.025).all()
    assert set(certificates[certificates.epoch == 2].mc_samples) == {20}  # the smoke preset's m
    assert set(certificates[certificates.epoch < 2].mc_samples) == {5}
    assert set(certificates[certificates.quantity == "certificate_optimized"].n) == {
        300
    }  # half for the prior
    terms = read["bound_terms"]
    assert {"mc_seed", "mc_passes", "trials", "kl", "grid_size", "confidence"} <= set(terms.term)
    meta = json.loads((tables / "curvature.csv.meta.json").read_text())
    assert meta["config"]["top_k"] == 3 and "git_commit" in meta and meta["sources"]
    assert all(source["device"].startswith("cpu") for source in meta["sources"].values())


def test_notebooks_ran_without_errors(smoke_run):
    workdir, _ = smoke_run
    notebooks = workdir / "results" / "notebooks"
    for path in notebooks.glob("*.ipynb"):
        notebook = json.loads(path.read_text())
        errors = [
            o
            for c in notebook["cells"]
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, path.name
        html = (notebooks / f"{path.stem}.html").read_text()
        assert "Traceback (most recent call last)" not in html and "Error</span>" not in html, (
            path.name
        )
    notebook = json.loads((notebooks / "training_curves.ipynb").read_text())
    injected = [
        c
        for c in notebook["cells"]
        if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    ]
    assert injected and "results/tables/training.csv" in "".join(injected[0]["source"])
    figures = [
        o
        for c in notebook["cells"]
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert figures, "the figure is shown in the notebook"


def test_one_figure_rebuilds_alone(smoke_run):
    workdir, _ = smoke_run
    target = workdir / "results" / "figures" / "spectral_density.png"
    target.unlink()
    result = snakemake(workdir, "results/figures/spectral_density.png")
    assert target.exists()
    assert "train" not in re.findall(r"^(\w+)\s+\d+$", result.stdout + result.stderr, flags=re.M)


@pytest.mark.parametrize(
    "config,message",
    [
        ({"experiments": {"report_mlp": {"optimizer": {"lr": -1}}}}, "lr"),
        ({"bounds": {"track_seed": 7}}, "bounds.track_seed: 7 is not among the configured seeds"),
        (
            {"bounds": {"delta": 0.5, "delta_prime": 0.5}},
            "bounds.delta + bounds.delta_prime must be below 1",
        ),
        ({"bounds": {"mc_samples": 0}}, "mc_samples"),
        (
            {"experiments": {"report_mlp": {"dataset": "cifar10"}}},
            "experiments.report_mlp.dataset: 'cifar10' is unknown",
        ),
        (
            {"experiments": {"report_mlp": {"model": {"num_classes": 20}}}},
            "experiments.report_mlp.model.num_classes is 20, but mnist needs 10",
        ),
        ({"data": {"mirrors": {"mnsit": "/x"}}}, "data.mirrors.mnsit: unknown dataset"),
        ({"landscape": {"span": float("nan")}}, "landscape.span: nan is not a finite number"),
        (
            {"experiments": {"report_mlp": {"batch_size": 60001}}},
            "experiments.report_mlp.batch_size: 60001 is larger than the mnist training set",
        ),
        (
            {"curvture": {"top_k": 3}},
            "config key 'curvture' is not allowed at the top level; allowed: architectures, "
            "bounds, connectivity, curvature, data, density, device, dynamics, experiments, "
            "landscape, measure_threads, seeds",
        ),
        (
            {"dynamics": {"eos": {"runs": {"tanh_mse": {"factors": [1.0]}}}}},
            "dynamics.eos.runs.tanh_mse.factors[0]: 1.0 is less than or equal to the minimum of 1",
        ),
        (
            {"dynamics": {"temperature": {"lrs": []}}},
            "dynamics.temperature.lrs: [] should be non-empty",
        ),
        (
            {"dynamics": {"noise": {"subset": 60001}}},
            "dynamics.noise.subset: 60001 is larger than the training set (60000)",
        ),
        (
            {
                "data": {
                    "checksums": {
                        "mnist": {
                            "train-images-idx3-ubyte.gz": "0" * 32,
                            "train-labels-idx1-ubyte.gz": "0" * 32,
                            "t10k-images-idx3-ubyte.gz": "0" * 32,
                        }
                    }
                }
            },
            "data.checksums.mnist must name exactly the four mnist files ['t10k-images-idx3-"
            "ubyte.gz', 't10k-labels-idx1-ubyte.gz', 'train-images-idx3-ubyte.gz', "
            "'train-labels-idx1-ubyte.gz']; missing ['t10k-labels-idx1-ubyte.gz']",
        ),
        (
            {"data": {"mirrors": {"mnist": "/nonexistent/lossgeom-mirror"}}},
            "data.mirrors.mnist: the mirror folder /nonexistent/lossgeom-mirror does not exist",
        ),
        (
            {"experiments": {"report_mlp": {"model": {"norm": "batchnorm"}}}},
            "experiments.report_mlp.model.norm: batchnorm cannot be used with the bounds stage",
        ),
        (
            {"seeds": [0]},
            "seeds: connectivity and the pair tables need at least two seeds, got [0]",
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, synthetic_mirror, config, message):
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "all", check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_lint_reports_nothing_serious():
    result = subprocess.run(
        [*SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def gpu_rules() -> set[str]:
    """Rules whose definition asks for the accelerator (``gpu=GPU_JOB``)."""
    rules = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            if "gpu=GPU_JOB" in block:
                rules.add(block.split(":", 1)[0].strip())
    return rules


def test_slurm_profile_routes_every_gpu_rule():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    routed = {
        rule
        for rule, resources in profile["set-resources"].items()
        if resources.get("gpu") == 1 and resources.get("slurm_partition") == "gpu"
    }
    wanted = gpu_rules()
    assert {"train", "curvature", "connectivity", "bounds"} <= wanted
    assert wanted <= routed, (
        f"GPU rules missing from profiles/slurm/config.yaml: {sorted(wanted - routed)}"
    )
    for rule in wanted:  # time, memory and CPUs set in the profile for every one of them
        assert {"runtime", "mem_mb"} <= set(profile["set-resources"][rule]), rule
        assert profile["set-threads"][rule] >= 1, rule
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(profile["default-resources"])


def test_a_failed_run_is_named_everywhere_and_the_report_completes(smoke_run):
    workdir, _ = smoke_run
    index = (workdir / "results" / "index.html").read_text()
    assert "1 of 3 runs did not complete</b>: report_mlp seed 2 (failed_to_train)" in index
    for name in ("training_curves", "landscape_2d", "connectivity_paths", "bounds_seeds"):
        assert f'<img src="figures/{name}.png"' in index
    note = "Left out (1 of 3 runs): report_mlp seed 2 failed_to_train (final training loss"
    # The architecture study trains its own networks: its notebooks read no runs table.
    study = {"architecture_depth", "architecture_spectra", "nonconvexity_maps",
             "architecture_barriers", "measure_ranking", "difficulty_prediction",
             "reparametrisation", "four_questions"}  # fmt: skip
    pages = [p for p in (workdir / "results" / "notebooks").glob("*.html") if p.stem not in study]
    assert len(pages) == 12
    for page in pages:
        assert note in page.read_text(), page.name
    log = (workdir / "logs" / "curvature" / "report_mlp_seed2_epoch1.log").read_text()
    assert "the run failed to train (final training loss" in log


def _copy(smoke_run, tmp_path):
    import shutil

    workdir, _ = smoke_run
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    return copy


def test_a_deleted_weight_file_is_named_before_any_job(smoke_run, tmp_path):
    copy = _copy(smoke_run, tmp_path)
    weights = copy / "results" / "runs" / "report_mlp" / "seed0" / "weights"
    (weights / "epoch1.pt").unlink()
    result = snakemake(copy, "-n", "all", check=False)
    assert result.returncode != 0
    assert "weights/epoch1.pt missing, but the run finished" in result.stderr + result.stdout


def test_a_failing_job_leaves_no_output_or_sidecar(smoke_run, tmp_path):
    from tests.conftest import flip_stored_byte

    copy = _copy(smoke_run, tmp_path)
    run = copy / "results" / "runs" / "report_mlp" / "seed0"
    flip_stored_byte(run / "weights" / "epoch1.pt", "data/0", offset=2)
    target = "results/runs/report_mlp/seed0/curvature/epoch1.csv"
    result = snakemake(copy, "--force", target, check=False)
    assert result.returncode != 0
    log = (copy / "logs" / "curvature" / "report_mlp_seed0_epoch1.log").read_text()
    assert "weights/epoch1.pt: content checksum mismatch" in log
    assert not (copy / target).exists() and not (copy / f"{target}.meta.json").exists()


def test_the_mirror_source_and_cli_lists_change_nothing(smoke_run, synthetic_mirror, tmp_path):
    workdir, _ = smoke_run
    folder, checksums = synthetic_mirror
    settings = yaml.safe_load((workdir / "test.yaml").read_text())
    del settings["data"]["mirrors"]  # the mirror now comes from the environment variable
    (workdir / "env.yaml").write_text(yaml.safe_dump(settings))
    result = snakemake(workdir, "-n", "all", config="env.yaml", LOSSGEOM_MNIST_MIRROR=str(folder))
    planned = re.findall(r"^(\w+)\s+\d+$", result.stdout + result.stderr, flags=re.M)
    assert set(planned) <= {"index", "all", "total"}, planned  # the index names the config files
    # --config lists arrive as YAML, not as strings the schema would refuse.
    result = snakemake(workdir, "-n", "all", "--config", "seeds=[0, 1, 2]")
    planned = re.findall(r"^(\w+)\s+\d+$", result.stdout + result.stderr, flags=re.M)
    assert set(planned) <= {"index", "all", "total"}, planned  # another test redrew a figure


def test_the_readme_library_snippets_run(smoke_run):
    workdir, _ = smoke_run
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 2
    code = "\n".join(blocks).replace("epoch5.pt", "epoch2.pt")  # the smoke preset trains 2 epochs
    code += "\nassert 0 <= cert.value <= 1 and top.values[0] >= top.values[1]\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_select_experiments_runs_only_the_named_ones(tmp_path, synthetic_mirror):
    folder, checksums = synthetic_mirror
    config = {
        "data": {"mirrors": {"mnist": str(folder)}, "checksums": {"mnist": checksums}},
        "experiments": {"tiny": {"model": {"hidden": [8]}, "epochs": 1}},
        "select_experiments": ["tiny"],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "all")
    planned = result.stdout + result.stderr
    assert "experiment=tiny" in planned and "report_mlp" not in planned
