rule prepare_data:
    input:
        script=script("prepare_data.py"),
    output:
        f"{DATA_ROOT}/{{dataset}}/{{dataset}}.pt",
    log:
        "logs/data/{dataset}.log",
    params:
        root=lambda w, output: os.path.dirname(output[0]),
        mirror=lambda w: (
            f"--mirror {shlex.quote(config['data']['mirrors'][w.dataset])}"
            if config["data"]["mirrors"].get(w.dataset)
            else ""
        ),
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
        "--output {output} {params.mirror} {params.checksums} > {log} 2>&1"
