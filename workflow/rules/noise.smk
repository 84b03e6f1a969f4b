rule toy_valley:
    output:
        f"{RESULTS}/noise/toy/{TOY_RUN}.json",
    log:
        f"logs/noise/toy/{TOY_RUN}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        options=options(COMMANDS["toy-valley"]),
    shell:
        "hessian-powerlaw toy-valley --model {wildcards.valley} --noise {wildcards.noise} "
        "--lr {wildcards.lr} {params.options} --out {output} 2> {log}"


rule noise_minimum:
    output:
        model=f"{RESULTS}/noise/minima/init{{init}}.pt",
        record=f"{RESULTS}/noise/minima/init{{init}}.json",
    log:
        "logs/noise/minimum_init{init}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 1
    params:
        options=options(COMMANDS["noise-minimum"]),
    shell:
        "OMP_NUM_THREADS={threads} hessian-powerlaw noise-minimum --init-seed {wildcards.init} {params.options} --quiet "
        "--record {output.record} --out {output.model} 2> {log}"


rule noise_equilibrium:
    input:
        f"{RESULTS}/noise/minima/init{NOISE['equilibrium']['init_seed']}.pt",
    output:
        f"{RESULTS}/noise/equilibrium/b{{batch_size}}_lr{{lr}}.json",
    log:
        "logs/noise/equilibrium/b{batch_size}_lr{lr}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        options=options(COMMANDS["noise-equilibrium"]),
    shell:
        "OMP_NUM_THREADS={threads} hessian-powerlaw noise-equilibrium {input} --batch-size {wildcards.batch_size} "
        "--lr {wildcards.lr} {params.options} --quiet --out {output} 2> {log}"


rule noise_trace:
    input:
        f"{RESULTS}/noise/minima/init{{init}}.pt",
    output:
        f"{RESULTS}/noise/trace/{{noise}}_lr{{lr}}_init{{init}}.json",
    log:
        "logs/noise/trace/{noise}_lr{lr}_init{init}.log",
    conda:
        "../../envs/dnn.yaml"
    threads: 1
    params:
        options=options(COMMANDS["noise-trace"]),
    shell:
        "OMP_NUM_THREADS={threads} hessian-powerlaw noise-trace {input} --noise {wildcards.noise} --lr {wildcards.lr} "
        "--seed {wildcards.init} {params.options} --out {output} 2> {log}"


rule noise_tables:
    input:
        noise_records,
    output:
        [f"{RESULTS}/noise/{name}.tsv" for name in plan.NOISE_TABLES],
        markdown=report(
            f"{RESULTS}/noise/noise.md",
            caption="../report/noise.rst",
            category="Noise study",
        ),
    log:
        "logs/noise/tables.log",
    conda:
        "../../envs/plots.yaml"
    params:
        out_dir=lambda wildcards, output: Path(output.markdown).parent,
    shell:
        "hessian-powerlaw noise-tables {input} --out-dir {params.out_dir} 2> {log}"


rule noise_plots:
    input:
        noise_records,
    output:
        [
            report(
                f"{RESULTS}/noise/{name}.png",
                caption=f"../report/{name}.rst",
                category="Noise study",
            )
            for name in plan.NOISE_FIGURES
        ],
        [f"{RESULTS}/noise/{name}.pdf" for name in plan.NOISE_FIGURES],
    log:
        "logs/noise/plots.log",
    conda:
        "../../envs/plots.yaml"
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "hessian-powerlaw noise-plots {input} --out-dir {params.out_dir} 2> {log}"
