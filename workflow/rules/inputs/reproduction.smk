# Input and parameter functions of the rules in rules/reproduction.smk.


def repro_train_options(wildcards):
    """`train` flags of an experiment: its train settings, the data root and the device."""
    settings = EXPERIMENTS[wildcards.experiment]["train"]
    return f"{command_line(settings)} {options(('data_root', 'device'))}"


def repro_spectrum_options(wildcards):
    """`dnn-spectrum` flags: dnn.spectrum overridden by the experiment's spectrum settings."""
    settings = plan.spectrum_settings(EXPERIMENTS[wildcards.experiment]["spectrum"])
    table = {k: v for k, v in settings.items() if k in COMMANDS["dnn-spectrum"]}
    extra = {k: v for k, v in settings.items() if k not in table}
    flags = options(COMMANDS["dnn-spectrum"], **table)
    run = f"{wildcards.experiment}_s{wildcards.seed}"
    return f"{flags} {command_line(extra)} {options(('data_root',))} --run {run}"


def repro_model(wildcards):
    source = plan.trained_experiment(config, wildcards.experiment)
    return f"{REPRO_DIR}/models/{source}_s{wildcards.seed}.pt"


def repro_part_records(wildcards):
    return plan.repro_records(config, wildcards.part)


def repro_part_proteins(wildcards):
    return plan.repro_proteins(config, wildcards.part)


def repro_protein_files(wildcards):
    return sorted(glob.glob(EXPERIMENTS[wildcards.experiment]["protein"]["files"]))


def repro_protein_options(wildcards):
    """`protein` flags of a protein experiment: the protein settings, its K if given."""
    k = EXPERIMENTS[wildcards.experiment]["protein"].get("k")
    return options(PROTEIN_SETTINGS, **({} if k is None else {"k": k}))


def repro_study_flag():
    """--study FILE when the config names one (else the command's bundled study values)."""
    study = config["reproduction"]["study"]
    return f"--study {shlex.quote(study)}" if study else ""
