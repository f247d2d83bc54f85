rule landscape:
    input:
        script=script("landscape.py"),
        data=experiment_data,
        weights=weights_folder(final_weights),
        eigenvectors=final_eigenvectors,
    output:
        table=f"{RUN}/landscape/{{kind}}.csv",
        directions=f"{RUN}/landscape/{{kind}}_directions.pt",
        meta=f"{RUN}/landscape/{{kind}}.csv.meta.json",
    log:
        "logs/landscape/{experiment}_seed{seed}_{kind}.log",
    params:
        common=common_flags,
        subset=SUBSET_FLAGS,
        weights=final_weights,
        eigenvectors=lambda w, input: f"--eigenvectors {input.eigenvectors}" if input.eigenvectors else "",
        landscape=cli_flags(LANDSCAPE, exclude=("directions", "direction_seed")),
        # Each seed's directions get their own seed, derived from the configured one.
        seed=lambda w: LANDSCAPE["direction_seed"] + 7919 * int(w.seed),
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.subset} "
        "{params.landscape} --direction-seed {params.seed} --weights {params.weights} "
        "--kind {wildcards.kind} {params.eigenvectors} --output {output.table} "
        "--directions-out {output.directions} > {log} 2>&1"


rule landscape_table:
    input:
        script=script("collect_tables.py"),
        tables=run_files(f"{RUN}/landscape/{{kind}}.csv", kind=LANDSCAPE["directions"]),
    output:
        table="results/tables/landscape.csv",
        meta="results/tables/landscape.csv.meta.json",
    log:
        "logs/tables/landscape.log",
    params:
        config=quoted_json(LANDSCAPE),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
