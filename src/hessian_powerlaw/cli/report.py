"""Report commands (no torch): dnn-table, fidelity, curvature-table, curvature-plots, compare,
plots, blocks-plot, reproduction, check-config."""

import argparse
import sys
from pathlib import Path

from hessian_powerlaw.cli.flags import count, positive_int
from hessian_powerlaw.config import load_config


def cmd_dnn_table(args: argparse.Namespace) -> None:
    """`dnn-table`: the network records as one TSV and markdown table."""
    from hessian_powerlaw.io import distinct, read_json, write_text, write_tsv
    from hessian_powerlaw.records import NETWORK_KEYS
    from hessian_powerlaw.report.tables import dnn_markdown

    records = [read_json(p) for p in distinct(args.records)]
    write_tsv(args.out, records, NETWORK_KEYS)
    if args.markdown:
        write_text(args.markdown, dnn_markdown(records))
    print(f"dnn-table: {len(records)} runs -> {args.out}", file=sys.stderr)


def cmd_fidelity(args: argparse.Namespace) -> None:
    """`fidelity`: the 4HHB estimator check against the study's values, with its figure."""
    from hessian_powerlaw.io import write_text, write_tsv
    from hessian_powerlaw.report import fidelity, figures
    from hessian_powerlaw.report.records import dnn_items

    items = [(rec["variant"] or "spectrum", rec, values) for _, values, rec in dnn_items(args.records)]
    trained = [item for item in items if item[1].get("epochs")]
    table = fidelity.rows(trained, args.k)
    write_tsv(args.out, table, fidelity.COLUMNS)
    write_text(args.markdown, fidelity.markdown(table))
    figures.save(figures.fidelity_figure(table), Path(args.figure).parent, Path(args.figure).stem)
    print(
        f"fidelity: {len(trained)} trained-network spectra, {len(table)} fits -> {args.out}", file=sys.stderr
    )


def cmd_curvature_table(args: argparse.Namespace) -> None:
    """`curvature-table`: curvature measured during training, as tables."""
    from hessian_powerlaw.io import write_text, write_tsv
    from hessian_powerlaw.report import curvature
    from hessian_powerlaw.report.records import metrics_files
    from hessian_powerlaw.report.tables import curvature_markdown

    runs = metrics_files(args.metrics)
    rows = [curvature.run_row(name, metrics, args.rate_from_epoch) for name, metrics in runs]
    lr_fits = curvature.lr_fits(rows)
    negative = curvature.negative_fits(runs)
    write_tsv(args.out, rows, curvature.RUN_COLUMNS)
    write_tsv(args.lr_fits, lr_fits, curvature.FIT_COLUMNS)
    write_tsv(args.negative_fits, negative, curvature.FIT_COLUMNS)
    if args.markdown:
        write_text(args.markdown, curvature_markdown(rows, lr_fits, negative))
    print(
        f"curvature-table: {len(rows)} runs, {len(lr_fits)} learning-rate fits -> {args.out}", file=sys.stderr
    )


def cmd_curvature_plots(args: argparse.Namespace) -> None:
    """`curvature-plots`: the figures of the curvature measured during training."""
    from hessian_powerlaw.report import curvature_figures, figures
    from hessian_powerlaw.report.records import metrics_files

    runs = metrics_files(args.metrics)
    out = Path(args.out_dir)
    written = figures.save(curvature_figures.trace_figure(runs), out, "curvature_trace")
    written += figures.save(curvature_figures.lr_figure(runs, args.rate_from_epoch), out, "curvature_lr")
    written += figures.save(curvature_figures.negative_figure(runs), out, "curvature_negative")
    written += figures.save(curvature_figures.noise_figure(runs), out, "curvature_noise")
    print(f"curvature-plots: {len(written)} files in {out}", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> None:
    """`compare`: proteins and networks side by side in one table."""
    from hessian_powerlaw.io import distinct, read_json, read_tsv, write_text, write_tsv
    from hessian_powerlaw.report import tables

    proteins = read_tsv(args.proteins)
    dnn = [read_json(p) for p in distinct(args.dnn_records)]
    rows = tables.comparison_rows(tables.size_bin_rows(proteins), dnn)
    write_tsv(args.out, rows, tables.COMPARISON_COLUMNS)
    markdown = tables.comparison_markdown(rows, tables.side_summaries(proteins, dnn))
    if args.markdown:
        write_text(args.markdown, markdown)
    if args.html:
        write_text(args.html, tables.comparison_html(markdown))
    print(f"compare: {len(proteins)} proteins, {len(dnn)} networks -> {args.out}", file=sys.stderr)


def cmd_plots(args: argparse.Namespace) -> None:
    """`plots`: the rank-size and overlay figures."""
    from hessian_powerlaw.io import read_tsv
    from hessian_powerlaw.report import figures
    from hessian_powerlaw.report.records import dnn_items, protein_items

    out = Path(args.out_dir)
    proteins = read_tsv(args.proteins) if args.proteins else []
    shown, overlay = protein_items(proteins, args.protein_records, args.per_bin) if proteins else ([], [])
    networks = dnn_items(args.dnn_records)
    written = []
    if shown:
        title = "Inverted ANM spectra (proteins closest to their bin's median s)"
        written += figures.save(figures.spectra_figure(shown, "σ = 1/λ", title), out, "protein_spectra")
        written += figures.save(figures.size_bin_histograms(proteins), out, "protein_size_bins")
    if networks:
        fig = figures.spectra_figure(networks, "Hessian eigenvalue λ", "Top-K loss-Hessian eigenvalues")
        written += figures.save(fig, out, "dnn_spectra")
        written += figures.save(figures.gaps_figure(networks), out, "dnn_eigengaps")
        written += figures.save(figures.sweep_figure([r for _, _, r in networks]), out, "dnn_sweeps")
    written += figures.save(figures.overlay_figure(overlay, networks), out, "overlay")
    print(f"plots: {len(written)} files in {out}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> None:
    """`check-config`: validate a config file against the schema."""
    load_config(args.config)
    print(f"{args.config}: valid")


def cmd_blocks_plot(args: argparse.Namespace) -> None:
    """`blocks-plot`: the figure of a per-block spectrum table."""
    from hessian_powerlaw.io import read_tsv
    from hessian_powerlaw.report.blocks import blocks_figure
    from hessian_powerlaw.report.figures import save

    rows = read_tsv(args.table)
    if not rows or "block" not in rows[0]:
        raise ValueError(f"{args.table}: not a table of dnn-spectrum --blocks")
    out = Path(args.out)
    save(blocks_figure(rows), out.parent, out.name.removesuffix(".png"))
    print(f"blocks-plot: {len(rows)} blocks -> {out} (and .pdf)", file=sys.stderr)


def cmd_reproduction(args: argparse.Namespace) -> None:
    """`reproduction`: the study's rows beside ours (TSV and markdown)."""
    from hessian_powerlaw.io import distinct, read_json, read_tsv, write_text, write_tsv
    from hessian_powerlaw.report import reproduction

    records = [read_json(p) for p in distinct(args.records)]
    proteins = {Path(p).stem: read_tsv(p) for p in distinct(args.proteins)}
    study = reproduction.study_rows(args.study)
    table = reproduction.rows(study, records, only_run=args.only_run, proteins=proteins)
    write_tsv(args.out, table, reproduction.COLUMNS)
    if args.markdown:
        write_text(args.markdown, reproduction.markdown(table))
    if args.figure:
        from hessian_powerlaw.report.figures import save
        from hessian_powerlaw.report.reproduction_figures import slope_figure

        save(slope_figure(records), Path(args.figure).parent, Path(args.figure).stem)
    count = reproduction.summary(table)
    print(
        f"reproduction: {count['run']} of {count['rows']} study rows run from {len(records)} records; "
        f"verdicts agree {count['verdicts_agree']}/{count['verdicts']}, "
        f"beta within 2 sigma {count['betas_within']}/{count['betas']} -> {args.out}",
        file=sys.stderr,
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the report subcommands to the parser's subparsers."""
    p = sub.add_parser("check-config", help="validate a config file against the schema")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("dnn-table", help="join network records into a table")
    p.add_argument("records", nargs="+", metavar="JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_dnn_table)

    p = sub.add_parser("fidelity", help="beta at several K for every spectrum variant of the trained runs")
    p.add_argument("records", nargs="+", metavar="JSON", help="spectrum records (their .npy beside them)")
    p.add_argument("--k", type=positive_int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--out", required=True, help="TSV")
    p.add_argument("--markdown", required=True)
    p.add_argument("--figure", required=True, help="PNG path (a PDF is written beside it)")
    p.set_defaults(func=cmd_fidelity)

    for name, help_text in (
        ("curvature-table", "trace change rates, learning-rate and negative-eigenvalue fits"),
        ("curvature-plots", "figures of curvature along training"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "metrics", nargs="+", metavar="JSON", help="metrics of runs trained with --curvature-every"
        )
        p.add_argument(
            "--rate-from-epoch", type=count, default=0, help="fit the trace rate from this epoch on"
        )
        if name == "curvature-plots":
            p.add_argument("--out-dir", required=True)
            p.set_defaults(func=cmd_curvature_plots)
            continue
        p.add_argument("--out", required=True, help="per-run TSV")
        p.add_argument("--lr-fits", required=True, help="TSV: trace rate against lr^2 per group")
        p.add_argument("--negative-fits", required=True, help="TSV: negative-eigenvalue sum against loss")
        p.add_argument("--markdown")
        p.set_defaults(func=cmd_curvature_table)

    p = sub.add_parser("compare", help="proteins' size bins beside the networks (TSV, Markdown, HTML)")
    p.add_argument("--proteins", required=True, help="per-protein TSV")
    p.add_argument("--dnn-records", nargs="*", default=[], metavar="JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown")
    p.add_argument("--html")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plots", help="rank-size, overlay, histogram, sweep and eigengap figures")
    p.add_argument("--proteins", help="per-protein TSV")
    p.add_argument("--protein-records", default="results/protein/records", help="directory of {ID}.npy")
    p.add_argument("--per-bin", type=count, default=2, help="protein panels per size bin")
    p.add_argument("--dnn-records", nargs="*", default=[], metavar="JSON", help="with .npy beside them")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("blocks-plot", help="figure of a dnn-spectrum --blocks table (beta per block)")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--out", required=True, help="PNG (a PDF is written beside it)")
    p.set_defaults(func=cmd_blocks_plot)

    p = sub.add_parser("reproduction", help="the power-law study's rows beside the reproduction records")
    p.add_argument("records", nargs="*", metavar="JSON", help="dnn-spectrum records, run = EXPERIMENT_sSEED")
    p.add_argument("--study", help="the study's values (TSV; default: the bundled ones)")
    p.add_argument(
        "--proteins", nargs="*", default=[], metavar="TSV", help="protein tables, named EXPERIMENT.tsv"
    )
    p.add_argument("--only-run", action="store_true", help="only the rows that have records")
    p.add_argument("--out", required=True, help="TSV")
    p.add_argument("--markdown", help="Markdown table with the agreement count")
    p.add_argument("--figure", help="PNG of s against test accuracy, lambda_max and trace (+ PDF)")
    p.set_defaults(func=cmd_reproduction)
