"""Model files of `train`: written atomically, read without unpickling anything."""

import os

import torch

from hessian_powerlaw.io import atomic_path
from hessian_powerlaw.network.errors import TrainingError
from hessian_powerlaw.network.models import build


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """torch.save to `path` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A model and its metadata from a file written by `train`; never unpickles objects.

    The network is first built on the 'meta' device (no memory) and its shapes checked against
    the saved weights, which are then assigned: metadata that asks for a huge network cannot
    allocate anything before it is found not to match the file.

    Parameters
    ----------
    path : str or os.PathLike
        A model file of `train` (``torch.save`` of tensors and plain metadata).
    device : str or torch.device, default "cpu"
        Where the weights go.

    Returns
    -------
    model : torch.nn.Module
        In eval mode.
    meta : dict
        The training settings and results stored with it.

    Raises
    ------
    TrainingError
        One line naming the file when it is not a model file of this package or does not match.
    FileNotFoundError
        When there is no such file.
    """
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        meta = saved["meta"]
        shape = tuple(meta["in_shape"])
        with torch.device("meta"):
            model = build(meta["model"], shape, meta["classes"], meta["depth"], meta["width"])
        model.load_state_dict(saved["state_dict"], assign=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        message = " ".join(str(err).split())
        if len(message) > 300:
            message = message[:300] + "..."
        raise TrainingError(
            f"{path}: not a model file written by hessian-powerlaw train ({message})"
        ) from None
    return model.to(device).eval(), meta
