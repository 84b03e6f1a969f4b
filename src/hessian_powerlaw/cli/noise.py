"""Noise-study commands: toy-valley, noise-minimum, noise-equilibrium, noise-trace (the
experiments) and noise-tables, noise-plots (their summary). toy-valley and the summaries
never import torch."""

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from hessian_powerlaw.cli.flags import add_options, config_arg, count, positive, positive_int, resolve

NOISE_TABLES = {
    # file stem (and key of the tables dict) -> its columns in report.noise
    "toy_trace": "TOY_COLUMNS",
    "toy_trace_rate": "TOY_RATE_COLUMNS",
    "toy_anticorrelated": "ANTI_COLUMNS",
    "negative_points": "POINT_COLUMNS",
    "negative_vs_loss": "NEGATIVE_COLUMNS",
    "trace_runs": "TRACE_COLUMNS",
    "trace_rate_fits": "TRACE_FIT_COLUMNS",
}


def _write(args, record, summary):
    from hessian_powerlaw.io import write_json

    record["command"] = args.command_line
    write_json(args.out, record)
    print(f"{args.command}: {summary} ({record['seconds']:.1f} s) -> {args.out}", file=sys.stderr)


def cmd_toy_valley(args: argparse.Namespace) -> None:
    """`toy-valley`: one toy-valley experiment's record."""
    from hessian_powerlaw.network.noise import valleys

    opts = {name.removeprefix("toy_"): value for name, value in resolve(args, "toy-valley").items()}
    record = valleys.run(args.model, args.noise, args.lr, seed=args.seed, **opts)
    if record["left_region"]:
        print(
            f"toy-valley: warning: {record['left_region']} of {record['repeats']} runs crossed a kink of "
            "the valley (an eigenvalue's sign changed): its rates are not those of one linear region; "
            "use a lower --lr",
            file=sys.stderr,
        )
    summary = (
        f"{args.model} valley, {args.noise} noise, lr {args.lr:g}: trace change "
        f"{record['trace_change']:.4g} ± {record['trace_change_se']:.2g}, log det change "
        f"{record['logdet_change']:.4g} ± {record['logdet_change_se']:.2g} "
        f"over {record['measure_steps']} steps"
    )
    _write(args, record, summary)


def cmd_noise_minimum(args: argparse.Namespace) -> None:
    """`noise-minimum`: gradient descent (then optional Gauss-Newton steps) to a minimum of the small
    network."""
    from hessian_powerlaw.network.noise import small_net

    opts = resolve(args, "noise-minimum")
    settings = {
        **small_net.SMALL_NET,
        "n_train": opts["net_n_images"],
        "width": opts["net_width"],
        "pool": opts["net_pool"],
        "label_smoothing": opts["net_label_smoothing"],
        "data_seed": opts["net_data_seed"],
    }
    meta = small_net.minimum(
        settings,
        args.init_seed,
        args.out,
        epochs=opts["minimum_epochs"],
        lr=opts["minimum_lr"],
        data_root=opts["data_root"],
        progress=not args.quiet,
        refine_steps=opts["minimum_refine_steps"],
    )
    if args.record:
        from hessian_powerlaw.io import write_json

        write_json(args.record, {"experiment": "minimum", **meta, "command": args.command_line})
    print(
        f"noise-minimum: {meta['n_params']} parameters, {meta['n_train_used']} images, "
        f"{meta['epochs']} GD epochs: loss {meta['train_loss']:.5f} ({meta['excess_loss']:.2e} above the "
        f"smoothing floor), train accuracy {meta['train_acc']:.3f} -> {args.out}",
        file=sys.stderr,
    )


def cmd_noise_equilibrium(args: argparse.Namespace) -> None:
    """`noise-equilibrium`: SGD from a minimum, then the full spectrum of the end state."""
    from hessian_powerlaw.network.noise.experiments import equilibrium

    opts = resolve(args, "noise-equilibrium")
    record = equilibrium(
        args.minimum,
        args.batch_size,
        args.lr,
        steps=opts["equilibrium_steps"],
        every=opts["equilibrium_every"],
        seed=args.seed,
        progress=not args.quiet,
    )
    flat = "flat" if record["equilibrated"] else f"not flat (drift {record['loss_drift']:+.1%})"
    summary = (
        f"S={args.batch_size}, lr {args.lr:g}: excess loss {record['excess_loss']:.3e} ({flat}), "
        f"{record['n_negative']} negative eigenvalues summing to {record['negative_sum']:.4g}, "
        f"trace {record['trace']:.4g}"
    )
    _write(args, record, summary)


def cmd_noise_trace(args: argparse.Namespace) -> None:
    """`noise-trace`: the exact trace along noisy descent from a minimum."""
    from hessian_powerlaw.network.noise.experiments import trace_run

    opts = {name.removeprefix("trace_"): value for name, value in resolve(args, "noise-trace").items()}
    record = trace_run(args.minimum, args.noise, args.lr, seed=args.seed, **opts)
    summary = (
        f"{args.noise}, lr {args.lr:g}: trace {record['trace_start']:.4g} -> {record['trace_end']:.4g}, "
        f"rate {record['trace_rate']:.3g} ± {record['trace_rate_se']:.2g} per step"
    )
    _write(args, record, summary)


def cmd_noise_displace(args: argparse.Namespace) -> None:
    """`noise-displace`: a minimum displaced along its non-degenerate directions, full spectra."""
    from hessian_powerlaw.network.noise.experiments import displacement

    record = displacement(args.minimum, args.scales, seed=args.seed, rel_cut=args.rel_cut)
    last = record["points"][-1]
    summary = (
        f"{len(record['points'])} displacements along {record['n_nondegenerate']} non-degenerate "
        f"directions; at scale {last['scale']:g}: excess loss {last['excess_loss']:.3e}, negative sum "
        f"{last['negative_sum']:.4g}"
    )
    _write(args, record, summary)


def cmd_noise_project(args: argparse.Namespace) -> None:
    """`noise-project`: an SGD run's states projected to minima, connectedness and trace along the path."""
    from hessian_powerlaw.io import write_tsv
    from hessian_powerlaw.network.noise.paths import COLUMNS, Run, SavedCache, path_records, trace_fit

    run = Run(
        args.init_seed, args.lr, args.momentum, args.batch_size, args.seed, args.data_root, args.n_train
    )
    cache = SavedCache(args.cache) if args.cache else None
    name = f"init{args.init_seed}_lr{args.lr:g}_b{args.batch_size}_s{args.seed}"
    rows = path_records(
        run,
        args.steps,
        args.every,
        args.after,
        cache,
        max_steps=args.max_steps,
        name=name,
        min_gap=args.min_gap,
    )
    write_tsv(args.out, rows, COLUMNS)
    fit = trace_fit(rows)
    if args.fit:
        write_tsv(args.fit, [fit], tuple(fit))
    connected = sum(bool(r["connected_to_next"]) for r in rows[:-1])
    if args.record:
        from hessian_powerlaw.io import write_json

        settings = ("init_seed", "lr", "momentum", "batch_size", "seed", "steps", "every", "after", "min_gap")
        settings += ("n_train",)
        write_json(
            args.record,
            {
                "experiment": "projected-path",
                **{k: getattr(args, k) for k in settings},
                "n_points": len(rows),
                "n_connected": connected,
                "trace_fit": fit,
                "command": args.command_line,
            },
        )
    print(
        f"noise-project: {len(rows)} projected minima, {connected} of {len(rows) - 1} segments line "
        f"connected; trace slope {fit['slope']:.3g} ± {fit['slope_se']:.2g} per step -> {args.out}",
        file=sys.stderr,
    )


def read_records(paths: Iterable[str | Path]) -> list[dict]:
    """The JSON records of the noise study; a one-line error names an unreadable or
    incomplete one (report.noise_records.missing_keys)."""
    from hessian_powerlaw.io import distinct, read_json
    from hessian_powerlaw.report.noise_records import check_records, missing_keys

    records = []
    for path in distinct(paths):
        record = read_json(path)
        missing = missing_keys(record)
        if missing:
            raise ValueError(f"{path}: not a noise-study record (lacks {', '.join(missing)})")
        records.append(record)
    check_records(records, paths)
    return records


def cmd_noise_tables(args: argparse.Namespace) -> None:
    """`noise-tables`: the noise study's tables (TSV and markdown) from its records."""
    from hessian_powerlaw.io import write_text, write_tsv
    from hessian_powerlaw.report import noise

    records = read_records(args.records)
    tables = {"toy_trace": noise.toy_rows(records), "toy_anticorrelated": noise.toy_anticorrelated(records)}
    tables["toy_trace_rate"] = noise.toy_trace_rate(tables["toy_trace"])
    tables["negative_points"] = noise.negative_points(records)
    tables["negative_vs_loss"] = (
        [noise.negative_vs_loss(tables["negative_points"])] if tables["negative_points"] else []
    )
    tables["trace_runs"] = noise.trace_rows(records)
    tables["trace_rate_fits"] = noise.trace_rate_fits(tables["trace_runs"]) if tables["trace_runs"] else []
    out = Path(args.out_dir)
    written = []
    for stem, columns in NOISE_TABLES.items():
        if tables[stem]:
            write_tsv(out / f"{stem}.tsv", tables[stem], getattr(noise, columns))
            written.append(stem)
    write_text(out / "noise.md", noise.markdown(tables))
    print(f"noise-tables: {len(records)} records, tables {', '.join(written)} -> {out}", file=sys.stderr)


def cmd_noise_plots(args: argparse.Namespace) -> None:
    """`noise-plots`: the noise study's figures from its records."""
    from hessian_powerlaw.report import noise_figures

    records = read_records(args.records)
    noise_figures.write_all(records, args.out_dir)
    print(f"noise-plots: {len(noise_figures.FIGURES)} figures -> {args.out_dir}", file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the noise-study subcommands to the parser's subparsers."""
    from hessian_powerlaw.network.noise import DESCENT_NOISES
    from hessian_powerlaw.network.noise.valleys import NOISES as TOY_NOISES
    from hessian_powerlaw.network.noise.valleys import VALLEYS

    p = sub.add_parser("toy-valley", help="one toy-valley experiment of the noise study (numpy, seconds)")
    config_arg(p)
    p.add_argument("--model", required=True, choices=tuple(VALLEYS))
    p.add_argument("--noise", required=True, choices=TOY_NOISES)
    p.add_argument("--lr", required=True, type=positive, help="learning rate")
    p.add_argument("--seed", type=count, default=0, help="noise seed of the repeats")
    add_options(p, "toy-valley")
    p.add_argument("--out", required=True, help="record JSON")
    p.set_defaults(func=cmd_toy_valley)

    p = sub.add_parser("noise-minimum", help="full-batch GD to a minimum of the noise study's network")
    config_arg(p)
    p.add_argument("--init-seed", type=count, default=0, help="seed of the initialisation")
    add_options(p, "noise-minimum")
    p.add_argument("--record", help="also write its metadata and loss history as JSON")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="model file")
    p.set_defaults(func=cmd_noise_minimum)

    p = sub.add_parser("noise-equilibrium", help="SGD from a minimum, then the full Hessian spectrum")
    config_arg(p)
    p.add_argument("minimum", metavar="MINIMUM", help="model file from noise-minimum")
    p.add_argument("--batch-size", required=True, type=positive_int)
    p.add_argument("--lr", required=True, type=positive)
    p.add_argument("--seed", type=count, default=0, help="seed of the mini-batch draws")
    add_options(p, "noise-equilibrium")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="record JSON")
    p.set_defaults(func=cmd_noise_equilibrium)

    p = sub.add_parser("noise-trace", help="the exact Hessian trace along noisy descent from a minimum")
    config_arg(p)
    p.add_argument("minimum", metavar="MINIMUM", help="model file from noise-minimum")
    p.add_argument("--noise", required=True, choices=DESCENT_NOISES)
    p.add_argument("--lr", required=True, type=positive)
    p.add_argument("--seed", type=count, default=0, help="seed of the mini-batches and noise")
    add_options(p, "noise-trace")
    p.add_argument("--out", required=True, help="record JSON")
    p.set_defaults(func=cmd_noise_trace)

    _register_valleys(sub)

    for name, text, func in (
        ("noise-tables", "the noise study's tables (TSV and noise.md) from its records", cmd_noise_tables),
        ("noise-plots", "the noise study's figures from its records", cmd_noise_plots),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("records", nargs="+", metavar="RECORD")
        p.add_argument("--out-dir", required=True)
        p.set_defaults(func=func)


def _register_valleys(sub):
    """noise-displace and noise-project: the valley experiments (Figs. 1-3)."""
    p = sub.add_parser(
        "noise-displace",
        help="a minimum displaced along its non-degenerate directions: loss and negative eigenvalues",
    )
    p.add_argument("minimum", metavar="MINIMUM", help="model file from noise-minimum")
    p.add_argument(
        "--scales", type=float, nargs="+", required=True, help="displacements (loss rise about scale^2)"
    )
    p.add_argument("--seed", type=count, default=0, help="seed of the direction")
    p.add_argument(
        "--rel-cut",
        type=positive,
        default=1e-3,
        help="non-degenerate: eigenvalue above this times the largest",
    )
    p.add_argument("--out", required=True, help="record JSON")
    p.set_defaults(func=cmd_noise_displace)

    p = sub.add_parser(
        "noise-project", help="an SGD run's states projected to minima (the noise study's Figs. 1, 3)"
    )
    p.add_argument("--init-seed", type=count, default=0, help="seed of the network's initialisation")
    p.add_argument("--lr", type=positive, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=positive_int, default=25)
    p.add_argument("--seed", type=count, default=0, help="seed of the mini-batches (one draw per step)")
    p.add_argument("--steps", type=positive_int, required=True, help="SGD steps of the run")
    p.add_argument("--every", type=positive_int, required=True, help="steps between saved states")
    p.add_argument(
        "--after", type=count, default=0, help="project states from this step on (after the early phase)"
    )
    p.add_argument(
        "--max-steps",
        type=positive_int,
        default=200_000,
        help="gradient-descent steps per projection at most",
    )
    p.add_argument(
        "--min-gap",
        type=positive_int,
        default=1,
        help="stop bisecting at this many iterations between states (1: adjacent, the paper)",
    )
    p.add_argument("--n-train", type=count, default=0, help="training images (0: the study's 500)")
    p.add_argument("--data-root", help="where MNIST lies (default: the bundled subset)")
    p.add_argument("--cache", help=".npz of the projections so far (a killed run resumes from it)")
    p.add_argument("--fit", help="TSV of the trace's slope along the path")
    p.add_argument("--record", help="JSON of the run's settings, summary and command")
    p.add_argument("--out", required=True, help="TSV, one row per projected minimum")
    p.set_defaults(func=cmd_noise_project)
