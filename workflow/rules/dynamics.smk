# The optimisation-dynamics study (report question 1): edge of stability, SGD noise geometry,
# escape from a sharp minimum, SGD temperature. Each part can be switched off in the config.
DYNAMICS = config["dynamics"]
EOS = DYNAMICS["eos"]
NOISE = DYNAMICS["noise"]
ESCAPE = DYNAMICS["escape"]
TEMPERATURE = DYNAMICS["temperature"]
DYNAMICS_DATA = data_file(DYNAMICS["dataset"])
DYNAMICS_FLAGS = f"--data {DYNAMICS_DATA} --dataset {DYNAMICS['dataset']} --device {config['device']}"
EOS_RUN = "results/dynamics/eos/{name}/c{factor}.csv"


def factor_label(factor):
    return f"{factor:g}"


def eos_files():
    return [EOS_RUN.format(name=name, factor=factor_label(f))
            for name, run in EOS["runs"].items() for f in run["factors"]]


def noise_experiments():
    """The experiments whose checkpoints the noise stage measures (checked at parse time)."""
    names = NOISE["experiments"]
    if names is None:
        return list(EXPERIMENTS)
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"dynamics.noise.experiments names {unknown}, which are not among the "
                         f"experiments that run {sorted(EXPERIMENTS)}")
    return names


NOISE_EXPERIMENTS = noise_experiments()


def noise_files():
    return [f"{run_path(e, s)}/noise.csv" for e in NOISE_EXPERIMENTS for s in SEEDS]


def eos_flags(wildcards):
    run = EOS["runs"][wildcards.name]
    settings = {k: EOS[k] for k in ("subset", "subset_seed", "seed", "measure_every",
                                    "lanczos_iter", "tol", "chunk_size", "edge")}
    settings["stop_after_edge"] = json.dumps(EOS["stop_after_edge"])
    settings.update(model=run["model"], loss=run["loss"], momentum=run["momentum"],
                    steps=run["steps"] or EOS["steps"])
    return f"{cli_flags(settings)} --factor {wildcards.factor}"


rule eos:
    input:
        script=script("eos.py"),
        data=DYNAMICS_DATA,
    output:
        table=EOS_RUN,
        meta=EOS_RUN + ".meta.json",
    log:
        "logs/dynamics/eos_{name}_c{factor}.log",
    params:
        flags=eos_flags,
    wildcard_constraints:
        name="[A-Za-z][A-Za-z0-9_]*",
        factor=r"[0-9][0-9.e+-]*",
    threads: DYNAMICS["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {DYNAMICS_FLAGS} --threads {threads} --experiment {wildcards.name} "
        "{params.flags} --output {output.table} > {log} 2>&1"


rule noise:
    input:
        script=script("noise.py"),
        data=experiment_data,
        weights=f"{RUN}/weights",
    output:
        table=f"{RUN}/noise.csv",
        meta=f"{RUN}/noise.csv.meta.json",
    log:
        "logs/dynamics/noise_{experiment}_seed{seed}.log",
    params:
        common=common_flags,
        epochs=lambda w: epochs(w.experiment),
        flags=cli_flags({k: v for k, v in NOISE.items() if k not in ("enabled", "experiments")}),
        hessian_seed=CURVATURE["subset_seed"],
    threads: DYNAMICS["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.flags} "
        "--hessian-seed {params.hessian_seed} --weights-dir {input.weights} --epochs {params.epochs} "
        "--output {output.table} > {log} 2>&1"


rule escape:
    input:
        script=script("escape.py"),
        data=DYNAMICS_DATA,
    output:
        table="results/dynamics/escape/seed{seed}.csv",
        meta="results/dynamics/escape/seed{seed}.csv.meta.json",
    log:
        "logs/dynamics/escape_seed{seed}.log",
    params:
        flags=cli_flags({k: json.dumps(v) if k == "lr" else v for k, v in ESCAPE.items()
                         if k not in ("enabled", "seeds", "name")}),
    threads: DYNAMICS["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {DYNAMICS_FLAGS} --threads {threads} --experiment {ESCAPE[name]} "
        "{params.flags} --seed {wildcards.seed} --output {output.table} > {log} 2>&1"


rule temperature:
    input:
        script=script("temperature.py"),
        data=DYNAMICS_DATA,
    output:
        table="results/dynamics/temperature/batch{batch}.csv",
        meta="results/dynamics/temperature/batch{batch}.csv.meta.json",
    log:
        "logs/dynamics/temperature_batch{batch}.log",
    params:
        flags=cli_flags({k: v for k, v in TEMPERATURE.items() if k not in ("enabled", "batch_sizes")}),
        checkpoints="results/checkpoints/temperature/batch{batch}",
    wildcard_constraints:
        batch=r"\d+",
    threads: DYNAMICS["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {DYNAMICS_FLAGS} --threads {threads} {params.flags} "
        "--batch-size {wildcards.batch} --checkpoint-dir {params.checkpoints} "
        "--output {output.table} > {log} 2>&1"


# Stable tables: collected per-job tables, and the two summaries.
DYNAMICS_TABLES = {
    "eos": (EOS["enabled"], eos_files, EOS),
    "noise": (NOISE["enabled"], noise_files, NOISE),
    "escape": (ESCAPE["enabled"], lambda: [f"results/dynamics/escape/seed{s}.csv" for s in ESCAPE["seeds"]], ESCAPE),
    "temperature": (TEMPERATURE["enabled"], lambda: [f"results/dynamics/temperature/batch{b}.csv" for b in TEMPERATURE["batch_sizes"]], TEMPERATURE),
}


rule dynamics_table:
    input:
        script=script("collect_tables.py"),
        tables=lambda w: DYNAMICS_TABLES[w.table][1](),
    output:
        table="results/tables/{table}.csv",
        meta="results/tables/{table}.csv.meta.json",
    log:
        "logs/tables/{table}.log",
    params:
        config=lambda w: quoted_json(DYNAMICS_TABLES[w.table][2]),
    wildcard_constraints:
        table="|".join(DYNAMICS_TABLES),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"


rule dynamics_summary:
    input:
        script=script("summarise_dynamics.py"),
        table="results/tables/{table}.csv",
    output:
        table="results/tables/{table}_summary.csv",
        meta="results/tables/{table}_summary.csv.meta.json",
    log:
        "logs/tables/{table}_summary.log",
    params:
        flags=f"--edge {EOS['edge']} --escape-ratio {ESCAPE['escape_ratio']}",
    wildcard_constraints:
        table="eos|escape",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --input {input.table} --output {output.table} {params.flags} > {log} 2>&1"


# The report's own run (the first experiment) on the EoS figure: its sharpness against
# 2 (1 + beta) / eta.
REPORT_EXPERIMENT = next(iter(EXPERIMENTS))
if EOS["enabled"]:
    TABLES += ["results/tables/eos.csv", "results/tables/eos_summary.csv"]
    FIGURES["edge_of_stability"] = ["runs", "eos", "eos_summary", "curvature"]
    NOTEBOOK_SETTINGS["edge_of_stability"] = {
        "report_experiment": REPORT_EXPERIMENT,
        "report_lr": EXPERIMENTS[REPORT_EXPERIMENT]["optimizer"]["lr"],
        "report_momentum": EXPERIMENTS[REPORT_EXPERIMENT]["optimizer"]["momentum"],
    }
if NOISE["enabled"]:
    TABLES += ["results/tables/noise.csv"]
    FIGURES["noise_geometry"] = ["runs", "noise"]
if ESCAPE["enabled"]:
    TABLES += ["results/tables/escape.csv", "results/tables/escape_summary.csv"]
    FIGURES["escape"] = ["runs", "escape", "escape_summary"]
    NOTEBOOK_SETTINGS["escape"] = {"escape_ratio": ESCAPE["escape_ratio"]}
if TEMPERATURE["enabled"]:
    TABLES += ["results/tables/temperature.csv"]
    FIGURES["temperature"] = ["runs", "temperature"]
