rule mnist:
    input:
        script=script("prepare_data.py"),
    output:
        DATA,
    log:
        "logs/data/mnist.log",
    params:
        root=lambda w, output: os.path.dirname(output[0]),
        mirror=f"--mirror {shlex.quote(config['data']['mirror'])}" if config["data"]["mirror"] else "",
        checksums=f"--checksums {quoted_json(config['data']['checksums'])}" if config["data"]["checksums"] else "",
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --root {params.root} --output {output} "
        "{params.mirror} {params.checksums} > {log} 2>&1"
