# The generalisation-measure sweep (report questions 3 and 4): every job trains a small group of
# the grid's models to the stopping criterion and measures them (scripts/sweep.py); the rows
# are gathered into results/tables/sweep.csv.


rule sweep_group:
    input:
        script=script("sweep.py"),
        data=lambda w: sorted({data_file(m.dataset) for m in SWEEP_JOBS[w.group]}),
    output:
        table="results/sweep/{group}.csv",
        meta="results/sweep/{group}.csv.meta.json",
    log:
        "logs/sweep/{group}.log",
    params:
        data=lambda w: " ".join(sorted({f"{m.dataset}={data_file(m.dataset)}"
                                        for m in SWEEP_JOBS[w.group]})),
        models=lambda w: quoted_json([dataclasses.asdict(m) for m in SWEEP_JOBS[w.group]]),
        settings=quoted_json(SWEEP["settings"]),
        bounds=quoted_json(SWEEP_BOUNDS),
        device=config["device"],
        subset_seed=SWEEP["subset_seed"],
    wildcard_constraints:
        group="g[0-9]+",
    threads: SWEEP["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --data {params.data} --device {params.device} "
        "--threads {threads} --models {params.models} --settings {params.settings} "
        "--bounds {params.bounds} --subset-seed {params.subset_seed} "
        "--output {output.table} > {log} 2>&1"


rule sweep_table:
    input:
        script=script("collect_tables.py"),
        tables=expand("results/sweep/{group}.csv", group=SWEEP_JOBS),
    output:
        table="results/tables/sweep.csv",
        meta="results/tables/sweep.csv.meta.json",
    log:
        "logs/tables/sweep.log",
    params:
        config=quoted_json(SWEEP),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"


rule sweep_analysis:
    input:
        script=script("sweep_analysis.py"),
        sweep="results/tables/sweep.csv",
    output:
        correlations="results/tables/measure_correlations.csv",
        by_axis="results/tables/measure_correlations_by_axis.csv",
        prediction="results/tables/prediction.csv",
        meta=[f"results/tables/{t}.csv.meta.json" for t in SWEEP_ANALYSIS],
    log:
        "logs/tables/sweep_analysis.log",
    params:
        config=quoted_json(SWEEP),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --sweep {input.sweep} --config {params.config} "
        "--correlations {output.correlations} --by-axis {output.by_axis} "
        "--prediction {output.prediction} > {log} 2>&1"


rule reparametrisation:
    input:
        script=script("reparametrisation.py"),
        data=data_file(SWEEP["axes"]["dataset"][0]),
    output:
        table="results/tables/reparametrisation.csv",
        meta="results/tables/reparametrisation.csv.meta.json",
    log:
        "logs/tables/reparametrisation.log",
    params:
        config=quoted_json(SWEEP),
        bounds=quoted_json(SWEEP_BOUNDS),
        device=config["device"],
    threads: SWEEP["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --data {input.data} --device {params.device} --threads {threads} "
        "--config {params.config} --bounds {params.bounds} --output {output.table} > {log} 2>&1"
