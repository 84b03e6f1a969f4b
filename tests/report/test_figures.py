from synthetic import write_metrics, write_network

from conftest import BUNDLED
from hessian_powerlaw.protein.cache import analyse_cached
from hessian_powerlaw.report import curvature_figures, figures
from hessian_powerlaw.report.records import dnn_items, metrics_files, protein_items


def _png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_figure_is_written_as_png_and_pdf(tmp_path):
    nets = [
        write_network(tmp_path / "dnn", "net_e50", 2.0),
        write_network(tmp_path / "dnn", "net_e0", 3.0, epochs=0),
    ]
    networks = dnn_items(nets)
    records = [
        analyse_cached(BUNDLED / f"{n}.pdb.gz", tmp_path / "rec", {"compare": False})
        for n in ("1aki", "3ptb")
    ]
    shown, overlay = protein_items(records, tmp_path / "rec", per_bin=1)
    runs = metrics_files(
        [
            write_metrics(tmp_path / "m", f"{o}_s{s}", optimizer=o, seed=s)
            for o in ("sgd", "gd-noise")
            for s in (0, 1)
        ]
        + [write_metrics(tmp_path / "m", f"lr{lr}", lr=lr, rate=-(lr**2)) for lr in (0.02, 0.1, 0.2)]
    )
    out = tmp_path / "plots"
    made = {
        "spectra": figures.spectra_figure(shown, "σ", "proteins"),
        "dnn": figures.spectra_figure(networks, "λ", "networks"),
        "gaps": figures.gaps_figure(networks),
        "sweeps": figures.sweep_figure([r for _, _, r in networks]),
        "overlay": figures.overlay_figure(overlay, networks),
        "bins": figures.size_bin_histograms(records),
        "trace": curvature_figures.trace_figure(runs),
        "lr": curvature_figures.lr_figure(runs),
        "negative": curvature_figures.negative_figure(runs),
        "noise": curvature_figures.noise_figure(runs),
    }
    for name, fig in made.items():
        written = figures.save(fig, out, name)
        assert sorted(p.suffix for p in map(type(out), written)) == [".pdf", ".png"], name
        assert _png(out / f"{name}.png")
    assert not list(out.glob(".*.tmp"))
