rule compare:
    input:
        proteins=rules.protein_tables.output.proteins,
        records=dnn_records,
    output:
        table=f"{RESULTS}/comparison/comparison.tsv",
        markdown=f"{RESULTS}/comparison/comparison.md",
        html=report(
            f"{RESULTS}/comparison/comparison.html",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
    log:
        "logs/compare.log",
    conda:
        "../../envs/plots.yaml"
    params:
        records=lambda wildcards, input: (
            f"--dnn-records {' '.join(input.records)}" if input.records else ""
        ),
    shell:
        "hessian-powerlaw compare --proteins {input.proteins} {params.records} "
        "--out {output.table} --markdown {output.markdown} --html {output.html} 2> {log}"


rule plots:
    input:
        proteins=rules.protein_tables.output.proteins,
        records=dnn_records,
        spectra=dnn_spectra,
    output:
        plot_outputs(),
    log:
        "logs/plots.log",
    conda:
        "../../envs/plots.yaml"
    params:
        records_dir=f"{RESULTS}/protein/records",
        dnn=lambda wildcards, input: (
            f"--dnn-records {' '.join(input.records)}" if input.records else ""
        ),
        out_dir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "hessian-powerlaw plots --proteins {input.proteins} --protein-records {params.records_dir} "
        "{params.dnn} --out-dir {params.out_dir} 2> {log}"
