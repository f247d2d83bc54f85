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
    # Its prior and posterior train only briefly: on one thread a final-epoch job's certificates
    # came out equal to those on two (the optimised one within 2e-8), and two one-thread jobs
    # side by side took 81 s against 113 s one after the other on two threads.
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
