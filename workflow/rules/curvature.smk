rule curvature:
    input:
        script=script("curvature.py"),
        data=DATA,
        weights=f"{RUN}/weights",
    output:
        table=f"{RUN}/curvature/epoch{{epoch}}.csv",
        vectors=f"{RUN}/curvature/epoch{{epoch}}_eigenvectors.pt",
    log:
        "logs/curvature/{experiment}_seed{seed}_epoch{epoch}.log",
    params:
        common=COMMON_FLAGS,
        subset=SUBSET_FLAGS,
        weights=epoch_weights,
        c=CURVATURE,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} {params.subset} --threads {threads} "
        "--chunk-size {params.c[chunk_size]} --weights {params.weights} "
        "--top-k {params.c[top_k]} --method {params.c[method]} --tol {params.c[tol]} "
        "--trace-method {params.c[trace_method]} --trace-matvecs {params.c[trace_matvecs]} "
        "--seed {params.c[seed]} --output {output.table} --vectors {output.vectors} > {log} 2>&1"


rule spectral_density:
    input:
        script=script("spectral_density.py"),
        data=DATA,
        weights=f"{RUN}/weights",
    output:
        f"{RUN}/density/epoch{{epoch}}.csv",
    log:
        "logs/density/{experiment}_seed{seed}_epoch{epoch}.log",
    params:
        common=COMMON_FLAGS,
        subset=SUBSET_FLAGS,
        weights=epoch_weights,
        chunk_size=CURVATURE["chunk_size"],
        d=DENSITY,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} {params.subset} --threads {threads} "
        "--chunk-size {params.chunk_size} --weights {params.weights} "
        "--n-iter {params.d[n_iter]} --n-runs {params.d[n_runs]} --n-grid {params.d[n_grid]} "
        "--seed {params.d[seed]} --output {output} > {log} 2>&1"


rule curvature_table:
    input:
        script=script("collect_tables.py"),
        tables=epoch_files(f"{RUN}/curvature/epoch{{epoch}}.csv"),
    output:
        "results/tables/curvature.csv",
    log:
        "logs/tables/curvature.log",
    params:
        config=quoted_json(CURVATURE),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"


rule density_table:
    input:
        script=script("collect_tables.py"),
        tables=epoch_files(f"{RUN}/density/epoch{{epoch}}.csv", which="first_last"),
    output:
        "results/tables/density.csv",
    log:
        "logs/tables/density.log",
    params:
        config=quoted_json(DENSITY),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
