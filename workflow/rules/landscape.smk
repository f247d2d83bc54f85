# The run's folder with its wildcards escaped, so that expand fills only {kind}.
RUN_ESCAPED = RUN.replace("{", "{{").replace("}", "}}")
KINDS = LANDSCAPE["directions"]


# One job per run evaluates every kind of direction in one pass over the data (the data loaded
# and each chunk's first-layer products computed once); each kind keeps its own table.
rule landscape:
    input:
        script=script("landscape.py"),
        data=experiment_data,
        weights=weights_folder(final_weights),
        # The final curvature vectors, when the hessian kind is among the directions.
        eigenvectors=lambda w: (
            f"{run_path(w.experiment, w.seed)}/curvature/epoch{epochs(w.experiment)}_eigenvectors.pt"
            if "hessian" in KINDS
            else []
        ),
    output:
        tables=expand(f"{RUN_ESCAPED}/landscape/{{kind}}.csv", kind=KINDS),
        directions=expand(f"{RUN_ESCAPED}/landscape/{{kind}}_directions.pt", kind=KINDS),
        meta=expand(f"{RUN_ESCAPED}/landscape/{{kind}}.csv.meta.json", kind=KINDS),
    log:
        "logs/landscape/{experiment}_seed{seed}.log",
    params:
        common=common_flags,
        subset=SUBSET_FLAGS,
        weights=final_weights,
        kinds=" ".join(KINDS),
        eigenvectors=lambda w, input: f"--eigenvectors {input.eigenvectors}" if input.eigenvectors else "",
        landscape=cli_flags(LANDSCAPE, exclude=("directions", "direction_seed")),
        # Each seed's directions get their own seed, derived from the configured one.
        seed=lambda w: LANDSCAPE["direction_seed"] + 7919 * int(w.seed),
    threads: config["measure_threads"]
    # Ahead of the other one-thread jobs (with the final curvature it needs): a slice job is the
    # longest of them, and started last it ran alone on one of two cores for minutes.
    priority: 1
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.subset} "
        "{params.landscape} --direction-seed {params.seed} --weights {params.weights} "
        "--kinds {params.kinds} {params.eigenvectors} --outputs {output.tables} "
        "--directions-outs {output.directions} > {log} 2>&1"


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
