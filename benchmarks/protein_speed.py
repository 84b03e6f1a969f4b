"""Protein time: this package versus the ProDy path a user would write.

Per structure (default): ANM.buildHessian(coords, cutoff=9) + ANM.calcModes(n_modes=None) (all
modes, with eigenvectors) against anm_hessian + eigenvalues only (scipy 'evd', torch, the
'auto' backend: LAPACK's two-stage reduction from order 2000, and cuda where a GPU is), same
process, same coordinates; prints times, ratios and the eigenvalue agreement.

    python benchmarks/protein_speed.py [--repeat 3]

Whole process (`--entries FILES...`): what a user waits for. ProDy's path (parsePDB, 'name CA and
protein', buildHessian, calcModes(n_modes=None)) and `hessian-powerlaw protein FILES` (parse,
Hessian, eigenvalues, fit with likelihood-ratio tests; also `--eigen-backend cuda` where a GPU
is), each in a fresh interpreter, best of --repeat after one untimed warm-up run of each on the
smallest file; then, untimed, the largest eigenvalue
difference between the two on our coordinates of the entries we fitted, and the catalogue
projection from the measured per-entry times. A file either side cannot use (not a structure, no
protein C-alpha atoms) costs what reading it costs and is left out of the comparison; the run
goes on. An entry `protein` skips before its eigenvalues (fewer or more residues than the
selection's range) is not given to ProDy. The last line is
`ratio_vs_prody=<ProDy seconds / ours>`.

    python benchmarks/protein_speed.py --entries ../shared/data/pdb/*.pdb [--repeat 2]

Crossover (`--crossover`): dsyevd against LAPACK's two-stage routine on the Hessians of 4F7I's
first N C-alpha atoms, with 1 and 2 BLAS threads, best of --repeat; the orders from which
'auto' takes the two-stage routine (`protein.analysis.TWO_STAGE_MIN_SIZE`) come from it.

    python benchmarks/protein_speed.py --crossover [--threads 1 2] [--orders 600 900 ...]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import prody

from hessian_powerlaw.cli.protein import DEFAULT_JOBS
from hessian_powerlaw.io import read_tsv
from hessian_powerlaw.protein.analysis import eigenvalues
from hessian_powerlaw.protein.anm import anm_hessian
from hessian_powerlaw.protein.batch import available_cpus, resolve_jobs
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


PRODY_USER_PATH = """
import sys, prody
prody.confProDy(verbosity="none")
for name in sys.argv[1:]:
    try:  # a file ProDy cannot read, or one without protein C-alpha atoms, is skipped
        atoms = prody.parseMMCIF(name) if ".cif" in name else prody.parsePDB(name)
        anm = prody.ANM()
        anm.buildHessian(atoms.select("name CA and protein"), cutoff=9.0, gamma=1.0)
        anm.calcModes(n_modes=None, zeros=False)
    except Exception as err:
        print(f"ProDy skipped {name}: {type(err).__name__}: {err}", file=sys.stderr)
"""


def timed(command, repeat, check=True):
    """Best wall time of `repeat` runs of the command, and the last run's standard error."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, check=check, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    return min(times), done.stderr


def cuda_available():
    import torch

    return torch.cuda.is_available()


def hessian_powerlaw_command():
    """The `hessian-powerlaw` script beside this interpreter, else `python -m hessian_powerlaw`
    (a source tree on PYTHONPATH, as on a GPU machine without the package installed)."""
    script = Path(sys.executable).with_name("hessian-powerlaw")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hessian_powerlaw"]


def whole_process(files, repeat):
    """ProDy's user path against `hessian-powerlaw protein FILES` as a user runs it (its
    default --jobs), with one process (--jobs 1) and one per CPU (--jobs N) beside it."""
    tool = [*hessian_powerlaw_command(), "protein"]
    command = [*tool, *files]
    cpus = available_cpus()
    variants = {"default": [], "--jobs 1": ["--jobs", "1"], f"--jobs {cpus}": ["--jobs", str(cpus)]}
    if cuda_available():
        variants["--eigen-backend cuda"] = ["--eigen-backend", "cuda"]  # one process, batched
    seconds, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        # untimed warm-up of both on the smallest file: the first run of a tool pays for reading
        # its libraries from disk, which would otherwise fall on whichever variant runs first
        smallest = min(files, key=lambda f: Path(f).stat().st_size if Path(f).is_file() else 0)
        timed([*tool, smallest, "--out", str(Path(tmp) / "warm.tsv")], 1, check=False)
        timed([sys.executable, "-c", PRODY_USER_PATH, smallest], 1, check=False)
        for name, extra in variants.items():
            table = Path(tmp) / f"{len(tables)}.tsv"
            seconds[name], _ = timed([*command, *extra, "--out", str(table)], repeat)
            tables[name] = read_tsv(table)
    # ProDy does the work we do: an entry we skip before its eigenvalues (outside the residue
    # range of the selection) would otherwise give ProDy an eigenproblem we never solve
    unsolved = {r["file"] for r in tables["default"] if r["status"] == "skipped" and not r["n_modes"]}
    if unsolved:
        print(f"left out of ProDy's run (skipped by residue count here): {sorted(unsolved)}", file=sys.stderr)
    prody_files = [f for f in files if f not in unsolved]
    prody_s, prody_log = timed([sys.executable, "-c", PRODY_USER_PATH, *prody_files], repeat)
    for line in prody_log.splitlines():
        if line.startswith("ProDy skipped"):
            print(line, file=sys.stderr)
    ok = [r for r in tables["default"] if r["status"] == "ok"]
    worst = max((eigenvalue_difference(r["file"]) for r in ok), default=float("nan"))
    print(f"{cpus} CPUs; {len(ok)} of {len(files)} entries fitted (eigenvalues compared on those)")
    print("| entries | fitted | ProDy s | hessian-powerlaw | s | ratio | max rel. eigenvalue diff |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for name, ours in seconds.items():
        cells = (
            len(files),
            len(ok),
            f"{prody_s:.2f}",
            name,
            f"{ours:.2f}",
            f"{prody_s / ours:.2f}x",
            f"{worst:.1e}",
        )
        print("| " + " | ".join(map(str, cells)) + " |")
    projection(ok, resolve_jobs(DEFAULT_JOBS))
    print(f"ratio_vs_prody={prody_s / seconds['default']:.3f}")


def eigenvalue_difference(name):
    """Largest |ours - ProDy's| / ProDy's largest eigenvalue on our C-alpha coordinates."""
    coords = read_calpha(name)["coords"]
    model = prody.ANM()
    model.buildHessian(coords, cutoff=9.0, gamma=1.0)
    model.calcModes(n_modes=None, zeros=True)
    ref = np.sort(model.getEigvals())
    mine = np.sort(eigenvalues(anm_hessian(coords, 9.0, 1.0), "auto"))
    return float(np.max(np.abs(mine - ref)) / ref.max())


def projection(rows, jobs):
    """Per-entry seconds of the default run fitted as a + b N^3 (N residues), averaged over
    sizes spread evenly over 100-2000 residues, for the study's 9166 entries on this machine,
    `jobs` entries at a time."""
    n = np.array([r["n_residues"] for r in rows], dtype=float)
    t = np.array([r["seconds"] for r in rows], dtype=float)
    if len(np.unique(n)) < 2:
        print("catalogue projection: needs fitted entries of at least two sizes")
        return
    (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(n), n**3], axis=1), t, rcond=None)
    sizes = np.linspace(100, 2000, 1000)
    mean = float(np.mean(a + b * sizes**3))
    print(
        f"catalogue projection: t = {a:.3f} s + {b * 1e9:.3f} s x (N/1000)^3; mean over 100-2000 residues "
        f"{mean:.2f} s per entry, {jobs} at a time; "
        f"9166 entries: {9166 * mean / 3600 / jobs:.1f} h on this machine"
    )


def crossover(orders, threads, repeat):
    """dsyevd and two-stage eigenvalue times on 4F7I sub-networks, per order and BLAS threads."""
    from threadpoolctl import threadpool_limits

    from hessian_powerlaw.protein.anm import eigenvalues as dsyevd
    from hessian_powerlaw.protein.lapack import two_stage_eigenvalues

    coords = read_calpha(DATA / "4f7i.pdb.gz")["coords"]
    print("| order | BLAS threads | dsyevd ms | two-stage ms | dsyevd / two-stage |")
    print("|---:|---:|---:|---:|---:|")
    for order in orders:
        hessian = anm_hessian(coords[: order // 3], 9.0, 1.0)
        for count in threads:
            with threadpool_limits(count):
                t_evd, _ = best(lambda h=hessian: dsyevd(h.copy()), repeat)
                t_two, values = best(lambda h=hessian: two_stage_eigenvalues(h.copy()), repeat)
            if values is None:
                print("the two-stage routine is not available in this scipy build")
                return
            cells = (len(hessian), count, f"{t_evd * 1e3:.1f}", f"{t_two * 1e3:.1f}", f"{t_evd / t_two:.2f}")
            print("| " + " | ".join(map(str, cells)) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None, help="runs per timing (best kept)")
    parser.add_argument(
        "--entries", nargs="+", metavar="FILE", help="whole-process comparison on these files"
    )
    parser.add_argument("--crossover", action="store_true", help="dsyevd against the two-stage routine")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS threads (--crossover)")
    parser.add_argument(
        "--orders",
        type=int,
        nargs="+",
        default=[600, 750, 900, 1200, 1500, 1800, 2100, 2400, 3000],
        help="matrix orders (--crossover; up to 4191, 4F7I's)",
    )
    args = parser.parse_args()
    prody.confProDy(verbosity="none")
    if args.crossover:
        crossover(args.orders, args.threads, args.repeat or 5)
        return
    if args.entries:
        whole_process(args.entries, args.repeat or 2)
        return
    args.repeat = args.repeat or 3
    backends = ("scipy", "torch", "auto", "cuda") if cuda_available() else ("scipy", "torch", "auto")
    header = ["structure", "C-alpha", "ProDy s", *(f"ours {b} s" for b in backends)]
    header += [*(f"speed-up {b}" for b in backends), "max rel. diff"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for name, coords in cases():
        t_ref, ref = best(lambda c=coords: prody_path(c), args.repeat)
        times, diffs = [], []
        for backend in backends:
            seconds, values = best(lambda c=coords, b=backend: ours(c, b), args.repeat)
            times.append(seconds)
            diffs.append(np.max(np.abs(values - ref)) / ref.max())
        cells = [name, len(coords), f"{t_ref:.3f}", *(f"{t:.3f}" for t in times)]
        cells += [*(f"{t_ref / t:.1f}x" for t in times), f"{max(diffs):.1e}"]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
