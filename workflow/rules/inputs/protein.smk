# Input and parameter functions of the rules in rules/protein.smk.


def count_entries(path):
    with open(path) as handle:
        rows = [line for line in handle if line.strip() and not line.startswith("#")]
    return max(len(rows) - 1, 0)


def batches(wildcards=None):
    """Batch indices of the checkpointed entry list."""
    entries = checkpoints.select_entries.get().output.entries
    return range((count_entries(entries) + PDB["batch_size"] - 1) // PDB["batch_size"])


def k_label():
    k = config["fit"]["k"]
    return f"{k:.0%} of the non-zero modes" if k < 1 else f"{int(k)}"


def protein_batch_inputs(wildcards):
    inputs = {"entries": checkpoints.select_entries.get().output.entries}
    if PDB["source"] == "rcsb":
        inputs["downloads"] = rules.download_batch.output.status.format(
            batch=wildcards.batch
        )
    return inputs


def protein_jobs(wildcards, threads):
    return 1 if PROTEIN_GPU else threads
