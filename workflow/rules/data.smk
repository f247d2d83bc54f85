rule prepare_data:
    input:
        script=script("prepare_data.py"),
    output:
        data=f"{DATA_ROOT}/{{dataset}}/{{dataset}}.pt",
        meta=f"{DATA_ROOT}/{{dataset}}/{{dataset}}.pt.meta.json",
    log:
        "logs/data/{dataset}.log",
    params:
        root=lambda w, output: os.path.dirname(output[0]),
        checksums=lambda w: (
            f"--checksums {quoted_json(config['data']['checksums'][w.dataset])}"
            if (config["data"]["checksums"] or {}).get(w.dataset)
            else ""
        ),
    wildcard_constraints:
        dataset="|".join(DATASETS),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --dataset {wildcards.dataset} --root {params.root} "
        "--output {output.data} {params.checksums} > {log} 2>&1"
