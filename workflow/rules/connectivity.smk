rule connectivity:
    input:
        script=script("connectivity.py"),
        data=experiment_data,
        weights_a=weights_folder(lambda w: pair_weights(w, "a")),
        weights_b=weights_folder(lambda w: pair_weights(w, "b")),
    output:
        paths=f"{PAIR}/paths.csv",
        barriers=f"{PAIR}/barriers.csv",
        plane=f"{PAIR}/plane.csv",
        bends=f"{PAIR}/bends.pt",
        meta=multiext(f"{PAIR}/", "paths.csv.meta.json", "barriers.csv.meta.json", "plane.csv.meta.json"),
    log:
        "logs/connectivity/{experiment}_seed{seed_a}-seed{seed_b}.log",
    params:
        common=common_flags,
        subset=SUBSET_FLAGS,
        a=lambda w: pair_weights(w, "a"),
        b=lambda w: pair_weights(w, "b"),
        connectivity=cli_flags(CONNECTIVITY, exclude=("pairs",)),
        checkpoints=pair_checkpoints,
    # One thread like the other measuring jobs: a two-thread job waits for both cores to be
    # free at once, and the one-thread jobs kept one of them busy (94 s with a core idle in the
    # replication run of 2026-11-30). Its Bezier bends then train on one thread.
    threads: config["measure_threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} --threads {threads} {params.subset} "
        "{params.connectivity} --weights-a {params.a} --weights-b {params.b} "
        "--checkpoint-dir {params.checkpoints} --paths {output.paths} "
        "--barriers {output.barriers} --plane {output.plane} --bends {output.bends} > {log} 2>&1"


rule connectivity_table:
    input:
        script=script("collect_tables.py"),
        tables=lambda w: pair_files(f"{PAIR}/{w.table}.csv"),
    output:
        table="results/tables/{table}.csv",
        meta="results/tables/{table}.csv.meta.json",
    log:
        "logs/tables/{table}.log",
    params:
        config=quoted_json(CONNECTIVITY),
    wildcard_constraints:
        table="paths|barriers|plane",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output.table} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
