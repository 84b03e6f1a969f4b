"""The generalised Gauss-Newton matrix and the empirical Fisher of any model and loss, over
tensors or a DataLoader: the other curvature matrices `top_spectrum(curvature=...)` offers.

- GGN: G = mean over the data of J^T H_L J, with J the Jacobian of the model's outputs in the
  parameters and H_L the Hessian of the loss in the outputs (positive semi-definite for convex
  losses such as cross-entropy and MSE; it equals the Hessian when the model is linear in its
  parameters). A product is one forward-mode Jacobian product, one output-space Hessian
  product and one vector-Jacobian product per chunk.
- Fisher: the empirical Fisher F = mean_i g_i g_i^T of the per-sample loss gradients g_i
  (the uncentred covariance of the gradients), formed per chunk as G^T (G V) from the chunk's
  per-sample gradients G (b x n), so a block of vectors costs one gradient pass.

Both are `generic.LossHessian` subclasses: the same data handling, counters and interface.
"""

import torch
from torch.func import functional_call, grad, jvp, vjp, vmap

from hessian_powerlaw.network.operators.generic import LossHessian


class GaussNewton(LossHessian):
    """G = mean_i J_i^T H_L,i J_i (see the module docstring), an `operators.base.Operator`."""

    curvature = "ggn"

    def _outputs(self, params, x):
        return functional_call(self.model, {**params, **self.fixed}, (x,))

    def _hvp(self, v, x, y):
        tangent = self._unflatten(v)
        outputs, pullback = vjp(lambda p: self._outputs(p, x), self.params)
        if self.forward_mode:
            _, jv = jvp(lambda p: self._outputs(p, x), (self.params,), (tangent,))
        else:  # J v as the transpose of u -> J^T u (where forward mode has no rule)
            _, transpose = vjp(lambda u: pullback(u)[0], torch.zeros_like(outputs))
            (jv,) = transpose(tangent)
        # the output-space Hessian product by reverse over reverse (H_L is symmetric; forward
        # mode fails on some losses, e.g. MSELoss)
        _, output_hessian = vjp(grad(lambda o: self.loss_fn(o, y)), outputs)
        (hjv,) = output_hessian(jv)
        (gv,) = pullback(hjv)
        return self._flatten(gv)


class EmpiricalFisher(LossHessian):
    """F = mean_i g_i g_i^T over per-sample loss gradients (see the module docstring)."""

    curvature = "fisher"

    def __init__(self, *args: object, chunk_size: int = 64, **kwargs: object):
        super().__init__(*args, chunk_size=chunk_size, **kwargs)

    def _sample_gradient(self, params, x, y):
        return self._flatten(grad(lambda p: self._loss(p, x[None], y[None]))(params))

    def _chunk_product(self, vectors, x, y):
        gradients = vmap(self._sample_gradient, in_dims=(None, 0, 0))(self.params, x, y)  # (b, n)
        return gradients.T @ (gradients @ vectors) / len(x)


CURVATURES = {"hessian": LossHessian, "ggn": GaussNewton, "fisher": EmpiricalFisher}
