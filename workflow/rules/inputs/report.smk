# Input and parameter functions of the rules in rules/report.smk.


def plot_outputs():
    """PNG (in the report, with its caption) and PDF of every figure."""
    outputs = []
    for name, category in plan.FIGURES.items():
        if category == "Networks" and not DNN_RUNS:
            continue
        png = report(
            f"{RESULTS}/plots/{name}.png",
            caption=f"../report/{name}.rst",
            category=category,
        )
        outputs += [png, f"{RESULTS}/plots/{name}.pdf"]
    return outputs
