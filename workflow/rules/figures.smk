rule figure:
    input:
        script=script("run_notebook.py"),
        notebook=lambda w: notebook(w.name),
        tables=lambda w: expand("results/tables/{table}.csv", table=FIGURES[w.name]),
    output:
        png=report("results/figures/{name}.png", caption="../report/figure.rst", category="Figures"),
        pdf="results/figures/{name}.pdf",
        ipynb="results/notebooks/{name}.ipynb",
        html="results/notebooks/{name}.html",
    log:
        "logs/figures/{name}.log",
    params:
        parameters=notebook_parameters,
    wildcard_constraints:
        name="|".join(FIGURES),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} {input.notebook} --ipynb {output.ipynb} "
        "--html {output.html} {params.parameters} > {log} 2>&1"


rule index:
    input:
        script=script("make_index.py"),
        notebooks=expand("results/notebooks/{name}.html", name=FIGURES),
        figures=expand("results/figures/{name}.png", name=FIGURES),
        tables=TABLES,
        runs="results/tables/runs.csv",
    output:
        "results/index.html",
    log:
        "logs/figures/index.log",
    params:
        experiments=quoted_json({name: e["dataset"] for name, e in EXPERIMENTS.items()}),
        config_files=quoted_json(CONFIG_FILES),
        # What the results depend on: the config without the mirrors (where files came from).
        config_hash=config_hash({**config, "data": {**config["data"], "mirrors": None}}),
    conda:
        ENVIRONMENT
    shell:
        "python {input.script} --output {output} --notebooks {input.notebooks} "
        "--figures {input.figures} --tables {input.tables} --runs {input.runs} "
        "--experiments {params.experiments} --config-files {params.config_files} "
        "--config-hash {params.config_hash} > {log} 2>&1"
