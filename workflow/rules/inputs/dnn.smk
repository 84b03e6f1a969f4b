# Input and parameter functions of the rules in rules/dnn.smk.


RUN_PATTERN = plan.RUN_PATTERN


def run_name(wildcards):
    return RUN_PATTERN.format(**{d: wildcards[d] for d in (*plan.RUN_DIMS, "labelset")})


def train_options(wildcards):
    """`train` flags: dnn.training, overridden by the run's label dimensions."""
    return options(TRAINING_SETTINGS, **plan.label_settings(wildcards.labelset))


def spectrum_options(wildcards):
    """`dnn-spectrum` flags: dnn.spectrum, overridden by the variant's settings; run and variant."""
    variant = VARIANTS.get(wildcards.get("variant"), {})
    run = run_name(wildcards)
    settings = {"spectrum_k": DNN_RUNS[run], **plan.spectrum_settings(variant)}
    flags = options(COMMANDS["dnn-spectrum"], **settings)
    return f"{flags} --run {run} --variant {variant.get('name', 'spectrum')}"


def blocks_options(wildcards):
    """`dnn-spectrum --blocks` flags: the run's spectrum flags at K = dnn.spectrum.blocks_k."""
    settings = plan.spectrum_settings({"k": DNN["spectrum"]["blocks_k"]})
    return (
        f"{options(COMMANDS['dnn-spectrum'], **settings)} --run {run_name(wildcards)}"
    )


def dnn_records(wildcards=None):
    return [f"{RESULTS}/dnn/spectra/{run}.json" for run in DNN_RUNS]


def dnn_spectra(wildcards=None):
    return [f"{RESULTS}/dnn/spectra/{run}.npy" for run in DNN_RUNS]


def fidelity_inputs(wildcards=None):
    """Spectrum records (and their eigenvalues) of the trained runs: main and every variant."""
    trained = plan.trained_runs(DNN_RUNS)
    stems = [f"{RESULTS}/dnn/spectra/{run}" for run in trained]
    stems += [f"{RESULTS}/dnn/variants/{v}/{run}" for v in VARIANTS for run in trained]
    return {
        "records": [f"{s}.json" for s in stems],
        "spectra": [f"{s}.npy" for s in stems],
    }
