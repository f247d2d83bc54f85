# The optimisation-dynamics study (report question 1): edge of stability, SGD noise geometry,
# escape from a sharp minimum, SGD temperature; settings and helpers are in common.smk.

rule eos:
    input:
        script=script("eos.py"),
        data=DYNAMICS_DATA,
    output:
        table=EOS_RUN,
        meta=f"{EOS_RUN}.meta.json",
    log:
        "logs/dynamics/eos_{name}_c{factor}.log",
    params:
        common=DYNAMICS_FLAGS,
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
        "python {input.script} {params.common} --threads {threads} --experiment {wildcards.name} "
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
        common=DYNAMICS_FLAGS,
        experiment=ESCAPE["name"],
        flags=cli_flags({k: json.dumps(v) if k == "lr" else v for k, v in ESCAPE.items()
                         if k not in ("enabled", "seeds", "name")}),
    threads: DYNAMICS["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} --experiment {params.experiment} "
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
        common=DYNAMICS_FLAGS,
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
        "python {input.script} {params.common} --threads {threads} {params.flags} "
        "--batch-size {wildcards.batch} --checkpoint-dir {params.checkpoints} "
        "--output {output.table} > {log} 2>&1"


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
