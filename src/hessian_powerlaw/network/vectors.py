"""Ritz vectors as a flat (n_params, K) matrix and as named per-parameter arrays, and the files
`dnn-spectrum --vectors` writes: ``.npy`` the flat matrix, ``.npz`` one array per parameter
(shape (K, *parameter shape), keyed by the parameter's name; read with
``np.load(path, allow_pickle=False)``)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hessian_powerlaw.io import atomic_path, save_npy

__all__ = ["RitzVectors", "layout_of", "vector_megabytes"]


def layout_of(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """[(name, shape)] of the model's trainable parameters, in the order of the flat vectors."""
    return [(name, tuple(p.shape)) for name, p in model.named_parameters() if p.requires_grad]


def vector_megabytes(n: int, k: int, dtype: torch.dtype = torch.float32) -> float:
    """Memory (MB) of K vectors of n entries."""
    return n * k * torch.tensor([], dtype=dtype).element_size() / 2**20


@dataclass
class RitzVectors:
    """K Ritz vectors and the parameter layout of their rows.

    Attributes
    ----------
    flat : torch.Tensor
        Shape (n_params, K), orthonormal columns, in the order of the eigenvalues.
    layout : list of (str, tuple of int)
        The trainable parameters' names and shapes, in the order of the rows.
    """

    flat: torch.Tensor
    layout: list

    def __post_init__(self):
        """Check that the rows of `flat` match the layout."""
        rows = sum(int(np.prod(shape)) for _, shape in self.layout)
        if self.flat.ndim != 2 or self.flat.shape[0] != rows:
            raise ValueError(f"vectors of shape {tuple(self.flat.shape)} do not fit {rows} parameters")

    def named(self) -> dict[str, np.ndarray]:
        """The vectors as named arrays, one per trainable parameter.

        Returns
        -------
        dict of str to numpy.ndarray
            {parameter name: array of shape (K, *parameter shape)}.
        """
        out, start = {}, 0
        flat = self.flat.detach().cpu().numpy()
        for name, shape in self.layout:
            size = int(np.prod(shape))
            out[name] = np.ascontiguousarray(flat[start : start + size].T.reshape(-1, *shape))
            start += size
        return out

    def save(self, path: str | Path) -> None:
        """Write the vectors to `path` atomically.

        Parameters
        ----------
        path : str or Path
            A .npz file gets the named arrays (`named`); any other name the flat (n_params, K)
            matrix as .npy.
        """
        if str(path).endswith(".npz"):
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **self.named())
        else:
            save_npy(path, self.flat.detach().cpu().numpy())
