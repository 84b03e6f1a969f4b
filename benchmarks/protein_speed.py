"""Per-protein time: this package versus the ProDy path a user would write.

ProDy path: ANM.buildHessian(coords, cutoff=9) + ANM.calcModes(n_modes=None) (all modes,
with eigenvectors). Ours: anm_hessian + eigenvalues only (scipy 'evd' and torch backends).
Same process, same coordinates; prints times, ratios and the eigenvalue agreement.

    python benchmarks/protein_speed.py [--repeat 3]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import prody

from hessian_powerlaw.protein.analysis import eigenvalues
from hessian_powerlaw.protein.anm import anm_hessian
from hessian_powerlaw.protein.structure import read_calpha

DATA = Path(__file__).resolve().parents[1] / "src" / "hessian_powerlaw" / "data" / "pdb"


def cases():
    """Real entries near 200, 600, 1000 and 1400 residues, and a ~2000-residue network made of
    4F7I with 5CNA's first 600 C-alpha atoms placed in contact (no bundled entry is that large)."""
    coords = {
        name: read_calpha(DATA / f"{name}.pdb.gz")["coords"] for name in ("3ptb", "4hhb", "5cna", "4f7i")
    }
    yield "3PTB", coords["3ptb"]
    yield "4HHB", coords["4hhb"]
    yield "5CNA", coords["5cna"]
    yield "4F7I", coords["4f7i"]
    a, b = coords["4f7i"], coords["5cna"][:600]
    shift = a.max(axis=0) - b.min(axis=0) - np.array([12.0, 12.0, 12.0])
    yield "4F7I+5CNA[:600]", np.concatenate([a, b + shift])


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def prody_path(coords):
    model = prody.ANM()
    model.buildHessian(coords, cutoff=9.0, gamma=1.0)
    model.calcModes(n_modes=None, zeros=False)
    return model.getEigvals()


def ours(coords, backend):
    ev = np.sort(eigenvalues(anm_hessian(coords, 9.0, 1.0), backend))
    return ev[ev > 1e-12 * ev[-1]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prody.confProDy(verbosity="none")
    import torch  # noqa: F401  (import cost excluded from the timings)

    print(
        "| structure | C-alpha | ProDy s | ours scipy s | ours torch s | speed-up scipy | speed-up torch "
        "| max rel. diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, coords in cases():
        t_ref, ref = best(lambda c=coords: prody_path(c), args.repeat)
        t_scipy, ev_scipy = best(lambda c=coords: ours(c, "scipy"), args.repeat)
        t_torch, ev_torch = best(lambda c=coords: ours(c, "torch"), args.repeat)
        diff = max(np.max(np.abs(ev_scipy - ref)), np.max(np.abs(ev_torch - ref))) / ref.max()
        print(
            f"| {name} | {len(coords)} | {t_ref:.3f} | {t_scipy:.3f} | {t_torch:.3f} | "
            f"{t_ref / t_scipy:.1f}x | {t_ref / t_torch:.1f}x | {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
