"""The Hessian-product terms of one Conv2d or Linear layer with b tangents (tangents laid out
(N, b, ...)), used by the sequential operator."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight


def tangent_kernel_on_input(module: nn.Conv2d | nn.Linear, a: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
    """dW * a for tangent kernels dW (b, ...) and the layer's input a: (N, b, ...)."""
    b = dw.shape[0]
    if isinstance(module, nn.Conv2d):
        return F.conv2d(a, dw.flatten(0, 1), None, module.stride, module.padding).unflatten(1, (b, -1))
    return (a @ dw.flatten(0, 1).T).unflatten(1, (b, -1))


def kernel_on_tangent(module: nn.Conv2d | nn.Linear, da: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """W * da for input tangents da (N, b, ...): (N, b, ...)."""
    if isinstance(module, nn.Conv2d):
        n, b = da.shape[:2]
        return F.conv2d(da.flatten(0, 1), w, None, module.stride, module.padding).unflatten(0, (n, b))
    return da @ w.T


def tangent_outer(
    module: nn.Conv2d | nn.Linear, a: torch.Tensor, dd: torch.Tensor, shape: tuple[int, ...], b: int
) -> torch.Tensor:
    """sum_n dd (x) a: the weight product from the output-gradient tangent, (b, *shape)."""
    if isinstance(module, nn.Conv2d):
        kw = {"stride": module.stride, "padding": module.padding}
        return conv2d_weight(a, (b * shape[0], *shape[1:]), dd.flatten(1, 2), **kw).unflatten(
            0, (b, shape[0])
        )
    return (dd.flatten(1, 2).T @ a).unflatten(0, (b, shape[0]))


def outer_with_tangent(
    module: nn.Conv2d | nn.Linear, delta: torch.Tensor, da: torch.Tensor, shape: tuple[int, ...], b: int
) -> torch.Tensor:
    """sum_n delta (x) da: the weight product from the input tangent, (b, *shape)."""
    if isinstance(module, nn.Conv2d):
        # sum_n delta[n, o] corr da[n, b, c]: a convolution over the images (as channels)
        x = da.flatten(1, 2).transpose(0, 1)  # (b*C, N, H, W)
        corr = F.conv2d(x, delta.transpose(0, 1), padding=module.padding)  # (b*C, O, kh, kw)
        return corr.unflatten(0, (b, shape[1])).transpose(1, 2)
    return delta.T @ da.transpose(0, 1)


def input_products(
    module: nn.Conv2d | nn.Linear,
    in_shape: tuple[int, ...],
    w: torch.Tensor,
    dd: torch.Tensor,
    delta: torch.Tensor,
    dw: torch.Tensor,
    b: int,
) -> torch.Tensor:
    """Tangent of the input gradient: W^T dd + dW^T delta, shape (N, b, ...)."""
    if isinstance(module, nn.Conv2d):
        kw = {"stride": module.stride, "padding": module.padding}  # stride 1: no output padding
        n = dd.shape[0]
        shared = F.conv_transpose2d(dd.flatten(0, 1), w, None, **kw).unflatten(0, (n, b))
        stacked = dw.transpose(0, 1).flatten(1, 2)  # (O, b*C, kh, kw): b kernels side by side
        own = F.conv_transpose2d(delta, stacked, None, module.stride, module.padding)
        return shared.add_(own.unflatten(1, (b, -1)))
    return (dd @ w).add_((delta @ dw.transpose(0, 1).flatten(1, 2)).unflatten(1, (b, -1)))
