"""The network wing's error for training and model files."""


class TrainingError(RuntimeError):
    """Training that cannot go on (NaN loss, bad options)."""
