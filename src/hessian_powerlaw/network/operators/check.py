"""Choosing a Hessian operator for a model, and the check of the fast one against autograd."""

import torch

from hessian_powerlaw.network.operators.autograd import HessianOperator
from hessian_powerlaw.network.operators.sequential import SequentialHessian, UnsupportedModel

IMPLEMENTATIONS = ("auto", "autograd", "sequential")


def make_operator(
    model, x, y, implementation="auto", dtype=torch.float32, shift=0.0, check=True, label_smoothing=0.0
):
    """The Hessian operator of `model` over (x, y).

    'autograd': HessianOperator (any model). 'sequential': SequentialHessian, exact block
    products for ReLU/max-pool sequential networks (LeNet, fcn, lnn), checked on creation against
    autograd on two vectors over 64 images. 'auto': sequential where the model allows it.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown Hessian implementation {implementation!r} ({', '.join(IMPLEMENTATIONS)})")
    if implementation != "autograd":
        try:
            op = SequentialHessian(model, x, y, dtype=dtype, shift=shift, label_smoothing=label_smoothing)
        except UnsupportedModel:
            if implementation == "sequential":
                raise
        else:
            if check:
                _check_against_autograd(model, x, y, dtype, label_smoothing)
            return op
    return HessianOperator(model, x, y, dtype=dtype, shift=shift, label_smoothing=label_smoothing)


def _check_against_autograd(model, x, y, dtype, label_smoothing):
    x, y = x[:64], y[:64]
    v = torch.randn(sum(p.numel() for p in model.parameters()), 2, generator=torch.Generator().manual_seed(0))
    ref = HessianOperator(model, x, y, dtype=dtype, label_smoothing=label_smoothing).matmat(v)
    fast = SequentialHessian(model, x, y, dtype=dtype, label_smoothing=label_smoothing).matmat(v)
    error = float(torch.linalg.matrix_norm(fast - ref) / torch.linalg.matrix_norm(ref))
    if not error < (1e-3 if dtype == torch.float32 else 1e-8):
        raise RuntimeError(
            f"the sequential Hessian differs from autograd by {error:.1e}; use --hessian autograd"
        )
