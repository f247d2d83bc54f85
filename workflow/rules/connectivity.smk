rule connectivity:
    input:
        script=script("connectivity.py"),
        data=DATA,
        weights_a=lambda w: f"results/runs/{w.experiment}/seed{w.seed_a}/weights",
        weights_b=lambda w: f"results/runs/{w.experiment}/seed{w.seed_b}/weights",
    output:
        paths=f"{PAIR}/paths.csv",
        barriers=f"{PAIR}/barriers.csv",
        plane=f"{PAIR}/plane.csv",
        bends=f"{PAIR}/bends.pt",
    log:
        "logs/connectivity/{experiment}_seed{seed_a}-seed{seed_b}.log",
    params:
        common=COMMON_FLAGS,
        subset=SUBSET_FLAGS,
        a=lambda w: pair_weights(w, "a"),
        b=lambda w: pair_weights(w, "b"),
        aligned="--aligned-curve" if CONNECTIVITY["aligned_curve"] else "",
        checkpoints=lambda w: f"results/checkpoints/{w.experiment}/pairs/seed{w.seed_a}-seed{w.seed_b}",
        c=CONNECTIVITY,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {params.common} {params.subset} --threads {threads} "
        "--weights-a {params.a} --weights-b {params.b} --n-points {params.c[n_points]} "
        "--extrapolate {params.c[extrapolate]} --curve-points {params.c[curve_points]} "
        "--curve-epochs {params.c[curve_epochs]} --curve-optimizer {params.c[curve_optimizer]} "
        "--curve-lr {params.c[curve_lr]} "
        "--curve-momentum {params.c[curve_momentum]} "
        "--curve-batch-size {params.c[curve_batch_size]} --curve-seed {params.c[curve_seed]} "
        "{params.aligned} --plane-resolution {params.c[plane_resolution]} "
        "--plane-margin {params.c[plane_margin]} --checkpoint-dir {params.checkpoints} "
        "--paths {output.paths} --barriers {output.barriers} --plane {output.plane} "
        "--bends {output.bends} > {log} 2>&1"


rule connectivity_table:
    input:
        script=script("collect_tables.py"),
        tables=lambda w: pair_files(f"{PAIR}/{w.table}.csv"),
    output:
        "results/tables/{table}.csv",
    log:
        "logs/tables/{table}.log",
    params:
        config=quoted_json(CONNECTIVITY),
    wildcard_constraints:
        table="paths|barriers|plane",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output} --config {params.config} "
        "--inputs {input.tables} > {log} 2>&1"
