rule bounds:
    input:
        script=script("bounds.py"),
        data=DATA,
        weights=f"{RUN}/weights",
        curvature=f"{RUN}/curvature/epoch{{epoch}}.csv",
    output:
        table=f"{RUN}/bounds/epoch{{epoch}}.csv",
        terms=f"{RUN}/bounds/epoch{{epoch}}_terms.csv",
    log:
        "logs/bounds/{experiment}_seed{seed}_epoch{epoch}.log",
    params:
        common=COMMON_FLAGS,
        subset=SUBSET_FLAGS,
        weights=epoch_weights,
        initial=lambda w: f"results/runs/{w.experiment}/seed{w.seed}/weights/epoch0.pt",
        final=bounds_final_flags,
        b=BOUNDS,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} {params.subset} --threads {threads} "
        "--weights {params.weights} --initial {params.initial} --curvature {input.curvature} "
        "--eps {params.b[eps]} --jiang-target {params.b[jiang_target]} "
        "--jiang-upper {params.b[jiang_upper]} --jiang-steps {params.b[jiang_steps]} "
        "--jiang-samples {params.b[jiang_samples]} --jiang-eps {params.b[jiang_eps]} "
        "--delta {params.b[delta]} --delta-prime {params.b[delta_prime]} "
        "--select-samples {params.b[select_samples]} --sigma-min {params.b[sigma_min]} "
        "--sigma-max {params.b[sigma_max]} --sigma-grid {params.b[sigma_grid]} "
        "--seed {params.b[seed]} --chunk-size {params.b[chunk_size]} "
        "--sample-convergence {params.b[sample_convergence]} {params.final} "
        "--output {output.table} --terms {output.terms} > {log} 2>&1"


rule bounds_table:
    input:
        script=script("collect_tables.py"),
        tables=lambda w: bounds_files(BOUNDS_OUTPUTS[w.table]),
    output:
        "results/tables/{table}.csv",
    log:
        "logs/tables/{table}.log",
    params:
        config=quoted_json(BOUNDS),
    wildcard_constraints:
        table="bounds|bound_terms",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
