"""Loss-Hessian operators over fixed data: autograd (any model) and sequential (exact block
products for ReLU/max-pool sequential networks), one interface (`base.Operator`)."""

from hessian_powerlaw.network.operators.autograd import HessianOperator
from hessian_powerlaw.network.operators.base import Operator
from hessian_powerlaw.network.operators.check import IMPLEMENTATIONS, make_operator
from hessian_powerlaw.network.operators.sequential import SequentialHessian, UnsupportedModel

__all__ = [
    "IMPLEMENTATIONS",
    "HessianOperator",
    "Operator",
    "SequentialHessian",
    "UnsupportedModel",
    "make_operator",
]
