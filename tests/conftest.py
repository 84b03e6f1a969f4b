import csv
import gzip
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "hessian_powerlaw" / "data" / "pdb"
EDGE = ROOT / "tests" / "data" / "pdb"

# The tests run `hessian-powerlaw` and `snakemake` from the environment running pytest,
# activated or not (`.venv/bin/python -m pytest`).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def manifest(path):
    with open(path, newline="") as handle:
        return {row["pdb_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture(scope="session")
def bundled_manifest():
    return manifest(BUNDLED / "MANIFEST.tsv")


def bundled_files():
    return sorted(BUNDLED.glob("*.pdb.gz"))


def pdb_text(name):
    """Text of a bundled or edge-case entry, e.g. '4hhb' or '3tah'."""
    for folder in (BUNDLED, EDGE):
        path = folder / f"{name}.pdb.gz"
        if path.exists():
            return gzip.decompress(path.read_bytes()).decode()
    raise FileNotFoundError(name)
