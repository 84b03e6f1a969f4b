"""Choosing a Hessian operator for a model, and the check of the fast one against autograd."""

import math

import torch

from hessian_powerlaw.network.eigensolvers.result import SolverError
from hessian_powerlaw.network.operators.autograd import HessianOperator
from hessian_powerlaw.network.operators.base import Operator
from hessian_powerlaw.network.operators.sequential import SequentialHessian, UnsupportedModel

IMPLEMENTATIONS = ("auto", "autograd", "sequential")


def make_operator(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    implementation: str = "auto",
    dtype: torch.dtype = torch.float32,
    shift: float = 0.0,
    check: bool = True,
    label_smoothing: float = 0.0,
    cache_bytes: int | None = None,
) -> Operator:
    """The Hessian operator of `model` over (x, y).

    'autograd': HessianOperator (any model). 'sequential': SequentialHessian, exact block
    products for ReLU/max-pool sequential networks (LeNet, fcn, lnn), checked on creation against
    autograd on two vectors over CHECK_SAMPLES images spread through the data. 'auto':
    sequential where the model allows it and the check passes, else autograd; the operator's
    `note` says why autograd was used (None when nothing was said). `cache_bytes` caps what the
    operator keeps between products (None: each implementation's default).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown Hessian implementation {implementation!r} ({', '.join(IMPLEMENTATIONS)})")
    note = None
    if implementation != "autograd":
        try:
            op = SequentialHessian(
                model,
                x,
                y,
                dtype=dtype,
                shift=shift,
                cache_bytes=cache_bytes,
                label_smoothing=label_smoothing,
            )
            if check:
                _check_against_autograd(model, x, y, dtype, label_smoothing)
        except UnsupportedModel as err:
            if implementation == "sequential":
                raise
            note = f"autograd products: {err}"
        else:
            op.note = None
            return op
    op = HessianOperator(
        model, x, y, dtype=dtype, shift=shift, label_smoothing=label_smoothing, cache_bytes=cache_bytes
    )
    op.note = note
    return op


CHECK_SAMPLES = 256


def _check_against_autograd(model, x, y, dtype, label_smoothing):
    """UnsupportedModel when the sequential products differ from autograd's on two random
    vectors over CHECK_SAMPLES samples spread evenly through the data."""
    pick = torch.linspace(0, len(x) - 1, min(len(x), CHECK_SAMPLES)).round().long()
    x, y = x[pick], y[pick]
    v = torch.randn(sum(p.numel() for p in model.parameters()), 2, generator=torch.Generator().manual_seed(0))
    reference = HessianOperator(model, x, y, dtype=dtype, label_smoothing=label_smoothing)
    if not math.isfinite(reference.loss()):
        raise SolverError("the model's loss is not finite on these data (a diverged or corrupt model?)")
    ref = reference.matmat(v)
    fast = SequentialHessian(model, x, y, dtype=dtype, label_smoothing=label_smoothing).matmat(v)
    error = float(torch.linalg.matrix_norm(fast - ref) / torch.linalg.matrix_norm(ref))
    if not error < (1e-3 if dtype == torch.float32 else 1e-8):
        raise UnsupportedModel(f"the sequential products differ from autograd's by {error:.1e} on this model")
