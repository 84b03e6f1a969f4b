use rule train as train_curvature with:
    output:
        model=f"{RESULTS}/curvature/models/{CURVATURE_PATTERN}.pt",
        metrics=f"{RESULTS}/curvature/metrics/{CURVATURE_PATTERN}.json",
    log:
        f"logs/train_curvature/{CURVATURE_PATTERN}.log",
    resources:
        gpu=DNN_GPU,
        mem_mb=8000,
        runtime=480,
    params:
        options=curvature_train_options,
        checkpoint=f"{RESULTS}/curvature/checkpoints/{CURVATURE_PATTERN}.ckpt",


rule curvature_table:
    input:
        curvature_metrics,
    output:
        runs=f"{RESULTS}/curvature/runs.tsv",
        lr_fits=f"{RESULTS}/curvature/lr_fits.tsv",
        negative_fits=f"{RESULTS}/curvature/negative_fits.tsv",
        markdown=report(
            f"{RESULTS}/curvature/curvature.md",
            caption="../report/curvature.rst",
            category="Curvature",
        ),
    log:
        "logs/curvature_table.log",
    conda:
        "../../envs/plots.yaml"
    params:
        rate_from=CURVATURE["rate_from_epoch"],
    shell:
        "hessian-powerlaw curvature-table {input} --rate-from-epoch {params.rate_from} "
        "--out {output.runs} --lr-fits {output.lr_fits} "
        "--negative-fits {output.negative_fits} --markdown {output.markdown} 2> {log}"


rule curvature_plots:
    input:
        curvature_metrics,
    output:
        [
            report(
                f"{RESULTS}/plots/{name}.png",
                caption=f"../report/{name}.rst",
                category="Curvature",
            )
            for name in plan.CURVATURE_FIGURES
        ],
        [f"{RESULTS}/plots/{name}.pdf" for name in plan.CURVATURE_FIGURES],
    log:
        "logs/curvature_plots.log",
    conda:
        "../../envs/plots.yaml"
    params:
        rate_from=CURVATURE["rate_from_epoch"],
        out_dir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "hessian-powerlaw curvature-plots {input} --rate-from-epoch {params.rate_from} "
        "--out-dir {params.out_dir} 2> {log}"
