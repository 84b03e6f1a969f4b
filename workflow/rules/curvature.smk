CRUN = CURVATURE_PATTERN


rule train_curvature:
    output:
        model=f"{RESULTS}/curvature/models/{CRUN}.pt",
        metrics=f"{RESULTS}/curvature/metrics/{CRUN}.json",
    log:
        f"logs/train_curvature/{CRUN}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=480,
    params:
        options=curvature_options(),
        checkpoint=f"{RESULTS}/curvature/checkpoints/{CRUN}.ckpt",
    shell:
        "hessian-powerlaw train --model {wildcards.model} --dataset {wildcards.dataset} "
        "--optimizer {wildcards.optimizer} --lr {wildcards.lr} --schedule {wildcards.schedule} "
        "--batch-size {wildcards.batch_size} --n-train {wildcards.n_train} "
        "--width {wildcards.width} --depth {wildcards.depth} --seed {wildcards.seed} "
        "--epochs {wildcards.epochs} {params.options} --checkpoint {params.checkpoint} "
        "--metrics {output.metrics} --out {output.model} 2> {log}"


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
            for name in CURVATURE_FIGURES
        ],
        [f"{RESULTS}/plots/{name}.pdf" for name in CURVATURE_FIGURES],
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
