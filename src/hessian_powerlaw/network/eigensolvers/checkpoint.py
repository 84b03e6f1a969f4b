"""Checkpoints of a Lanczos run: its basis, projected matrix and random state so far, so that a
killed run resumes where its last save left it and ends with the values of an uninterrupted one.

A checkpoint is a cache of one request (n, K, block, seed, precision, tolerance, budget) on one
operator: a file made for another request, or whose first block's products no longer match
(the model or its data changed), is set aside with a message and the run starts afresh. It is
written through a temporary file and a rename, so a kill during a save leaves the previous one,
and it is removed when the run ends. It holds the basis (columns x parameters): on disk, about
the memory the run itself needs. The file is an uncompressed `.npz` (its arrays and one JSON
text of the scalars), written array by array from the basis in place (no copy of it in memory)
and read with `allow_pickle=False`.
"""

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hessian_powerlaw.io import InputError, atomic_path

VERSION = 1
EVERY = 600.0  # seconds between saves (a kill loses at most this much work)
MATCH = 1e-4  # relative agreement of the first block's products with the saved ones


class SolverCheckpoint:
    """Where a Lanczos run saves its state, how often, and whether this process writes it.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (made on the first save; removed when the run ends).
    every : float, optional
        Seconds between saves (default EVERY); 0 saves after every block.
    write : bool, default True
        False on the ranks of a data-parallel group other than 0: they read it, rank 0 writes.
    consensus : callable, optional
        In a data-parallel group, ``consensus(flag) -> bool``: whether `flag` holds on every
        rank (`distributed.everyone`); the run resumes only where every rank read the same
        checkpoint (ranks on nodes that do not see the file start afresh with the others).

    Attributes
    ----------
    counters : callable or None
        Returns {'hvp_count', 'data_passes'} of this process's products so far; saved with the
        state so that a resumed run reports the products of the whole run.
    restored : dict
        After a resume: the saved counters and seconds (zeros otherwise).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        every: float | None = None,
        write: bool = True,
        consensus: Callable[[bool], bool] | None = None,
    ):
        self.path, self.write, self.consensus = Path(path), write, consensus
        if self.path.exists() and not self.path.is_file():  # refused now, not at the first save
            raise InputError(
                f"{self.path}: not a regular file; a checkpoint goes only to a regular file or a new path"
            )
        self.every = EVERY if every is None else float(every)
        self.counters: Callable[[], dict] | None = None
        self.restored = {"hvp_count": 0, "data_passes": 0, "seconds": 0.0, "columns": 0}
        self._last = time.monotonic()

    def due(self) -> bool:
        """Whether a save is due.

        Returns
        -------
        bool
            `every` seconds have passed since the last save (or since this object was made).
        """
        return time.monotonic() - self._last >= self.every

    def save(self, request: dict, arrays: dict, scalars: dict, seconds: float) -> None:
        """Write the run's state atomically (rank 0 only; the others only restart the clock).

        Parameters
        ----------
        request : dict
            What the run computes (n, K, block, seed, ...): a later load must ask the same.
        arrays : dict of str to torch.Tensor or None
            The basis (columns, n), the projected matrix, the next block, the generator state.
        scalars : dict
            JSON values: the column count, the norm estimate, the basis health.
        seconds : float
            The solver's seconds in this process so far.
        """
        self._last = time.monotonic()
        if not self.write:
            return
        counts = self.counters() if self.counters else {"hvp_count": 0, "data_passes": 0}
        meta = {
            "version": VERSION,
            "request": request,
            "scalars": scalars,
            "counters": {key: self.restored[key] + counts[key] for key in ("hvp_count", "data_passes")},
            "seconds": self.restored["seconds"] + seconds,
        }
        data = {name: value.detach().cpu().numpy() for name, value in arrays.items() if value is not None}
        with atomic_path(self.path) as tmp, open(tmp, "wb") as out:
            np.savez(out, meta=np.array(json.dumps(meta)), **data)

    @classmethod
    def for_group(cls, path: str | os.PathLike, every: float | None = None) -> "SolverCheckpoint":
        """The checkpoint of a solve that may run in a data-parallel group: rank 0 writes it,
        every rank reads it, and the group resumes only where every rank read it.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.
        every : float, optional
            Seconds between saves (default EVERY).

        Returns
        -------
        SolverCheckpoint
            Writing on rank 0 (or outside a group), with `distributed.everyone` as consensus.
        """
        from hessian_powerlaw.network.operators import distributed

        return cls(path, every, write=distributed.rank() == 0, consensus=distributed.everyone)

    def agreed(self, flag: bool, why: str) -> bool:
        """Whether `flag` holds on every rank (this one alone without a consensus).

        Parameters
        ----------
        flag : bool
            This rank's answer.
        why : str
            The message when this rank's True is overruled by another rank.

        Returns
        -------
        bool
            The answer every rank acts on.
        """
        every = flag if self.consensus is None else self.consensus(flag)
        if flag and not every:
            self._discard(why)
        return every

    def load(self, request: dict) -> tuple[dict, dict] | None:
        """The state saved for this request.

        Parameters
        ----------
        request : dict
            What the run computes, as `save` was given it.

        Returns
        -------
        tuple of (dict, dict) or None
            ({name: CPU tensor}, {name: scalar}); None when there is no file, or (with a
            message on stderr) when it cannot be read or was made for another request.
        """
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                meta = json.loads(str(saved["meta"]))
                arrays = {name: torch.from_numpy(saved[name]) for name in saved.files if name != "meta"}
        except Exception as err:  # a truncated or foreign file is a cache miss, not a failure
            return self._discard(f"it cannot be read ({type(err).__name__})")
        if not isinstance(meta, dict) or meta.get("version") != VERSION:
            return self._discard("it is not a Lanczos checkpoint of this version")
        request = json.loads(json.dumps(request))  # as it reads back (tuples become lists)
        if meta["request"] != request:
            changed = sorted(key for key in request if meta["request"].get(key) != request[key])
            return self._discard(f"it was made for another request ({', '.join(changed) or 'keys'})")
        self.restored = {**meta["counters"], "seconds": meta["seconds"], "columns": 0}
        return arrays, meta["scalars"]

    def saved_block(self) -> int | None:
        """The block size of the saved run: what solver='auto' chose then.

        Returns
        -------
        int or None
            None when there is no readable checkpoint.
        """
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                block = json.loads(str(saved["meta"]))["request"]["block"]
        except Exception:  # no file, or not one of ours: auto measures afresh
            return None
        return block if isinstance(block, int) and block >= 1 else None

    def matches(self, saved: torch.Tensor, fresh: torch.Tensor, scale: float) -> bool:
        """Whether this operator is the one the checkpoint was made on.

        Parameters
        ----------
        saved, fresh : torch.Tensor
            The first block's projected products Q^T H Q, shape (b, b), as saved and as
            recomputed now.
        scale : float
            The saved estimate of ||H||: they match within MATCH times it.

        Returns
        -------
        bool
            False (with a message; the run starts afresh) when the model or its data changed.
        """
        diff = float((saved.double() - fresh.double().cpu()).abs().max())
        if math.isfinite(diff) and diff <= MATCH * max(scale, torch.finfo(torch.float64).tiny):
            return True
        self._discard(f"its products differ from this operator's by {diff:.3g} (the model or data changed)")
        return False

    def resumed(self, columns: int) -> None:
        """Note on stderr that the run goes on from the saved basis.

        Parameters
        ----------
        columns : int
            Its number of vectors.
        """
        self.restored["columns"] = columns
        print(f"lanczos: resuming from {columns} basis vectors saved in {self.path}", file=sys.stderr)

    def remove(self) -> None:
        """Delete the file once the run has ended (rank 0 only)."""
        if self.write:
            self.path.unlink(missing_ok=True)

    def _discard(self, why: str) -> None:
        self.restored = {"hvp_count": 0, "data_passes": 0, "seconds": 0.0, "columns": 0}
        print(f"lanczos: not resuming from {self.path}: {why}; starting afresh", file=sys.stderr)
        return None
