"""Protein-wing commands: select, download, protein, tables."""

import argparse
import datetime
import json
import sys

from hessian_powerlaw import __version__
from hessian_powerlaw.cli.flags import add_options, config_arg, count, resolve
from hessian_powerlaw.config import ConfigError

DEFAULT_JOBS = 0  # `protein --jobs`: entries at once, 0 = one per available CPU


def cmd_select(args: argparse.Namespace) -> None:
    """`select`: the entry list of a run (local files, a manifest, or an RCSB query)."""
    from hessian_powerlaw.io import to_tsv, write_text
    from hessian_powerlaw.protein.entries import local_entries
    from hessian_powerlaw.protein.rcsb import build_query, cache_path, search_entries

    opts = resolve(args, "select")
    header = [
        f"# hessian-powerlaw {__version__} entry selection",
        f"# date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"# source: {opts['source']}",
    ]
    if opts["source"] == "local":
        rows = local_entries(opts["local"])
        header.append(f"# local: {opts['local']}")
    else:
        query = {key: opts[key] for key in ("method", "max_resolution", "polymer_types", "identity_cutoff")}
        query.update(url=opts["query_url"], rows_per_page=opts["rows_per_page"])
        ids = search_entries(query, opts["min_residues"], opts["max_residues"])
        if opts["max_entries"]:
            ids = ids[: opts["max_entries"]]
        rows = [{"pdb_id": i, "path": str(cache_path(opts["cache"], i))} for i in ids]
        header.append(f"# url: {query['url']}")
        header.append(
            "# query: " + json.dumps(build_query(query, opts["min_residues"], opts["max_residues"]))
        )
    if not rows:
        where = opts["local"] if opts["source"] == "local" else opts["query_url"]
        raise ConfigError(f"select: no entries found ({opts['source']}: {where})")
    write_text(args.out, "\n".join(header) + "\n" + to_tsv(rows, ("pdb_id", "path")))
    print(f"select: {len(rows)} entries -> {args.out}", file=sys.stderr)


def cmd_download(args: argparse.Namespace) -> None:
    """`download`: fetch the selected entries from RCSB into the cache, one status row each."""
    from hessian_powerlaw.io import write_tsv
    from hessian_powerlaw.protein.entries import read_entries
    from hessian_powerlaw.protein.rcsb import download_entries

    opts = resolve(args, "download")
    rows = read_entries(args.entries, args.batch, opts.pop("batch_size"))
    result = download_entries([r["pdb_id"] for r in rows], **opts)
    write_tsv(args.out, result, ("pdb_id", "path", "status", "reason"))
    failed = sum(r["status"] == "failed" for r in result)
    print(f"download: {len(result) - failed} present, {failed} failed -> {args.out}", file=sys.stderr)


def cmd_protein(args: argparse.Namespace) -> None:
    """`protein`: ANM spectra and fits of one or many structure files, one record each."""
    from hessian_powerlaw.io import read_tsv, write_tsv
    from hessian_powerlaw.protein.analysis import new_record
    from hessian_powerlaw.protein.batch import analyse_many, resolve_jobs
    from hessian_powerlaw.protein.entries import read_entries
    from hessian_powerlaw.records import PROTEIN_KEYS

    opts = resolve(args, "protein")
    batch_size = opts.pop("batch_size")
    if opts["eigen_backend"] == "cuda":
        _require_cuda()
    if args.entries:
        items = read_entries(args.entries, args.batch, batch_size)
    else:
        items = [{"pdb_id": None, "path": f} for f in args.files]
    if not items:
        raise ConfigError("protein: no structure files given (FILE... or --entries)")
    failed_downloads = {}
    if args.downloads:
        failed_downloads = {
            r["pdb_id"]: r["reason"] for r in read_tsv(args.downloads) if r["status"] == "failed"
        }
    source = "rcsb" if args.downloads else "local"
    records = [None] * len(items)
    for index, item in enumerate(items):
        if item["pdb_id"] in failed_downloads:
            record = new_record(item["path"], source)
            record.update(
                pdb_id=item["pdb_id"], reason=f"download failed: {failed_downloads[item['pdb_id']]}"
            )
            records[index] = record
    todo = [i for i, record in enumerate(records) if record is None]
    tasks = [(items[i]["path"], items[i]["pdb_id"]) for i in todo]
    done = len(items) - len(todo)
    # one process owns the GPU unless more are asked for (each would hold its own CUDA context)
    jobs = 1 if opts["eigen_backend"] == "cuda" and not args.jobs else resolve_jobs(args.jobs)
    for task, record in analyse_many(tasks, opts, source, args.records, jobs):
        records[todo[task]] = record
        done += 1
        print(
            f"[{done}/{len(items)}] {record['pdb_id']} {record['status']}: {_summary(record)}",
            file=sys.stderr,
        )
    write_tsv(args.out, records, PROTEIN_KEYS)


def _require_cuda():
    """One line before any work when the cuda backend cannot run here."""
    try:
        import torch
    except ImportError:
        raise ConfigError("protein: eigen_backend cuda needs torch (pip install torch)") from None
    if not torch.cuda.is_available():
        raise ConfigError("protein: eigen_backend cuda, but CUDA is not available on this machine")


def _summary(record):
    if record["status"] == "ok":
        ratio = record["d_ks"] / record["d_c"]
        return f"beta {record['beta']:.3f} s {record['s']:.3f} d_ks/d_c {ratio:.2f}"
    return f"{record['file']}: {record['reason']}"


def cmd_tables(args: argparse.Namespace) -> None:
    """`tables`: the protein tables (size bins, per-entry rows) from the records."""
    from hessian_powerlaw.io import distinct, read_tsv, write_text, write_tsv
    from hessian_powerlaw.records import PROTEIN_KEYS
    from hessian_powerlaw.report.tables import SIZE_BIN_COLUMNS, size_bin_rows, size_bins_markdown

    records = [row for path in distinct(args.tables) for row in read_tsv(path)]
    write_tsv(args.proteins, records, PROTEIN_KEYS)
    failures = [r for r in records if r["status"] != "ok"]
    if args.failures:
        write_tsv(args.failures, failures, ("pdb_id", "file", "status", "reason"))
    rows = size_bin_rows(records)
    write_tsv(args.bins, rows, SIZE_BIN_COLUMNS)
    if args.markdown:
        ks = sorted({r["k"] for r in records if r["status"] == "ok"})
        label = args.k_label or (str(ks[0]) if len(ks) == 1 else "per entry")
        write_text(args.markdown, size_bins_markdown(rows, label))
    print(
        f"tables: {len(records) - len(failures)} fitted, {len(failures)} skipped or failed", file=sys.stderr
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the protein-wing subcommands to the parser's subparsers."""
    p = sub.add_parser("select", help="list the PDB entries to analyse (local files or RCSB query)")
    config_arg(p)
    add_options(p, "select")
    p.add_argument("--out", required=True, help="entries TSV (pdb_id, path) with provenance header")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("download", help="download entries (mmCIF.gz) into a verified cache")
    config_arg(p)
    p.add_argument("--entries", required=True)
    p.add_argument("--batch", type=count, help="batch index (with --batch-size)")
    add_options(p, "download")
    p.add_argument("--out", required=True, help="status TSV (pdb_id, path, status, reason)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("protein", help="ANM spectra and power-law fits of structure files")
    config_arg(p)
    p.add_argument("files", nargs="*", metavar="FILE", help=".pdb/.ent/.cif, optionally .gz")
    p.add_argument("--entries", help="entries TSV instead of FILE arguments")
    p.add_argument("--batch", type=count, help="batch index (with --batch-size)")
    p.add_argument("--downloads", help="download status TSV; failed entries are reported as such")
    add_options(p, "protein")
    p.add_argument("--records", help="directory for per-entry JSON records and .npy spectra (resumable)")
    p.add_argument(
        "--jobs",
        type=count,
        default=DEFAULT_JOBS,
        help="entries analysed at once, one BLAS thread each when more than 1 "
        "(default 0: one per available CPU; 1 with --eigen-backend cuda)",
    )
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
