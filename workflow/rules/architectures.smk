# The architecture study (report question 2): every job (an MLP family's depths, or one named
# model) trains its architectures' seeds on a training subset and measures their geometry
# (scripts/architecture.py).


rule architecture:
    input:
        script=script("architecture.py"),
        data=ARCH_DATA,
    output:
        **{table: f"{ARCH_OUT}/{table}.csv" for table in ARCH_TABLES},
        **{f"{table}_meta": f"{ARCH_OUT}/{table}.csv.meta.json" for table in ARCH_TABLES},
    log:
        "logs/architectures/{job}.log",
    params:
        common=ARCH_FLAGS,
        entries=arch_entries,
        checkpoints="results/checkpoints/architectures",
    wildcard_constraints:
        job="[A-Za-z][A-Za-z0-9_]*",
    threads: ARCH["threads"]
    priority: arch_priority
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} --entries {params.entries} "
        "--checkpoint-dir {params.checkpoints} "
        "--output {output.architectures} --curvature-output {output.architecture_curvature} "
        "--density-output {output.architecture_density} "
        "--barriers-output {output.architecture_barriers} "
        "--nonconvexity-output {output.nonconvexity} > {log} 2>&1"


rule architecture_table:
    input:
        script=script("collect_tables.py"),
        tables=lambda w: arch_files(w.table),
    output:
        table="results/tables/{table}.csv",
        meta="results/tables/{table}.csv.meta.json",
    log:
        "logs/tables/{table}.log",
    params:
        config=quoted_json(ARCH),
    wildcard_constraints:
        table="|".join(ARCH_TABLES),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
