"""Command-line interface: one subcommand per pipeline step.

Options left unset take their value from `--config FILE` when given, else from the
config schema's defaults, so a step behaves the same inside and outside Snakemake.
"""

import argparse
import datetime
import glob
import json
import math
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .config import DNN_SETTING_PATHS, ConfigError, defaults, load_config, settings


def resolve(args, names, paths=None):
    """Settings for `names`: explicit options, then --config, then schema defaults."""
    base = load_config(args.config) if getattr(args, "config", None) else defaults()
    values = settings(base, names, paths)
    for name in names:
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return values


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _k_value(text):
    value = _number(text)
    if value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"K must be a fraction in (0, 1) or an integer count, got {text}")
    return value


def _positive(text):
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative(text):
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text):
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _integer(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {text}")
    return value


def _count(text):
    return _integer(text, 0)


def _positive_int(text):
    return _integer(text, 1)


# ---------------------------------------------------------------- entries


def read_entries(path, batch=None, batch_size=None):
    """Rows (pdb_id, path) of an entries file, optionally one batch of it."""
    from .tables import read_tsv

    rows = read_tsv(path)
    if rows and not {"pdb_id", "path"} <= set(rows[0]):
        raise ConfigError(f"{path}: an entries file needs the columns pdb_id and path")
    if batch is not None:
        rows = rows[batch * batch_size : (batch + 1) * batch_size]
    return [{"pdb_id": r["pdb_id"] or "", "path": r["path"] or ""} for r in rows]


def local_entries(pattern):
    """Structure files of a directory or glob, with their entry ids, sorted by id."""
    from .structure import entry_id

    path = Path(pattern)
    if path.is_dir():
        files = [p for p in path.iterdir() if _is_structure(p.name)]
    else:
        files = [Path(p) for p in glob.glob(pattern) if _is_structure(Path(p).name)]
    rows = {}
    for file in sorted(files):
        rows.setdefault(entry_id(file), str(file))
    return [{"pdb_id": k, "path": v} for k, v in sorted(rows.items())]


def _is_structure(name):
    name = name.lower().removesuffix(".gz")
    return name.endswith((".pdb", ".ent", ".cif", ".mmcif"))


SELECT = (
    "source",
    "local",
    "cache",
    "min_residues",
    "max_residues",
    "query_url",
    "method",
    "max_resolution",
    "polymer_types",
    "identity_cutoff",
    "rows_per_page",
    "max_entries",
)


def cmd_select(args):
    from .atomic import write_text
    from .rcsb import build_query, cache_path, search_entries
    from .tables import to_tsv

    opts = resolve(args, SELECT)
    header = [
        f"# hessian-powerlaw {__version__} entry selection",
        f"# date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"# source: {opts['source']}",
    ]
    if opts["source"] == "local":
        rows = local_entries(opts["local"])
        header.append(f"# local: {opts['local']}")
    else:
        query = {
            "url": opts["query_url"],
            "method": opts["method"],
            "max_resolution": opts["max_resolution"],
            "polymer_types": opts["polymer_types"],
            "identity_cutoff": opts["identity_cutoff"],
            "rows_per_page": opts["rows_per_page"],
        }
        ids = search_entries(query, opts["min_residues"], opts["max_residues"])
        if opts["max_entries"]:
            ids = ids[: opts["max_entries"]]
        rows = [{"pdb_id": i, "path": str(cache_path(opts["cache"], i))} for i in ids]
        header.append(f"# url: {query['url']}")
        payload = build_query(query, opts["min_residues"], opts["max_residues"])
        header.append("# query: " + json.dumps(payload))
    if not rows:
        where = opts["local"] if opts["source"] == "local" else opts["query_url"]
        raise ConfigError(f"select: no entries found ({opts['source']}: {where})")
    write_text(args.out, "\n".join(header) + "\n" + to_tsv(rows, ("pdb_id", "path")))
    print(f"select: {len(rows)} entries -> {args.out}", file=sys.stderr)


DOWNLOAD = ("cache", "base_url", "workers", "retries", "timeout")


def cmd_download(args):
    from .rcsb import download_entries
    from .tables import write_tsv

    opts = resolve(args, DOWNLOAD)
    rows = read_entries(args.entries, args.batch, args.batch_size)
    result = download_entries([r["pdb_id"] for r in rows], **opts)
    write_tsv(args.out, result, ("pdb_id", "path", "status", "reason"))
    failed = sum(r["status"] == "failed" for r in result)
    print(f"download: {len(result) - failed} present, {failed} failed -> {args.out}", file=sys.stderr)


# ---------------------------------------------------------------- proteins


def cmd_protein(args):
    from .protein import RECORD_KEYS, SETTINGS, analyse, analyse_cached, new_record
    from .tables import read_tsv, write_tsv

    opts = resolve(args, SETTINGS)
    if args.entries:
        items = read_entries(args.entries, args.batch, args.batch_size)
    else:
        items = [{"pdb_id": None, "path": f} for f in args.files]
    if not items:
        raise ConfigError("protein: no structure files given (FILE... or --entries)")
    failed_downloads = {}
    if args.downloads:
        failed_downloads = {
            str(r["pdb_id"]): r["reason"] for r in read_tsv(args.downloads) if r["status"] == "failed"
        }
    source = "rcsb" if args.downloads else "local"
    records = []
    for n, item in enumerate(items, 1):
        if item["pdb_id"] in failed_downloads:
            record = new_record(item["path"], source)
            reason = f"download failed: {failed_downloads[item['pdb_id']]}"
            record.update(pdb_id=item["pdb_id"], reason=reason)
        elif args.records:
            record = analyse_cached(item["path"], args.records, opts, source, item["pdb_id"])
        else:
            record = analyse(item["path"], opts, source)[0]
        record["pdb_id"] = record["pdb_id"] or item["pdb_id"] or Path(item["path"]).name
        records.append(record)
        if record["status"] == "ok":
            ratio = record["d_ks"] / record["d_c"]
            what = f"beta {record['beta']:.3f} s {record['s']:.3f} d_ks/d_c {ratio:.2f}"
        else:
            what = f"{record['file']}: {record['reason']}"
        print(f"[{n}/{len(items)}] {record['pdb_id']} {record['status']}: {what}", file=sys.stderr)
    write_tsv(args.out, records, RECORD_KEYS)


def cmd_tables(args):
    from .atomic import write_text
    from .protein import RECORD_KEYS
    from .tables import SIZE_BIN_COLUMNS, read_tsv, size_bin_rows, size_bins_markdown, write_tsv

    records = [row for path in args.tables for row in read_tsv(path)]
    write_tsv(args.proteins, records, RECORD_KEYS)
    failures = [r for r in records if r["status"] != "ok"]
    if args.failures:
        write_tsv(args.failures, failures, ("pdb_id", "file", "status", "reason"))
    rows = size_bin_rows(records)
    write_tsv(args.bins, rows, SIZE_BIN_COLUMNS)
    if args.markdown:
        ks = sorted({r["k"] for r in records if r["status"] == "ok"})
        label = args.k_label or (str(ks[0]) if len(ks) == 1 else "per entry")
        write_text(args.markdown, size_bins_markdown(rows, label))
    fitted = len(records) - len(failures)
    print(f"tables: {fitted} fitted, {len(failures)} skipped or failed", file=sys.stderr)


# ---------------------------------------------------------------- networks

TRAIN = ("data_root", "device", "lr", "weight_decay", "normalization", "label_noise")
CURVATURE = ("n_eval", "estimator", "n_hvps", "top_k", "bottom_k", "tol")
SPECTRUM = (
    "device",
    "k",
    "n_eval",
    "solver",
    "tol",
    "dtype",
    "verify",
    "slq_steps",
    "block_size",
    "hessian",
    "weight_decay_term",
)


def cmd_train(args):
    from .training import train

    opts = resolve(args, TRAIN, DNN_SETTING_PATHS)
    spec = {
        "model": args.model,
        "dataset": args.dataset,
        "data_root": opts["data_root"] or "",
        "n_train": args.n_train,
        "normalization": opts["normalization"],
        "label_noise": opts["label_noise"],
        "optimizer": args.optimizer,
        "lr": opts["lr"],
        "weight_decay": opts["weight_decay"],
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "schedule": args.schedule,
        "seed": args.seed,
        "depth": args.depth,
        "width": args.width,
    }
    curvature = None
    if args.curvature_every:
        names = {f"curvature_{name}": name for name in CURVATURE}
        values = resolve(args, tuple(names), {k: ("dnn", "curvature", v) for k, v in names.items()})
        curvature = {"every": args.curvature_every, **{names[k]: v for k, v in values.items()}}
    checkpoint = args.checkpoint or f"{args.out}.ckpt"
    _, meta = train(
        spec, args.out, checkpoint, args.metrics, opts["device"], progress=not args.quiet, curvature=curvature
    )
    Path(checkpoint).unlink(missing_ok=True)
    print(
        f"train: {meta['model']} on {meta['n_train_used']} {meta['dataset']} images, "
        f"{meta['epochs']} epochs: "
        f"train loss {meta['train_loss']:.4g}, test accuracy {meta['test_acc']:.4f} -> {args.out}",
        file=sys.stderr,
    )


def cmd_dnn_spectrum(args):
    from .atomic import save_npy, write_json
    from .dnn import spectrum

    opts = resolve(args, SPECTRUM, DNN_SETTING_PATHS)
    record, values, residuals = spectrum(
        args.model_file,
        k=opts["k"],
        n_eval=opts["n_eval"],
        solver=opts["solver"],
        tol=opts["tol"],
        dtype=opts["dtype"],
        device=opts["device"],
        verify=opts["verify"],
        data_root=args.data_root,
        steps_per_k=args.steps_per_k,
        progress=not args.quiet,
        slq_steps=opts["slq_steps"],
        block_size=opts["block_size"],
        hessian=opts["hessian"],
        weight_decay_term=opts["weight_decay_term"],
        variant=args.variant,
    )
    record["run"] = args.run or Path(args.model_file).name.removesuffix(".pt")
    if args.spectrum:
        save_npy(args.spectrum, np.stack([values, residuals]))
    write_json(args.out, record)
    if record["status"] == "ok":
        law = "power law" if record["power_law"] else "not a power law"
        verdict = (
            f"beta {record['beta']:.3f} ± {record['beta_sigma']:.3f}, s {record['s']:.3f}, "
            f"d_ks {record['d_ks']:.4f} (d_c {record['d_c']:.4f}): {law}"
        )
    else:
        verdict = record["reason"]
    print(
        f"dnn-spectrum: {record['run']} top-{record['k'] or opts['k']}, {record['hvp_count']} HVPs, "
        f"{record['seconds']:.0f} s: {verdict}",
        file=sys.stderr,
    )


def cmd_dnn_table(args):
    import json

    from .atomic import write_text
    from .dnn import RECORD_KEYS
    from .tables import dnn_markdown, write_tsv

    records = [json.loads(Path(p).read_text()) for p in args.records]
    write_tsv(args.out, records, RECORD_KEYS)
    if args.markdown:
        write_text(args.markdown, dnn_markdown(records))
    print(f"dnn-table: {len(records)} runs -> {args.out}", file=sys.stderr)


def _metrics_files(paths):
    """(run name, metrics) of training runs that recorded curvature."""
    runs = []
    for path in paths:
        metrics = json.loads(Path(path).read_text())
        if "final" not in metrics:
            raise ValueError(f"{path}: training did not finish (no final record)")
        runs.append((Path(path).stem, metrics))
    return runs


def cmd_fidelity(args):
    from . import fidelity, plots
    from .atomic import write_text
    from .tables import write_tsv

    items = [(rec["variant"] or "spectrum", rec, values) for _, values, rec in _dnn_items(args.records)]
    trained = [item for item in items if item[1].get("epochs")]
    table = fidelity.rows(trained, args.k)
    write_tsv(args.out, table, fidelity.COLUMNS)
    write_text(args.markdown, fidelity.markdown(table))
    plots.save(plots.fidelity_figure(table), Path(args.figure).parent, Path(args.figure).stem)
    print(
        f"fidelity: {len(trained)} trained-network spectra, {len(table)} fits -> {args.out}", file=sys.stderr
    )


def cmd_curvature_table(args):
    from . import curvature
    from .atomic import write_text
    from .tables import curvature_markdown, write_tsv

    runs = _metrics_files(args.metrics)
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


def cmd_curvature_plots(args):
    from . import plots

    runs = _metrics_files(args.metrics)
    out = Path(args.out_dir)
    written = plots.save(plots.trace_figure(runs), out, "curvature_trace")
    written += plots.save(plots.lr_figure(runs, args.rate_from_epoch), out, "curvature_lr")
    written += plots.save(plots.negative_figure(runs), out, "curvature_negative")
    written += plots.save(plots.noise_figure(runs), out, "curvature_noise")
    print(f"curvature-plots: {len(written)} files in {out}", file=sys.stderr)


# ---------------------------------------------------------------- comparison


def _dnn_items(paths):
    """(run, eigenvalues, record) for network records whose spectrum file sits beside them."""
    from .atomic import load_npy

    items = []
    for path in paths:
        record = json.loads(Path(path).read_text())
        spectrum = Path(path).with_suffix(".npy")
        if spectrum.is_file():
            items.append((record["run"], load_npy(spectrum)[0], record))
    return items


def _protein_items(records, records_dir, per_bin):
    """(title, sigma, record) of fitted proteins: per size bin, those closest to the median s.
    An entry whose spectrum file is missing or unreadable is left out, with a warning."""
    from .structure import SAFE_NAME
    from .tables import SIZE_BINS

    spectra = {}
    for r in records:
        if r["status"] == "ok" and SAFE_NAME.match(r["pdb_id"] or ""):
            sigma = _spectrum_file(Path(records_dir) / f"{r['pdb_id']}.npy", r["n_modes"])
            if sigma is not None:
                spectra[r["pdb_id"]] = sigma
    ok = [r for r in records if r["pdb_id"] in spectra and r["status"] == "ok"]
    chosen = []
    for _, low, high in SIZE_BINS:
        members = [r for r in ok if low <= 3 * r["n_residues"] < high]
        if members:
            median = float(np.median([r["s"] for r in members]))
            chosen += sorted(members, key=lambda r: abs(r["s"] - median))[:per_bin]
    title = lambda r: f"{r['pdb_id']} ({r['n_residues']} Cα, 3N={3 * r['n_residues']})"  # noqa: E731
    return [(title(r), spectra[r["pdb_id"]], r) for r in chosen], [
        (r["pdb_id"], spectra[r["pdb_id"]], r) for r in ok[:300]
    ]


def _spectrum_file(path, n_modes):
    """The spectrum in `path` if it loads with `n_modes` finite values, else None (warned)."""
    from .atomic import load_npy

    try:
        sigma = load_npy(path)
        if sigma.shape == (n_modes,) and np.all(np.isfinite(sigma)):
            return sigma
        problem = f"holds {sigma.shape} values, not {n_modes} finite ones"
    except (OSError, ValueError) as err:
        problem = " ".join(str(err).split()) or type(err).__name__
    print(f"plots: warning: {path} left out ({problem}); rerun its protein batch", file=sys.stderr)
    return None


def cmd_compare(args):
    from .atomic import write_text
    from .tables import (
        COMPARISON_COLUMNS,
        comparison_html,
        comparison_markdown,
        comparison_rows,
        read_tsv,
        side_summaries,
        size_bin_rows,
        write_tsv,
    )

    proteins = read_tsv(args.proteins)
    dnn = [json.loads(Path(p).read_text()) for p in args.dnn_records]
    rows = comparison_rows(size_bin_rows(proteins), dnn)
    write_tsv(args.out, rows, COMPARISON_COLUMNS)
    markdown = comparison_markdown(rows, side_summaries(proteins, dnn))
    if args.markdown:
        write_text(args.markdown, markdown)
    if args.html:
        write_text(args.html, comparison_html(markdown))
    print(f"compare: {len(proteins)} proteins, {len(dnn)} networks -> {args.out}", file=sys.stderr)


def cmd_plots(args):
    from . import plots
    from .tables import read_tsv

    out = Path(args.out_dir)
    proteins = read_tsv(args.proteins) if args.proteins else []
    shown, overlay = _protein_items(proteins, args.protein_records, args.per_bin) if proteins else ([], [])
    networks = _dnn_items(args.dnn_records)
    written = []
    if shown:
        fig = plots.spectra_figure(
            shown, "σ = 1/λ", "Inverted ANM spectra (proteins closest to their bin's median s)"
        )
        written += plots.save(fig, out, "protein_spectra")
        written += plots.save(plots.size_bin_histograms(proteins), out, "protein_size_bins")
    if networks:
        fig = plots.spectra_figure(networks, "Hessian eigenvalue λ", "Top-K loss-Hessian eigenvalues")
        written += plots.save(fig, out, "dnn_spectra")
        written += plots.save(plots.gaps_figure(networks), out, "dnn_eigengaps")
        written += plots.save(plots.sweep_figure([r for _, _, r in networks]), out, "dnn_sweeps")
    written += plots.save(plots.overlay_figure(overlay, networks), out, "overlay")
    print(f"plots: {len(written)} files in {out}", file=sys.stderr)


def cmd_check_config(args):
    load_config(args.config)
    print(f"{args.config}: valid")


# ---------------------------------------------------------------- parser


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hessian-powerlaw",
        description="Power-law Hessian spectra of protein elastic networks and neural networks. "
        "Unset options come from --config FILE, else from the schema defaults.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate a config file against the schema")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("select", help="list the PDB entries to analyse (local files or RCSB query)")
    _config_arg(p)
    p.add_argument("--source", choices=("local", "rcsb"))
    p.add_argument("--local", help="directory or glob of structure files (source local)")
    p.add_argument("--cache", help="download cache; entries' paths point into it (source rcsb)")
    p.add_argument("--min-residues", type=_count)
    p.add_argument("--max-residues", type=_count)
    p.add_argument("--query-url")
    p.add_argument("--method", help="experimental method (X-RAY DIFFRACTION)")
    p.add_argument("--max-resolution", type=_positive)
    p.add_argument("--polymer-types", help="selected polymer entity types (Protein (only))")
    p.add_argument("--identity-cutoff", type=int, choices=(30, 40, 50, 70, 90, 95, 100))
    p.add_argument("--rows-per-page", type=_positive_int)
    p.add_argument("--max-entries", type=_count, help="keep the first N entries (0: all)")
    p.add_argument("--out", required=True, help="entries TSV (pdb_id, path) with provenance header")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("download", help="download entries (mmCIF.gz) into a verified cache")
    _config_arg(p)
    p.add_argument("--entries", required=True)
    _batch_args(p)
    p.add_argument("--cache")
    p.add_argument("--base-url", help="https://files.rcsb.org/download or a mirror")
    p.add_argument("--workers", type=_positive_int)
    p.add_argument("--retries", type=_count)
    p.add_argument("--timeout", type=_positive)
    p.add_argument("--out", required=True, help="status TSV (pdb_id, path, status, reason)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("protein", help="ANM spectra and power-law fits of structure files")
    _config_arg(p)
    p.add_argument("files", nargs="*", metavar="FILE", help=".pdb/.ent/.cif, optionally .gz")
    p.add_argument("--entries", help="entries TSV instead of FILE arguments")
    _batch_args(p)
    p.add_argument("--downloads", help="download status TSV; failed entries are reported as such")
    p.add_argument("--cutoff", type=_positive, help="ANM cutoff in Angstrom (9)")
    p.add_argument("--gamma", type=_positive, help="ANM spring constant (1)")
    p.add_argument("--k", type=_k_value, help="fraction of non-zero modes (0.1) or a count (1000)")
    p.add_argument("--zero-mode-tol", type=_positive, help="relative zero-mode threshold (1e-12)")
    p.add_argument("--disconnected", choices=("exclude", "flag"), help="more than 6 zero modes")
    p.add_argument("--min-residues", type=_count)
    p.add_argument("--max-residues", type=_count)
    p.add_argument("--eigen-backend", choices=("auto", "scipy", "torch"))
    p.add_argument(
        "--no-compare",
        dest="compare",
        action="store_false",
        default=None,
        help="skip the likelihood-ratio tests",
    )
    p.add_argument("--records", help="directory for per-entry JSON records and .npy spectra (resumable)")
    p.add_argument("--out", required=True, help="per-protein TSV")
    p.set_defaults(func=cmd_protein)

    p = sub.add_parser("tables", help="join per-batch protein tables; size-bin summary")
    p.add_argument("tables", nargs="+", metavar="TSV")
    p.add_argument("--proteins", required=True, help="joined per-protein TSV")
    p.add_argument("--bins", required=True, help="size-bin TSV")
    p.add_argument("--markdown", help="size-bin Markdown table")
    p.add_argument("--failures", help="TSV of skipped and failed entries")
    p.add_argument("--k-label", help="how K is described in the Markdown title")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("train", help="train a reference network (or save its initialisation)")
    _config_arg(p)
    p.add_argument("--model", default="lenet", choices=_sweep_enum("model"))
    p.add_argument("--dataset", default="mnist", choices=_sweep_enum("dataset"))
    p.add_argument(
        "--data-root", help="torchvision data root (downloaded when absent); default: bundled MNIST subset"
    )
    p.add_argument("--n-train", type=_count, default=0, help="seeded training subset (0: all)")
    p.add_argument("--epochs", type=_count, default=50, help="0 saves the random initialisation")
    p.add_argument("--optimizer", default="sgd", choices=_sweep_enum("optimizer"))
    p.add_argument("--lr", type=_positive, help="learning rate (default: the study's for the optimizer)")
    p.add_argument("--weight-decay", type=_non_negative)
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--seed", type=_count, default=0)
    p.add_argument("--depth", type=_positive_int, default=2, help="hidden layers (fcn, lnn)")
    p.add_argument("--width", type=_positive_int, default=100, help="hidden width (fcn, lnn)")
    p.add_argument("--normalization", choices=("pixel", "global", "none"))
    p.add_argument("--label-noise", type=_fraction, help="fraction of random training labels")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--schedule", default="step", choices=("step", "constant"), help="learning-rate schedule")
    p.add_argument("--checkpoint", help="per-epoch checkpoint for resuming (default OUT.ckpt)")
    p.add_argument("--metrics", help="per-epoch metrics JSON")
    g = p.add_argument_group("curvature along training (into the metrics JSON)")
    g.add_argument("--curvature-every", type=_count, default=0, help="epochs between measurements (0: none)")
    g.add_argument("--curvature-n-eval", type=_count, help="Hessian over the first N training images")
    g.add_argument("--curvature-estimator", choices=("hutchpp", "hutchinson"), help="trace estimator")
    g.add_argument("--curvature-n-hvps", type=_positive_int, help="products per trace estimate")
    g.add_argument("--curvature-top-k", type=_positive_int, help="top eigenvalues per measurement")
    g.add_argument("--curvature-bottom-k", type=_positive_int, help="bottom eigenvalues per measurement")
    g.add_argument("--curvature-tol", type=_positive, help="Lanczos tolerance of the extreme eigenvalues")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="model file (state dict + settings)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("dnn-spectrum", help="top-K loss-Hessian eigenvalues of a model and their fit")
    _config_arg(p)
    p.add_argument("model_file", metavar="MODEL")
    p.add_argument("--k", type=_positive_int, help="number of top eigenvalues (1000)")
    p.add_argument("--n-eval", type=_count, help="Hessian over the first N training images (0: all)")
    p.add_argument("--solver", choices=("lanczos", "block", "arpack", "slq", "power"))
    p.add_argument(
        "--block-size",
        type=_positive_int,
        help="vectors per product of the block solver (16; at most K/4 used)",
    )
    p.add_argument(
        "--hessian", choices=("auto", "autograd", "sequential"), help="Hessian-product implementation"
    )
    p.add_argument("--slq-steps", type=_positive_int, help="Lanczos steps of the slq solver (3000)")
    p.add_argument(
        "--weight-decay-term",
        action="store_true",
        default=None,
        help="add the training's wd I to the Hessian",
    )
    p.add_argument("--variant", default="spectrum", help="name of this spectrum variant in the record")
    p.add_argument("--tol", type=_positive)
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--steps-per-k", type=_positive, help="step limit / K (lanczos 6; arpack: ncv/K, 2)")
    p.add_argument("--verify", action="store_true", default=None, help="explicit residuals (K more HVPs)")
    p.add_argument("--device")
    p.add_argument("--data-root", help="where the model's data set lives, if moved")
    p.add_argument("--run", help="run name in the record (default: the model file's name)")
    p.add_argument("--spectrum", help=".npy with eigenvalues (row 0) and residuals (row 1)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="record JSON")
    p.set_defaults(func=cmd_dnn_spectrum)

    p = sub.add_parser("fidelity", help="beta at several K for every spectrum variant of the trained runs")
    p.add_argument("records", nargs="+", metavar="JSON", help="spectrum records (their .npy beside them)")
    p.add_argument("--k", type=_positive_int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--out", required=True, help="TSV")
    p.add_argument("--markdown", required=True)
    p.add_argument("--figure", required=True, help="PNG path (a PDF is written beside it)")
    p.set_defaults(func=cmd_fidelity)

    p = sub.add_parser(
        "curvature-table", help="trace change rates, learning-rate and negative-eigenvalue fits"
    )
    p.add_argument(
        "metrics", nargs="+", metavar="JSON", help="metrics of runs trained with --curvature-every"
    )
    p.add_argument("--rate-from-epoch", type=_count, default=0, help="fit the trace rate from this epoch on")
    p.add_argument("--out", required=True, help="per-run TSV")
    p.add_argument("--lr-fits", required=True, help="TSV: trace rate against lr^2 per group")
    p.add_argument("--negative-fits", required=True, help="TSV: negative-eigenvalue sum against loss")
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_curvature_table)

    p = sub.add_parser("curvature-plots", help="figures of curvature along training")
    p.add_argument("metrics", nargs="+", metavar="JSON")
    p.add_argument("--rate-from-epoch", type=_count, default=0)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_curvature_plots)

    p = sub.add_parser("dnn-table", help="join network records into a table")
    p.add_argument("records", nargs="+", metavar="JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_dnn_table)

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
    p.add_argument("--per-bin", type=_count, default=2, help="protein panels per size bin")
    p.add_argument("--dnn-records", nargs="*", default=[], metavar="JSON", help="with .npy beside them")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_plots)
    return parser


def _sweep_enum(key):
    """Allowed values of a sweep dimension, from the config schema (no torch import)."""
    from .config import load_schema

    return load_schema()["properties"]["dnn"]["properties"]["sweeps"]["items"]["properties"][key]["items"][
        "enum"
    ]


def _config_arg(p):
    p.add_argument("--config", help="config YAML providing unset options")


def _batch_args(p):
    p.add_argument("--batch", type=_count, help="batch index (with --batch-size)")
    p.add_argument("--batch-size", type=_positive_int, default=50)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, OSError, ValueError, RuntimeError) as err:
        print(f"hessian-powerlaw {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
