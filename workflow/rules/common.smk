from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
PDB = config["pdb"]
BATCH_SIZE = PDB["batch_size"]


wildcard_constraints:
    batch=r"\d+",


def count_entries(path):
    with open(path) as handle:
        rows = [line for line in handle if line.strip() and not line.startswith("#")]
    return max(len(rows) - 1, 0)


def batches(wildcards=None):
    """Batch indices of the checkpointed entry list."""
    entries = checkpoints.select_entries.get().output.entries
    return range((count_entries(entries) + BATCH_SIZE - 1) // BATCH_SIZE)


def protein_settings():
    """Command-line options of the protein step, from the (validated) config."""
    anm, fit = config["anm"], config["fit"]
    opts = [
        f"--cutoff {anm['cutoff']}",
        f"--gamma {anm['gamma']}",
        f"--zero-mode-tol {anm['zero_mode_tol']}",
        f"--disconnected {anm['disconnected']}",
        f"--eigen-backend {anm['eigen_backend']}",
        f"--k {fit['k']}",
        f"--min-residues {PDB['min_residues']}",
        f"--max-residues {PDB['max_residues']}",
    ]
    if not fit["compare"]:
        opts.append("--no-compare")
    return " ".join(opts)


def select_options():
    """Command-line options of the entry selection, from the (validated) config."""
    q = PDB["query"]
    opts = [
        f"--source {PDB['source']}",
        f"--local '{PDB['local']}'",
        f"--cache {PDB['cache']}",
        f"--min-residues {PDB['min_residues']}",
        f"--max-residues {PDB['max_residues']}",
        f"--query-url {q['url']}",
        f"--method '{q['method']}'",
        f"--max-resolution {q['max_resolution']}",
        f"--polymer-types '{q['polymer_types']}'",
        f"--identity-cutoff {q['identity_cutoff']}",
        f"--rows-per-page {q['rows_per_page']}",
        f"--max-entries {q['max_entries']}",
    ]
    return " ".join(opts)


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


def protein_outputs():
    return [
        f"{RESULTS}/protein/proteins.tsv",
        f"{RESULTS}/protein/size_bins.tsv",
        f"{RESULTS}/protein/size_bins.md",
        f"{RESULTS}/protein/failures.tsv",
    ]
