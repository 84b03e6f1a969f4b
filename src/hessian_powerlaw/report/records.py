"""Reading what the wings wrote, for the tables and figures: network records with their spectra,
the protein panels to draw, and training metrics with curvature measurements."""

import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hessian_powerlaw.io import SAFE_NAME, distinct, load_npy, read_json
from hessian_powerlaw.report.tables import SIZE_BINS


def dnn_items(paths: Iterable[str | Path]) -> list[tuple[str, np.ndarray, dict]]:
    """The network records whose spectrum file sits beside them, with that spectrum.

    Parameters
    ----------
    paths : iterable of str or Path
        Network record files (JSON).

    Returns
    -------
    list of (str, numpy.ndarray, dict)
        (run, eigenvalues (K,), record); records without a readable spectrum are left out.
    """
    items = []
    for path in distinct(paths):
        record = read_json(path)
        spectrum = Path(path).with_suffix(".npy")
        if spectrum.is_file():
            items.append((record["run"], load_npy(spectrum)[0], record))
    return items


def protein_items(
    records: list[dict], records_dir: str | Path, per_bin: int
) -> tuple[list[tuple[str, np.ndarray, dict]], list[tuple[str, np.ndarray, dict]]]:
    """The protein spectra the figures show.

    An entry whose spectrum file is missing or damaged is left out, with a warning.

    Parameters
    ----------
    records : list of dict
        Protein records.
    records_dir : str or Path
        Where their spectrum files lie.
    per_bin : int
        Proteins shown per size bin.

    Returns
    -------
    shown : list of (str, numpy.ndarray, dict)
        (title, sigma, record) of the proteins closest to their size bin's median s.
    overlay : list of (str, numpy.ndarray, dict)
        (id, sigma, record) of up to 300 fitted proteins.
    """
    spectra = {}
    for r in records:
        if r["status"] == "ok" and SAFE_NAME.match(r["pdb_id"] or ""):
            sigma = spectrum_file(Path(records_dir) / f"{r['pdb_id']}.npy", r["n_modes"])
            if sigma is not None:
                spectra[r["pdb_id"]] = sigma
    ok = [r for r in records if r["status"] == "ok" and r["pdb_id"] in spectra]
    chosen = []
    for _, low, high in SIZE_BINS:
        members = [r for r in ok if low <= 3 * r["n_residues"] < high]
        if members:
            median = float(np.median([r["s"] for r in members]))
            chosen += sorted(members, key=lambda r: abs(r["s"] - median))[:per_bin]
    shown = [
        (f"{r['pdb_id']} ({r['n_residues']} Cα, 3N={3 * r['n_residues']})", spectra[r["pdb_id"]], r)
        for r in chosen
    ]
    return shown, [(r["pdb_id"], spectra[r["pdb_id"]], r) for r in ok[:300]]


def spectrum_file(path: str | Path, n_modes: int) -> np.ndarray | None:
    """The spectrum in `path` (shape (n_modes,)) if it loads with finite values, else None (warned)."""
    try:
        sigma = load_npy(path)
        if sigma.shape == (n_modes,) and np.all(np.isfinite(sigma)):
            return sigma
        problem = f"holds {sigma.shape} values, not {n_modes} finite ones"
    except (OSError, ValueError) as err:
        problem = " ".join(str(err).split()) or type(err).__name__
    print(f"plots: warning: {path} left out ({problem}); rerun its protein batch", file=sys.stderr)
    return None


def metrics_files(paths: Iterable[str | Path]) -> list[tuple[str, dict]]:
    """The metrics of finished training runs.

    Parameters
    ----------
    paths : iterable of str or Path
        Metrics files (JSON) of `train`.

    Returns
    -------
    list of (str, dict)
        (run name, metrics) of those with a final record.
    """
    runs = []
    for path in distinct(paths):
        metrics = read_json(path)
        if "final" not in metrics:
            raise ValueError(f"{path}: training did not finish (no final record)")
        runs.append((Path(path).stem, metrics))
    return runs
