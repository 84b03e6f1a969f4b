"""Network-wing commands: train, dnn-spectrum."""

import argparse
import sys
from pathlib import Path

import numpy as np

from hessian_powerlaw.cli.flags import add_options, config_arg, count, positive, positive_int, resolve
from hessian_powerlaw.options import CURVATURE_SETTINGS


def _sweep_enum(key):
    """Allowed values of a sweep dimension, from the config schema (no torch import)."""
    from hessian_powerlaw.config import load_schema

    sweeps = load_schema()["properties"]["dnn"]["properties"]["sweeps"]["items"]["properties"]
    return sweeps[key]["items"]["enum"]


def cmd_train(args: argparse.Namespace) -> None:
    """`train`: one network trained, its model file and metrics written."""
    from hessian_powerlaw.network.training import train

    opts = resolve(args, "train")
    spec = {key: getattr(args, key) for key in ("model", "dataset", "n_train", "optimizer", "batch_size")}
    spec.update({key: getattr(args, key) for key in ("epochs", "schedule", "seed", "depth", "width")})
    spec.update(
        {
            key: opts[key]
            for key in ("normalization", "label_noise", "labels", "label_smoothing", "lr", "weight_decay")
        }
    )
    spec["data_root"] = opts["data_root"] or ""
    curvature = None
    if args.curvature_every:
        curvature = {"every": args.curvature_every}
        curvature.update({name.removeprefix("curvature_"): opts[name] for name in CURVATURE_SETTINGS})
    checkpoint = args.checkpoint or f"{args.out}.ckpt"
    _, meta = train(
        spec,
        args.out,
        checkpoint,
        args.metrics,
        opts["device"],
        progress=not args.quiet,
        curvature=curvature,
        command=args.portable_command,
    )
    Path(checkpoint).unlink(missing_ok=True)
    print(
        f"train: {meta['model']} on {meta['n_train_used']} {meta['dataset']} images, "
        f"{meta['epochs']} epochs: "
        f"train loss {meta['train_loss']:.4g}, test accuracy {meta['test_acc']:.4f} -> {args.out}",
        file=sys.stderr,
    )


def cmd_dnn_spectrum(args: argparse.Namespace) -> None:
    """`dnn-spectrum`: the top-K spectrum of a model file or a factory-built model, and its fit."""
    from hessian_powerlaw.io import save_npy, write_json
    from hessian_powerlaw.network.spectrum import SpectrumSettings, spectrum

    if bool(args.model_file) == bool(args.model_factory):
        raise ValueError("give either a MODEL file of `train` or --model-factory (with --data-factory)")
    from hessian_powerlaw.network.operators import distributed

    path = "factory" if args.model_factory else ("blocks" if args.blocks else "model")
    _refuse_unused(args, path)
    opts = resolve(args, "dnn-spectrum")
    distributed.init_from_environment(opts["device"])  # under torchrun: one rank of a group
    checkpoint = _solver_checkpoint(args, opts["solver"])  # every rank resumes from rank 0's
    if distributed.rank() != 0:  # every rank computes; rank 0 alone writes the outputs
        args.out = args.spectrum = args.vectors = None
    opts["k"] = opts.pop("spectrum_k")
    if args.model_factory:
        return _factory_spectrum(args, opts)
    if args.blocks:
        return _model_file_blocks(args, opts)
    if args.curvature != "hessian":  # --curvature names the matrix on every path
        if opts["operator"] not in ("hessian", args.curvature):
            raise ValueError(f"--curvature {args.curvature} and --operator {opts['operator']} disagree")
        opts["operator"] = args.curvature
    settings = SpectrumSettings(
        **opts,
        data_root=args.data_root,
        steps_per_k=args.steps_per_k,
        progress=not args.quiet,
        variant=args.variant,
        vectors=bool(args.vectors),
        checkpoint=checkpoint,
    )
    record, values, residuals, vectors = spectrum(args.model_file, settings)
    record["run"] = args.run or Path(args.model_file).name.removesuffix(".pt")
    train_command = record.pop("train_command")
    record["command"] = (f"{train_command} && " if train_command else "") + args.portable_command
    if args.spectrum:
        save_npy(args.spectrum, np.stack([values, residuals]))
    if args.vectors:
        vectors.save(args.vectors)
    if args.out:
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


def _solver_checkpoint(args, solver):
    """The model path's SolverCheckpoint: at --checkpoint, else at OUT.lanczos.npz for the
    solvers that resume (none for the others, and none on the factory and blocks paths); every
    rank of a data-parallel group reads it, rank 0 writes it."""
    from hessian_powerlaw.network.eigensolvers import RESUMABLE, SolverCheckpoint

    if args.model_factory or args.blocks or not (args.checkpoint or solver in (*RESUMABLE, "auto")):
        return None
    path = args.checkpoint or f"{args.out}.lanczos.npz"
    return SolverCheckpoint.for_group(path, args.checkpoint_every)


# the dnn-spectrum options each path applies (the model-file path applies every table option)
_API_OPTIONS = {"device", "spectrum_k", "solver", "tol", "dtype", "slq_steps", "block_size", "bootstrap"}
_APPLIES = {
    "factory": _API_OPTIONS | {"bootstrap_seed"},
    "blocks": _API_OPTIONS | {"bootstrap_seed", "n_eval"},
}
_OTHER_FLAGS = (  # flags outside the option table: (dest, flag, its unset value, paths it applies to)
    ("state_dict", "--state-dict", None, {"factory"}),
    ("data_factory", "--data-factory", None, {"factory"}),
    ("loss", "--loss", "cross-entropy", {"factory"}),
    ("variant", "--variant", "spectrum", {"model"}),
    ("steps_per_k", "--steps-per-k", None, {"model"}),
    ("data_root", "--data-root", None, {"model", "blocks"}),
    ("spectrum", "--spectrum", None, {"model", "factory"}),
    ("curvature", "--curvature", "hessian", {"factory", "blocks", "model"}),
    ("vectors", "--vectors", None, {"factory", "model"}),
    ("checkpoint", "--checkpoint", None, {"model"}),
    ("checkpoint_every", "--checkpoint-every", None, {"model"}),
)
_WHERE = {"factory": "--model-factory", "blocks": "--blocks", "model": "a MODEL file"}


def _refuse_unused(args, path):
    """ValueError for an option given on the command line that `path` would not apply."""
    from hessian_powerlaw.options import COMMANDS, flag

    unused = [
        flag(name)
        for name in COMMANDS["dnn-spectrum"]
        if path in _APPLIES and name not in _APPLIES[path] and getattr(args, name) is not None
    ]
    unused += [
        text
        for dest, text, unset, paths in _OTHER_FLAGS
        if path not in paths and getattr(args, dest) != unset
    ]
    if args.blocks and args.spectrum:
        unused.append("--spectrum (with --blocks the table holds one row per block)")
    if unused:
        raise ValueError(f"{', '.join(unused)} do(es) not apply with {_WHERE[path]}; leave them out")


def _api_options(args, opts):
    """The `api.top_spectrum` keywords of a dnn-spectrum call."""
    from hessian_powerlaw.network.spectrum import DTYPES

    return {
        "solver": opts["solver"],
        "tol": opts["tol"],
        "dtype": DTYPES[opts["dtype"]],
        "device": opts["device"],
        "blocks": args.blocks,
        "progress": not args.quiet,
        "slq_steps": opts["slq_steps"],
        "block_size": opts["block_size"],
        "curvature": args.curvature,
        "vectors": bool(getattr(args, "vectors", None)),
    }


def _factory_spectrum(args, opts):
    """dnn-spectrum for your own model and data (network.factory): one record, or with
    --blocks a table with one row per parameter group."""
    from hessian_powerlaw.io import save_npy, write_json, write_tsv
    from hessian_powerlaw.network.factory import spectrum_record

    if not args.data_factory:
        raise ValueError("--model-factory needs --data-factory (package.module:function)")
    record, values, residuals, vectors = spectrum_record(
        args.model_factory,
        args.data_factory,
        state_dict=args.state_dict,
        loss=args.loss,
        k=opts["k"],
        bootstrap=opts["bootstrap"],
        seed=opts["bootstrap_seed"],
        **_api_options(args, opts),
    )
    if args.blocks:
        from hessian_powerlaw.records import BLOCK_KEYS

        if args.out:
            write_tsv(args.out, record, BLOCK_KEYS)
        print(f"dnn-spectrum: {len(record)} blocks of {args.model_factory} -> {args.out}", file=sys.stderr)
        return
    record["command"] = args.command_line
    if args.spectrum:
        save_npy(args.spectrum, np.stack([values, residuals]))
    if args.vectors:
        vectors.save(args.vectors)
    if args.out:
        write_json(args.out, record)
    print(
        f"dnn-spectrum: {args.model_factory}, {record['n_params']} parameters, top-{record['k']} "
        f"({record['products']} products, {record['hvp_count']} HVPs): "
        + (
            f"beta {record['beta']:.3f}, d_ks {record['d_ks']:.4f} (d_c {record['d_c']:.4f})"
            if record["status"] == "ok"
            else record["reason"]
        ),
        file=sys.stderr,
    )


def _model_file_blocks(args, opts):
    """dnn-spectrum MODEL --blocks: the top-K of every parameter group of a `train` model file."""
    import torch

    from hessian_powerlaw.io import write_tsv
    from hessian_powerlaw.network.api import top_spectrum
    from hessian_powerlaw.network.factory import summarise
    from hessian_powerlaw.network.model_files import load_model
    from hessian_powerlaw.network.spectrum import eval_data
    from hessian_powerlaw.records import BLOCK_KEYS

    model, meta = load_model(args.model_file)
    data = eval_data(meta, opts["n_eval"], args.data_root)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=meta.get("label_smoothing", 0.0))
    result = top_spectrum(model, loss, data, opts["k"], **_api_options(args, opts))
    run = {"run": args.run or Path(args.model_file).name.removesuffix(".pt")}
    rows, _, _ = summarise(result, run, opts["bootstrap"], opts["bootstrap_seed"])
    if args.out:
        write_tsv(args.out, rows, ("run", *BLOCK_KEYS))
    print(f"dnn-spectrum: {len(rows)} blocks of {args.model_file} -> {args.out}", file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the network-wing subcommands to the parser's subparsers."""
    p = sub.add_parser("train", help="train a reference network (or save its initialisation)")
    config_arg(p)
    p.add_argument("--model", default="lenet", choices=_sweep_enum("model"))
    p.add_argument("--dataset", default="mnist", choices=_sweep_enum("dataset"))
    p.add_argument("--n-train", type=count, default=0, help="seeded training subset (0: all)")
    p.add_argument("--epochs", type=count, default=50, help="0 saves the random initialisation")
    p.add_argument("--optimizer", default="sgd", choices=_sweep_enum("optimizer"))
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--seed", type=count, default=0)
    p.add_argument("--depth", type=count, default=2, help="hidden layers (fcn, lnn; 0: one linear layer)")
    p.add_argument("--width", type=positive_int, default=100, help="hidden width (fcn, lnn)")
    p.add_argument("--schedule", default="step", choices=("step", "constant"), help="learning-rate schedule")
    add_options(p, "train")
    p.add_argument("--curvature-every", type=count, default=0, help="epochs between curvature measurements")
    p.add_argument("--checkpoint", help="per-epoch checkpoint for resuming (default OUT.ckpt)")
    p.add_argument("--metrics", help="per-epoch metrics JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="model file (state dict + settings)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("dnn-spectrum", help="top-K loss-Hessian eigenvalues of a model and their fit")
    config_arg(p)
    p.add_argument("model_file", metavar="MODEL", nargs="?", help="a model file of `train`")
    add_options(p, "dnn-spectrum")
    p.add_argument(
        "--model-factory", help="your own model: package.module:function returning a torch.nn.Module"
    )
    p.add_argument("--state-dict", help="its weights: a tensor-only file (read with weights_only=True)")
    p.add_argument("--data-factory", help="package.module:function returning (x, y) tensors or a DataLoader")
    p.add_argument(
        "--loss", default="cross-entropy", choices=("cross-entropy", "mse"), help="(factory models)"
    )
    p.add_argument(
        "--blocks", help="factory models: per-block spectra, 'layer' or globs over parameter names"
    )
    p.add_argument("--variant", default="spectrum", help="name of this spectrum variant in the record")
    p.add_argument("--steps-per-k", type=positive, help="step limit / K (lanczos 6; arpack: ncv/K, 2)")
    p.add_argument("--data-root", help="where the model's data set lives, if moved")
    p.add_argument("--run", help="run name in the record (default: the model file's name)")
    p.add_argument("--spectrum", help=".npy with eigenvalues (row 0) and residuals (row 1)")
    p.add_argument(
        "--checkpoint",
        help="Lanczos state saved for a rerun to resume from (default OUT.lanczos.npz; removed at the end)",
    )
    p.add_argument(
        "--checkpoint-every", type=count, help="seconds between its saves (default 600; 0: every block)"
    )
    p.add_argument(
        "--curvature",
        default="hessian",
        choices=("hessian", "ggn", "fisher"),
        help="the loss Hessian, the generalised Gauss-Newton matrix or the empirical Fisher",
    )
    p.add_argument(
        "--vectors",
        help="the Ritz vectors: .npy (n_params, K), or .npz one array (K, *shape) per parameter name",
    )
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="record JSON")
    p.set_defaults(func=cmd_dnn_spectrum)
