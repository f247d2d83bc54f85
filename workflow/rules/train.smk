rule train:
    input:
        script=script("train.py"),
        data=experiment_data,
    output:
        metrics=f"{RUN}/metrics.csv",
        info=f"{RUN}/run.json",
        meta=f"{RUN}/metrics.csv.meta.json",
        weights=directory(f"{RUN}/weights"),
    log:
        "logs/train/{experiment}_seed{seed}.log",
    params:
        common=common_flags,
        spec=spec_json,
        checkpoints=checkpoint_root,
        check=cli_flags(config["training_check"]),
    threads: config["threads"]
    # The runs train first: a two-thread job waits until both cores are free, and with the
    # one-thread jobs of the first run filling them the other runs started minutes late.
    # Snakemake's ILP scheduler weighs the sum of the priorities it starts at once, so 3 beats
    # any two of the priority-1 jobs (slices, final curvature) that are ready alongside.
    priority: 3
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} "
        "--experiment {wildcards.experiment} --seed {wildcards.seed} --spec {params.spec} "
        "--checkpoint-dir {params.checkpoints} {params.check} --metrics {output.metrics} "
        "--weights-dir {output.weights} --run-info {output.info} > {log} 2>&1"


rule training_table:
    input:
        script=script("collect_tables.py"),
        tables=run_files(f"{RUN}/metrics.csv"),
    output:
        table="results/tables/training.csv",
        meta="results/tables/training.csv.meta.json",
    log:
        "logs/tables/training.log",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --inputs {input.tables} > {log} 2>&1"


rule runs_table:
    input:
        script=script("collect_tables.py"),
        runs=run_files(f"{RUN}/run.json"),
    output:
        table="results/tables/runs.csv",
        meta="results/tables/runs.csv.meta.json",
    log:
        "logs/tables/runs.log",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --inputs {input.runs} > {log} 2>&1"
