rule train:
    output:
        model=f"{RESULTS}/dnn/models/{RUN_PATTERN}.pt",
        metrics=f"{RESULTS}/dnn/metrics/{RUN_PATTERN}.json",
    log:
        f"logs/train/{RUN_PATTERN}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        gpu=DNN_GPU,
        mem_mb=8000,
        runtime=240,
    params:
        options=train_options,
        checkpoint=f"{RESULTS}/dnn/checkpoints/{RUN_PATTERN}.ckpt",
    shell:
        "hessian-powerlaw train --model {wildcards.model} --dataset {wildcards.dataset} "
        "--optimizer {wildcards.optimizer} --batch-size {wildcards.batch_size} "
        "--n-train {wildcards.n_train} --width {wildcards.width} --depth {wildcards.depth} "
        "--seed {wildcards.seed} --epochs {wildcards.epochs} {params.options} "
        "--checkpoint {params.checkpoint} --metrics {output.metrics} --out {output.model} 2> {log}"


rule dnn_spectrum:
    input:
        model=rules.train.output.model,
    output:
        record=f"{RESULTS}/dnn/spectra/{RUN_PATTERN}.json",
        spectrum=f"{RESULTS}/dnn/spectra/{RUN_PATTERN}.npy",
    log:
        f"logs/dnn_spectrum/{RUN_PATTERN}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        gpu=DNN_GPU * SPECTRUM_GPUS,
        mem_mb=16000,
        runtime=600,
    params:
        options=spectrum_options,
        command=SPECTRUM_COMMAND,
    shell:
        "{params.command} dnn-spectrum {input.model} {params.options} "
        "--spectrum {output.spectrum} --out {output.record} 2> {log}"


rule dnn_table:
    input:
        dnn_records,
    output:
        table=f"{RESULTS}/dnn/dnn.tsv",
        markdown=report(
            f"{RESULTS}/dnn/dnn.md", caption="../report/dnn.rst", category="Networks"
        ),
    log:
        "logs/dnn_table.log",
    conda:
        "../../envs/dnn.yaml"
    shell:
        "hessian-powerlaw dnn-table {input} --out {output.table} --markdown {output.markdown} 2> {log}"


use rule dnn_spectrum as dnn_variant with:
    output:
        record=f"{RESULTS}/dnn/variants/{{variant}}/{RUN_PATTERN}.json",
        spectrum=f"{RESULTS}/dnn/variants/{{variant}}/{RUN_PATTERN}.npy",
    log:
        f"logs/dnn_variant/{{variant}}/{RUN_PATTERN}.log",


rule fidelity:
    input:
        unpack(fidelity_inputs),
    output:
        table=f"{RESULTS}/dnn/fidelity.tsv",
        markdown=report(
            f"{RESULTS}/dnn/fidelity.md",
            caption="../report/fidelity.rst",
            category="Networks",
        ),
        figure=report(
            f"{RESULTS}/plots/fidelity.png",
            caption="../report/fidelity_figure.rst",
            category="Networks",
        ),
        pdf=f"{RESULTS}/plots/fidelity.pdf",
    log:
        "logs/fidelity.log",
    conda:
        "../../envs/plots.yaml"
    params:
        k=" ".join(str(k) for k in DNN["fidelity_k"]),
    shell:
        "hessian-powerlaw fidelity {input.records} --k {params.k} --out {output.table} "
        "--markdown {output.markdown} --figure {output.figure} 2> {log}"


rule dnn_blocks:
    input:
        model=rules.train.output.model,
    output:
        f"{RESULTS}/dnn/blocks/{RUN_PATTERN}.tsv",
    log:
        f"logs/dnn_blocks/{RUN_PATTERN}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        gpu=DNN_GPU,
        mem_mb=16000,
        runtime=600,
    params:
        options=blocks_options,
        blocks=shlex.quote(DNN["spectrum"]["blocks"]),
    shell:
        "hessian-powerlaw dnn-spectrum {input.model} {params.options} --blocks {params.blocks} "
        "--quiet --out {output} 2> {log}"


rule dnn_blocks_plot:
    input:
        rules.dnn_blocks.output,
    output:
        png=report(
            f"{RESULTS}/dnn/blocks/{RUN_PATTERN}.png",
            caption="../report/dnn_blocks.rst",
            category="Networks",
        ),
        pdf=f"{RESULTS}/dnn/blocks/{RUN_PATTERN}.pdf",
    log:
        f"logs/dnn_blocks_plot/{RUN_PATTERN}.log",
    conda:
        "../../envs/plots.yaml"
    shell:
        "hessian-powerlaw blocks-plot {input} --out {output.png} 2> {log}"
