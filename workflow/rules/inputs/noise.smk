# Input and parameter functions of the rules in rules/noise.smk.


TOY_RUN = plan.TOY_RUN


def noise_records(wildcards=None):
    return plan.noise_records(config)
