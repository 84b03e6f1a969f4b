"""The report modules, the protein and report commands and toy-valley work without torch, so the protein
and plots conda environments (which have no torch) are honest."""

import subprocess
import sys
import textwrap

from synthetic import write_metrics, write_network

from conftest import BUNDLED, ROOT

BLOCK_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, NoTorch())
"""


def test_report_and_protein_commands_run_without_torch(tmp_path):
    dnn = [
        write_network(tmp_path / "dnn", "net_e50", 2.0),
        write_network(tmp_path / "dnn", "net_e0", 3.0, epochs=0),
    ]
    metrics = [write_metrics(tmp_path / "m", f"run_s{s}", seed=s) for s in range(3)]
    t = tmp_path
    commands = [
        [
            "protein",
            str(BUNDLED / "1aki.pdb.gz"),
            str(BUNDLED / "3ptb.pdb.gz"),
            "--records",
            f"{t}/rec",
            "--out",
            f"{t}/b0.tsv",
        ],
        [
            "tables",
            f"{t}/b0.tsv",
            "--proteins",
            f"{t}/p.tsv",
            "--bins",
            f"{t}/bins.tsv",
            "--markdown",
            f"{t}/bins.md",
        ],
        [
            "compare",
            "--proteins",
            f"{t}/p.tsv",
            "--dnn-records",
            *map(str, dnn),
            "--out",
            f"{t}/c.tsv",
            "--markdown",
            f"{t}/c.md",
        ],
        ["dnn-table", *map(str, dnn), "--out", f"{t}/dnn.tsv"],
        [
            "plots",
            "--proteins",
            f"{t}/p.tsv",
            "--protein-records",
            f"{t}/rec",
            "--dnn-records",
            *map(str, dnn),
            "--out-dir",
            f"{t}/plots",
        ],
        [
            "curvature-table",
            *map(str, metrics),
            "--out",
            f"{t}/r.tsv",
            "--lr-fits",
            f"{t}/l.tsv",
            "--negative-fits",
            f"{t}/n.tsv",
        ],
        ["curvature-plots", *map(str, metrics), "--out-dir", f"{t}/plots"],
        ["check-config", str(ROOT / "config.yaml")],
        *(
            ["toy-valley", "--model", "trace", "--noise", noise, "--lr", str(lr), "--repeats", "4"]
            + ["--equilibrate-steps", "50", "--measure-steps", "50", "--out", f"{t}/toy_{noise}_{lr}.json"]
            for noise in ("sgd", "none")
            for lr in (0.01, 0.02, 0.03)
        ),
        ["noise-tables", *(f"{t}/toy_{n}_{lr}.json" for n in ("sgd", "none") for lr in (0.01, 0.02, 0.03))]
        + ["--out-dir", f"{t}/noise"],
        ["noise-plots", f"{t}/toy_sgd_0.01.json", "--out-dir", f"{t}/noise"],
    ]
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        import importlib, pkgutil
        import hessian_powerlaw.report as report
        for module in pkgutil.iter_modules(report.__path__):
            importlib.import_module(f"hessian_powerlaw.report.{{module.name}}")
        try:
            import torch
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("torch was importable")
        from hessian_powerlaw.cli import main
        for argv in {commands!r}:
            code = main(argv)
            assert code == 0, (argv[0], code)
        assert "torch" not in sys.modules
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "plots" / "overlay.png").is_file() and (
        tmp_path / "plots" / "curvature_trace.png"
    ).is_file()
    assert (tmp_path / "noise" / "toy_trace_rate.tsv").is_file()
    assert (tmp_path / "noise" / "noise_toy_rate.png").is_file()
