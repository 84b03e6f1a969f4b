"""The network wing (torch): data sets, models, training, Hessian operators, eigensolvers,
trace estimators, curvature measurements and per-network spectra."""

import warnings

# torch's forward-mode AD loads its decompositions through torch.jit.script on the first
# Hessian-vector product and warns that jit is deprecated: a warning about torch's internals,
# on every network command, that no user can act on.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is (deprecated|not supported)", category=FutureWarning
)
