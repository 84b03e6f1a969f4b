from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs/protein.smk"
include: "workflow/rules/inputs/dnn.smk"
include: "workflow/rules/inputs/curvature.smk"
include: "workflow/rules/inputs/noise.smk"
include: "workflow/rules/inputs/report.smk"
include: "workflow/rules/inputs/reproduction.smk"
include: "workflow/rules/protein.smk"
include: "workflow/rules/dnn.smk"
include: "workflow/rules/curvature.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/reproduction.smk"


localrules:
    all,
    select_entries,
    download_batch,
    protein_tables,
    dnn_table,
    fidelity,
    compare,
    plots,
    curvature_table,
    curvature_plots,
    toy_valley,
    noise_tables,
    noise_plots,
    repro_part,
    reproduction,


rule all:
    default_target: True
    input:
        final_outputs(),
