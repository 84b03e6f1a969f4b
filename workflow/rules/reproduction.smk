rule repro_train:
    output:
        model=f"{REPRO_DIR}/models/{{experiment}}_s{{seed}}.pt",
        metrics=f"{REPRO_DIR}/metrics/{{experiment}}_s{{seed}}.json",
    log:
        "logs/repro_train/{experiment}_s{seed}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        gpu=DNN_GPU,
        mem_mb=8000,
        runtime=240,
    params:
        options=repro_train_options,
        checkpoint=f"{REPRO_DIR}/checkpoints/{{experiment}}_s{{seed}}.ckpt",
    shell:
        "hessian-powerlaw train {params.options} --seed {wildcards.seed} --quiet "
        "--checkpoint {params.checkpoint} --metrics {output.metrics} --out {output.model} 2> {log}"


rule repro_spectrum:
    input:
        model=repro_model,
    output:
        record=f"{REPRO_DIR}/records/{{experiment}}_s{{seed}}.json",
        spectrum=f"{REPRO_DIR}/spectra/{{experiment}}_s{{seed}}.npy",
    log:
        "logs/repro_spectrum/{experiment}_s{seed}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        gpu=DNN_GPU * SPECTRUM_GPUS,
        mem_mb=16000,
        runtime=600,
    params:
        options=repro_spectrum_options,
        command=SPECTRUM_COMMAND,
    shell:
        "{params.command} dnn-spectrum {input.model} {params.options} --quiet "
        "--spectrum {output.spectrum} --out {output.record} 2> {log}"


rule repro_protein:
    input:
        repro_protein_files,
    output:
        f"{REPRO_DIR}/proteins/{{experiment}}.tsv",
    log:
        "logs/repro_protein/{experiment}.log",
    conda:
        "../../envs/protein.yaml"
    threads: 2
    params:
        options=repro_protein_options,
    shell:
        "hessian-powerlaw protein {params.options} --out {output} {input} 2> {log}"


rule repro_part:
    input:
        records=repro_part_records,
        proteins=repro_part_proteins,
    output:
        table=f"{REPRO_DIR}/parts/{{part}}.tsv",
        markdown=f"{REPRO_DIR}/parts/{{part}}.md",
    log:
        "logs/repro_part/{part}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        study=repro_study_flag(),
    shell:
        "hessian-powerlaw reproduction {input.records} --proteins {input.proteins} {params.study} "
        "--only-run --out {output.table} --markdown {output.markdown} 2> {log}"


rule reproduction:
    input:
        records=plan.repro_records(config),
        proteins=plan.repro_proteins(config),
    output:
        table=f"{REPRO_DIR}/reproduction.tsv",
        markdown=report(
            f"{REPRO_DIR}/reproduction.md",
            caption="../report/reproduction.rst",
            category="Reproduction",
        ),
        figure=report(
            f"{REPRO_DIR}/slope.png",
            caption="../report/reproduction_slope.rst",
            category="Reproduction",
        ),
        pdf=f"{REPRO_DIR}/slope.pdf",
    log:
        "logs/reproduction.log",
    conda:
        "../../envs/plots.yaml"
    params:
        study=repro_study_flag(),
    shell:
        "hessian-powerlaw reproduction {input.records} --proteins {input.proteins} {params.study} "
        "--figure {output.figure} "
        "--out {output.table} --markdown {output.markdown} 2> {log}"
