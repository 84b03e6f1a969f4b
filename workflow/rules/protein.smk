checkpoint select_entries:
    output:
        entries=f"{RESULTS}/pdb/entries.tsv",
    log:
        f"logs/select_entries.log",
    conda:
        "../../envs/protein.yaml"
    params:
        options=options(COMMANDS["select"]),
    shell:
        "hessian-powerlaw select {params.options} --out {output.entries} 2> {log}"


rule download_batch:
    input:
        entries=rules.select_entries.output.entries,
    output:
        status=f"{RESULTS}/pdb/downloads/batch_{{batch}}.tsv",
    log:
        f"logs/download/batch_{{batch}}.log",
    conda:
        "../../envs/protein.yaml"
    params:
        options=options(COMMANDS["download"]),
    shell:
        "hessian-powerlaw download --entries {input.entries} --batch {wildcards.batch} "
        "{params.options} --out {output.status} 2> {log}"


rule protein_batch:
    input:
        unpack(protein_batch_inputs),
    output:
        table=f"{RESULTS}/protein/batches/batch_{{batch}}.tsv",
    log:
        f"logs/protein/batch_{{batch}}.log",
    conda:
        "../../envs/protein.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=PROTEIN_GPU,
    params:
        options=options(COMMANDS["protein"]),
        jobs=protein_jobs,
        downloads=lambda wildcards, input: (
            f"--downloads {input.downloads}" if "downloads" in input.keys() else ""
        ),
        records=f"{RESULTS}/protein/records",
    shell:
        "OMP_NUM_THREADS={threads} hessian-powerlaw protein --entries {input.entries} "
        "--batch {wildcards.batch} {params.downloads} {params.options} "
        "--records {params.records} --jobs {params.jobs} --out {output.table} 2> {log}"


rule protein_tables:
    input:
        lambda wildcards: expand(rules.protein_batch.output.table, batch=batches()),
    output:
        proteins=report(
            f"{RESULTS}/protein/proteins.tsv",
            caption="../report/proteins.rst",
            category="Proteins",
        ),
        bins=f"{RESULTS}/protein/size_bins.tsv",
        markdown=report(
            f"{RESULTS}/protein/size_bins.md",
            caption="../report/size_bins.rst",
            category="Proteins",
        ),
        failures=f"{RESULTS}/protein/failures.tsv",
    log:
        "logs/protein_tables.log",
    conda:
        "../../envs/protein.yaml"
    params:
        k_label=k_label(),
    shell:
        "hessian-powerlaw tables {input} --proteins {output.proteins} --bins {output.bins} "
        "--markdown {output.markdown} --failures {output.failures} "
        "--k-label {params.k_label:q} 2> {log}"
