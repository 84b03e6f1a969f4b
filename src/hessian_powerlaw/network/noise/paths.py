"""The noise study's Fig. 1 and Fig. 3 on its network: an SGD run's states projected to nearby
minima (`projection.projected_path`), with the loss, validation loss and exact Hessian trace of
every projected minimum.

The run is SGD with momentum on the small network (`small_net.SMALL_NET`: 500 pooled MNIST
images, 6220 parameters, label-smoothed cross-entropy, no weight decay), its mini-batch at step t
drawn from a generator seeded by (seed, t), so that the segment between two saved states can be
re-run bit-identically: the bisection inserts the state halfway between two by re-running from
the earlier one (with its momentum). Each state is projected by full-batch gradient descent at
the run's learning rate and momentum until the training loss is below the run's lowest
recorded loss.
"""

from pathlib import Path

import numpy as np
import torch

from hessian_powerlaw.io import atomic_path
from hessian_powerlaw.network.errors import TrainingError, diverged
from hessian_powerlaw.network.models import build
from hessian_powerlaw.network.noise.flat import FlatLoss
from hessian_powerlaw.network.noise.projection import projected_path
from hessian_powerlaw.network.noise.small_net import SMALL_NET, load_data
from hessian_powerlaw.network.trace import exact_trace
from hessian_powerlaw.regression import linear_fit

COLUMNS = ("run", "iteration", "loss", "val_loss", "trace", "trace_se", "connected_to_next", "steps")


class Run:
    """A re-runnable SGD run over flat float64 parameter vectors (see the module docstring).

    Parameters
    ----------
    init_seed : int
        Seed of the network's initialisation.
    lr : float, default 0.1
        SGD's learning rate.
    momentum : float, default 0.9
        Heavy-ball momentum.
    batch_size : int, default 25
        Minibatch size.
    seed : int, default 0
        Seed of the batches: step t draws its batch from seed and t alone, so that any stretch of
        the run can be re-run from a saved state.
    data_root : str, optional
        Where the data sets lie.
    n_train : int, optional
        Training images (default the small network's).
    """

    def __init__(
        self,
        init_seed: int,
        lr: float = 0.1,
        momentum: float = 0.9,
        batch_size: int = 25,
        seed: int = 0,
        data_root: str | None = None,
        n_train: int | None = None,
    ):
        if not (lr > 0 and 0 <= momentum < 1 and batch_size >= 1):
            raise TrainingError(
                f"need lr > 0, 0 <= momentum < 1, batch size >= 1 (got {lr}, {momentum}, {batch_size})"
            )
        self.data = load_data({**SMALL_NET, "n_train": n_train or SMALL_NET["n_train"]}, data_root)
        x, y = self.data["train"]
        if batch_size > len(x):
            raise TrainingError(f"batch size {batch_size} is larger than the {len(x)} images")
        torch.manual_seed(init_seed)
        model = build("fcn", tuple(x.shape[1:]), self.data["classes"], 1, SMALL_NET["width"])
        self.flat = FlatLoss(model, x, y, SMALL_NET["label_smoothing"])
        self.x, self.y, self.theta0 = self.flat.x, self.flat.y, self.flat.theta0
        self.lr, self.momentum, self.batch_size, self.seed = lr, momentum, batch_size, seed
        self.buffers = {}  # iteration -> momentum buffer of the states this run produced

    def loss(self, theta: np.ndarray, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> float:
        """The loss at theta.

        Parameters
        ----------
        theta : numpy.ndarray
            Parameters, shape (n,).
        x, y : torch.Tensor, optional
            Data (default the training data).

        Returns
        -------
        float
            The mean label-smoothed cross-entropy.
        """
        return self.flat.loss(theta, x, y)

    def gradient(
        self, theta: np.ndarray, x: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> np.ndarray:
        """The gradient at theta.

        Parameters
        ----------
        theta : numpy.ndarray
            Parameters, shape (n,).
        x, y : torch.Tensor, optional
            Data (default the training data).

        Returns
        -------
        numpy.ndarray
            Shape (n,).
        """
        return self.flat.gradient(theta, x, y)

    def advance(
        self, theta: np.ndarray, buffer: np.ndarray, start: int, steps: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`steps` SGD steps from iteration `start`.

        Parameters
        ----------
        theta, buffer : numpy.ndarray
            Parameters and momentum buffer at iteration `start`, shape (n,) each (not changed).
        start : int
            The iteration of (theta, buffer).
        steps : int
            Steps to take.

        Returns
        -------
        tuple of numpy.ndarray
            (theta, buffer) at iteration start + steps.
        """
        theta, buffer = np.array(theta), np.array(buffer)
        for t in range(start, start + steps):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + t)
            idx = torch.randperm(len(self.x), generator=generator)[: self.batch_size]
            buffer = self.momentum * buffer + self.gradient(theta, self.x[idx], self.y[idx])
            theta = theta - self.lr * buffer
        return theta, buffer

    def states(self, steps: int, every: int) -> list[tuple[int, np.ndarray]]:
        """The run's states every `every` steps from initialisation (momentum kept).

        Parameters
        ----------
        steps : int
            The last iteration.
        every : int
            Iterations between kept states.

        Returns
        -------
        list of (int, numpy.ndarray)
            (iteration, theta) pairs.
        """
        theta, buffer, out = self.theta0.copy(), np.zeros_like(self.theta0), []
        for start in range(0, steps + 1, every):
            if start:
                theta, buffer = self.advance(theta, buffer, start - every, every)
                if diverged(self.loss(theta), self.data["classes"]):
                    raise TrainingError(f"SGD at lr {self.lr:g} diverged by step {start}")
            self.buffers[start] = buffer
            out.append((start, theta))
        return out

    def between(self, a: int, theta_a: np.ndarray, b: int) -> np.ndarray:
        """The state half-way between two iterations, re-run from the earlier one.

        Parameters
        ----------
        a : int
            The earlier iteration (its momentum buffer must be known to this run).
        theta_a : numpy.ndarray
            The parameters at a, shape (n,).
        b : int
            The later iteration.

        Returns
        -------
        numpy.ndarray
            The parameters at (a + b) // 2.
        """
        middle = (a + b) // 2
        theta, buffer = self.advance(theta_a, self.buffers[a], a, middle - a)
        self.buffers[middle] = buffer
        return theta

    def trace(self, theta: np.ndarray) -> float:
        """The exact trace of the Hessian of the training loss at theta.

        Parameters
        ----------
        theta : numpy.ndarray
            Parameters, shape (n,).

        Returns
        -------
        float
            tr H (`trace.exact_trace`).
        """
        return exact_trace(self.flat.module(theta), self.x)


def path_records(
    run: Run,
    steps: int,
    every: int,
    after: int = 0,
    cache: dict | None = None,
    points: int = 10,
    max_steps: int = 200_000,
    name: str = "run",
    min_gap: int = 1,
) -> list[dict]:
    """The projected path of a run (COLUMNS), from iteration `after` on.

    States every `every` steps up to `steps` are projected below the lowest recorded training
    loss and bisected where consecutive minima are not line connected (down to `min_gap`
    iterations).

    Parameters
    ----------
    run : Run
        The SGD run.
    steps, every : int
        The last iteration, and iterations between states.
    after : int, default 0
        The first iteration kept.
    cache : dict, optional
        {iteration: (minimum, steps, loss)} of projections already made (a SavedCache resumes).
    points : int, default 10
        Points of each segment's line-connectedness test.
    max_steps : int, default 200000
        Gradient steps of one projection at most.
    name : str, default "run"
        The rows' run column.
    min_gap : int, default 1
        Iterations between two states below which bisection stops.

    Returns
    -------
    list of dict
        One row per projected state, in iteration order.
    """
    states = [(i, theta) for i, theta in run.states(steps, every) if i >= after]
    threshold = min(run.loss(theta) for _, theta in states)
    rows = projected_path(
        states,
        run.between,
        run.loss,
        run.gradient,
        run.lr,
        threshold,
        cache,
        points,
        max_steps,
        run.momentum,
        min_gap,
    )
    x_test, y_test = (t.double() if t.is_floating_point() else t for t in run.data["test"])
    return [
        {
            "run": name,
            "iteration": r["iteration"],
            "loss": r["loss"],
            "val_loss": run.loss(r["minimum"], x_test, y_test),
            "trace": run.trace(r["minimum"]),
            "trace_se": 0.0,
            "connected_to_next": r["connected_to_next"],
            "steps": r["steps"],
        }
        for r in rows
    ]


class SavedCache(dict):
    """Projections {iteration: (minimum, steps, loss)} kept in an .npz file.

    The file is rewritten (atomically) after every new projection, so that a killed projection
    run resumes where it stopped.

    Parameters
    ----------
    path : str or Path
        The .npz file (read when it exists; never unpickled).
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = path
        if Path(path).is_file():
            with np.load(path, allow_pickle=False) as saved:
                for key in saved.files:
                    if key.startswith("theta_"):
                        i = int(key.removeprefix("theta_"))
                        super().__setitem__(
                            i, (saved[key], int(saved[f"steps_{i}"]), float(saved[f"loss_{i}"]))
                        )

    def __setitem__(self, iteration, value):
        """Store one projection and rewrite the .npz atomically."""
        super().__setitem__(iteration, value)
        arrays = {}
        for i, (theta, steps, loss) in self.items():
            arrays.update({f"theta_{i}": theta, f"steps_{i}": np.array(steps), f"loss_{i}": np.array(loss)})
        with atomic_path(self.path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def trace_fit(rows: list[dict]) -> dict:
    """The least-squares slope of the trace against the iteration along a projected path.

    Parameters
    ----------
    rows : list of dict
        One run's rows of `path_records` (at least one).

    Returns
    -------
    dict
        run, n_points and the line's fit (`regression.linear_fit`).
    """
    fit = linear_fit([r["iteration"] for r in rows], [r["trace"] for r in rows])
    return {"run": rows[0]["run"], "n_points": len(rows), **fit}
