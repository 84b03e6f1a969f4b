"""The record format both wings write: one flat dict per protein entry or network spectrum,
with the shared fit keys (`fit.FIT_KEYS`), a `status` ('ok', 'skipped', 'failed',
'not_converged') and a one-line `reason`. These tuples are the column orders of their tables."""

from hessian_powerlaw.fit import FIT_KEYS

PROTEIN_KEYS = (
    "pdb_id",
    "file",
    "source",
    "method",
    "resolution",
    "n_models",
    "n_chains",
    "n_residues",
    "chain_breaks",
    "n_modes",
    "n_zero_modes",
    *FIT_KEYS,
    "status",
    "reason",
    "seconds",
)

RUN_KEYS = (
    "run",
    "model",
    "dataset",
    "optimizer",
    "lr",
    "batch_size",
    "epochs",
    "n_train",
    "seed",
    "width",
    "depth",
    "label_noise",
    "n_params",
    "train_loss",
    "train_acc",
    "test_acc",
)
SPECTRUM_KEYS = (
    "variant",
    "n_eval",
    "hessian",
    "solver",
    "slq_steps",
    "block_size",
    "weight_decay_term",
    "tol",
    "dtype",
    "device",
    "n_modes",
    "lambda_max",
    "noise_floor",
    "converged",
    "max_residual",
    "residual_kind",
    "orthogonality",
    "replaced",
    "steps",
    "hvp_count",
    "data_passes",
    "trace",
    "lambda_min",
    "n_negative",
    "negative_sum",
    "seconds",
)
GAP_FIT_KEYS = ("k", "xmin", "beta", "beta_sigma", "s", "d_ks", "d_c", "power_law")
GAP_KEYS = tuple(f"gap_{key}" for key in GAP_FIT_KEYS)
NETWORK_KEYS = (*RUN_KEYS, *SPECTRUM_KEYS, *FIT_KEYS, *GAP_KEYS, "status", "reason")

# One row per parameter group of `dnn-spectrum --blocks` (network.factory).
BLOCK_KEYS = (
    "block",
    "n_params",
    "k",
    "lambda_max",
    *[key for key in FIT_KEYS if key != "k"],
    "converged",
    "max_residual",
    "hvp_count",
    "data_passes",
    "seconds",
    "products",
    "status",
    "reason",
)
