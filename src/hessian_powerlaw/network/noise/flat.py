"""A network's label-smoothed training loss as a function of one flat float64 parameter vector:
the loss, its gradient and Hessian-vector products, for the noise study's valley experiments
(projection, Newton refinement, displacement), which work on vectors, not modules."""

import math

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.func import functional_call, grad, jvp, vjp

__all__ = ["FlatLoss"]


class FlatLoss:
    """The loss of `model` on (x, y) over flat parameter vectors.

    Parameters
    ----------
    model : torch.nn.Module
        The network; copied to float64, never changed (its parameters are only read for their
        names, shapes and the starting vector `theta0`).
    x : torch.Tensor, shape (m, ...)
        Inputs (cast to float64).
    y : torch.Tensor, shape (m,), int64
        Class labels.
    label_smoothing : float
        torch's label smoothing of the cross-entropy (0 for none).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0):
        import copy

        self.model = copy.deepcopy(model).double().eval()
        self.names = [n for n, _ in self.model.named_parameters()]
        self.shapes = [p.shape for _, p in self.model.named_parameters()]
        self.theta0 = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).numpy()
        self.n = self.theta0.size
        self.x = x.double() if x.is_floating_point() else x
        self.y = y
        self.smoothing = float(label_smoothing)

    def params(self, theta: ArrayLike) -> dict[str, torch.Tensor]:
        """Named parameter tensors viewing a flat vector.

        Parameters
        ----------
        theta : array_like
            Parameters, shape (n,) (cast to float64).

        Returns
        -------
        dict of str to torch.Tensor
            {name: view of theta in that parameter's shape}.
        """
        parts = torch.split(torch.as_tensor(theta, dtype=torch.float64), [math.prod(s) for s in self.shapes])
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def _value(self, theta, x, y):
        out = functional_call(self.model, self.params(theta), (x,))
        return nn.functional.cross_entropy(out, y, label_smoothing=self.smoothing)

    def loss(self, theta: ArrayLike, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> float:
        """The mean loss at theta.

        Parameters
        ----------
        theta : array_like
            Parameters, shape (n,).
        x, y : torch.Tensor, optional
            Data (default the training data).

        Returns
        -------
        float
        """
        x, y = (self.x, self.y) if x is None else (x, y)
        with torch.no_grad():
            return float(self._value(theta, x, y))

    def gradient(
        self, theta: ArrayLike, x: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> np.ndarray:
        """The gradient of the mean loss at theta.

        Parameters
        ----------
        theta : array_like
            Parameters, shape (n,).
        x, y : torch.Tensor, optional
            Data (default the training data).

        Returns
        -------
        numpy.ndarray
            Shape (n,), float64.
        """
        x, y = (self.x, self.y) if x is None else (x, y)
        theta = torch.as_tensor(np.array(theta), dtype=torch.float64)
        return grad(lambda t: self._value(t, x, y))(theta).numpy()

    def hvp(self, theta: ArrayLike, vector: ArrayLike) -> np.ndarray:
        """The Hessian-vector product at theta on the training data (forward over reverse).

        Parameters
        ----------
        theta, vector : array_like
            Parameters and direction, shape (n,) each.

        Returns
        -------
        numpy.ndarray
            H(theta) vector, shape (n,), float64.
        """
        theta = torch.as_tensor(np.array(theta), dtype=torch.float64)
        vector = torch.as_tensor(np.array(vector), dtype=torch.float64)
        gradient = grad(lambda t: self._value(t, self.x, self.y))
        return jvp(gradient, (theta,), (vector,))[1].numpy()

    def ggn_vp(self, theta: ArrayLike, vector: ArrayLike) -> np.ndarray:
        """The generalised Gauss-Newton product J^T (diag p - p p^T) J v / m at theta.

        The Hessian's part that is positive semi-definite, equal to the Hessian where the network
        fits its (smoothed) targets exactly.

        Parameters
        ----------
        theta, vector : array_like
            Parameters and direction v, shape (n,) each.

        Returns
        -------
        numpy.ndarray
            Shape (n,), float64.
        """
        theta = torch.as_tensor(np.array(theta), dtype=torch.float64)
        vector = torch.as_tensor(np.array(vector), dtype=torch.float64)

        def logits(t):
            return functional_call(self.model, self.params(t), (self.x,))

        out, jv = jvp(logits, (theta,), (vector,))
        p = torch.softmax(out, dim=1)
        mjv = (p * jv - p * (p * jv).sum(dim=1, keepdim=True)) / len(out)
        _, pullback = vjp(logits, theta)
        return pullback(mjv)[0].numpy()

    def module(self, theta: ArrayLike) -> nn.Module:
        """A float64 copy of the network holding the parameters theta (eval mode).

        Parameters
        ----------
        theta : array_like
            Parameters, shape (n,).

        Returns
        -------
        torch.nn.Module
            A new module; the one given to FlatLoss is not changed.
        """
        import copy

        model = copy.deepcopy(self.model)
        with torch.no_grad():
            for p, value in zip(model.parameters(), self.params(theta).values(), strict=True):
                p.copy_(value)
        return model
