"""The network wing's error for training and model files, and what counts as divergence."""

import math


class TrainingError(RuntimeError):
    """Training that cannot go on (NaN loss, bad options)."""


DIVERGED = 10.0  # a training loss above this many uniform-guess losses (ln classes) is a divergence


def diverged(loss: float, classes: int) -> bool:
    """Whether a mean cross-entropy is NaN, infinite or above DIVERGED x ln(classes)."""
    return not loss <= DIVERGED * math.log(classes)
