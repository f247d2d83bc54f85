rule bounds:
    input:
        script=script("bounds.py"),
        data=experiment_data,
        weights=weights_folder(epoch_weights, initial_weights),
        curvature=f"{RUN}/curvature/epoch{{epoch}}.csv",
    output:
        table=f"{RUN}/bounds/epoch{{epoch}}.csv",
        terms=f"{RUN}/bounds/epoch{{epoch}}_terms.csv",
        meta=multiext(f"{RUN}/bounds/epoch{{epoch}}", ".csv.meta.json", "_terms.csv.meta.json"),
    log:
        "logs/bounds/{experiment}_seed{seed}_epoch{epoch}.log",
    params:
        common=common_flags,
        subset=SUBSET_FLAGS,
        weights=epoch_weights,
        initial=initial_weights,
        bounds=bounds_flags,
    # One thread, two jobs at a time: 16.2 against 18.1 min for the replication stages. Every
    # measure but the optimised posterior's came out equal to the two-thread run's; that
    # posterior trains 25 epochs, so its certificate moved by up to 2.4% (seed 0: 0.0262 to
    # 0.0256), about one seed-to-seed standard deviation (README, "Results on this machine").
    threads: config["measure_threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.subset} "
        "{params.bounds} --weights {params.weights} --initial {params.initial} "
        "--curvature {input.curvature} --output {output.table} --terms {output.terms} "
        "> {log} 2>&1"


rule bounds_table:
    input:
        script=script("collect_tables.py"),
        tables=lambda w: bounds_files(BOUNDS_OUTPUTS[w.table]),
    output:
        table="results/tables/{table}.csv",
        meta="results/tables/{table}.csv.meta.json",
    log:
        "logs/tables/{table}.log",
    params:
        config=quoted_json(BOUNDS),
    wildcard_constraints:
        table="bounds|bound_terms",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
