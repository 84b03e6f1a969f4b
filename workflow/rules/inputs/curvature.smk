# Input and parameter functions of the rules in rules/curvature.smk.


CURVATURE_PATTERN = plan.CURVATURE_PATTERN


def curvature_train_options(wildcards):
    """`train` flags of a curvature run: the table's (lr from the run; weight decay and label
    smoothing from dnn.curvature), schedule, measurements."""
    flags = options(
        COMMANDS["train"],
        lr=float(wildcards.lr),
        weight_decay=CURVATURE["weight_decay"],
        label_smoothing=CURVATURE["label_smoothing"],
    )
    return f"{flags} --schedule {wildcards.schedule} --curvature-every {CURVATURE['every']}"


def curvature_metrics(wildcards=None):
    return [
        f"{RESULTS}/curvature/metrics/{run}.json" for run in plan.curvature_runs(config)
    ]
