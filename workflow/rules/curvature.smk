rule curvature:
    input:
        script=script("curvature.py"),
        data=experiment_data,
        weights=weights_folder(epoch_weights),
    output:
        table=f"{RUN}/curvature/epoch{{epoch}}.csv",
        vectors=f"{RUN}/curvature/epoch{{epoch}}_eigenvectors.pt",
        meta=f"{RUN}/curvature/epoch{{epoch}}.csv.meta.json",
    log:
        "logs/curvature/{experiment}_seed{seed}_epoch{epoch}.log",
    params:
        common=common_flags,
        weights=epoch_weights,
        curvature=cli_flags(CURVATURE),
    threads: config["measure_threads"]
    # The final epoch's vectors feed the slice jobs (rule landscape), which go first.
    priority: lambda w: int(int(w.epoch) == epochs(w.experiment))
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.curvature} "
        "--weights {params.weights} --output {output.table} --vectors {output.vectors} > {log} 2>&1"


rule spectral_density:
    input:
        script=script("spectral_density.py"),
        data=experiment_data,
        weights=weights_folder(epoch_weights),
    output:
        table=f"{RUN}/density/epoch{{epoch}}.csv",
        meta=f"{RUN}/density/epoch{{epoch}}.csv.meta.json",
    log:
        "logs/density/{experiment}_seed{seed}_epoch{epoch}.log",
    params:
        common=common_flags,
        subset=SUBSET_FLAGS,
        weights=epoch_weights,
        density=cli_flags({**DENSITY, "chunk_size": CURVATURE["chunk_size"]}),
    threads: config["measure_threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.subset} "
        "{params.density} --weights {params.weights} --output {output.table} > {log} 2>&1"


rule curvature_table:
    input:
        script=script("collect_tables.py"),
        tables=epoch_files(f"{RUN}/curvature/epoch{{epoch}}.csv"),
    output:
        table="results/tables/curvature.csv",
        meta="results/tables/curvature.csv.meta.json",
    log:
        "logs/tables/curvature.log",
    params:
        config=quoted_json(CURVATURE),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"


rule density_table:
    input:
        script=script("collect_tables.py"),
        tables=epoch_files(f"{RUN}/density/epoch{{epoch}}.csv", which="first_last"),
    output:
        table="results/tables/density.csv",
        meta="results/tables/density.csv.meta.json",
    log:
        "logs/tables/density.log",
    params:
        config=quoted_json(DENSITY),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
