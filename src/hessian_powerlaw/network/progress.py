"""Progress of training on stderr: a bar over every batch on a terminal, else a line per epoch."""

import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


def epoch_bar(spec: dict, n: int, start: int, enabled: bool) -> "tqdm | None":
    """One bar over every batch of the run on a terminal; None elsewhere (logs get a line per
    epoch from epoch_report instead of a line per refresh)."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    batches = math.ceil(n / spec["batch_size"])
    return tqdm(
        total=spec["epochs"] * batches, initial=start * batches, desc="train", unit="batch", file=sys.stderr
    )


def epoch_report(bar: "tqdm | None", record: dict, spec: dict, enabled: bool) -> None:
    """The epoch's figures: on the bar, or one line on stderr."""
    figures = {
        "loss": f"{record['train_loss']:.4f}",
        "acc": f"{record['train_acc']:.4f}",
        "test_acc": f"{record['test_acc']:.4f}",
    }
    if bar is not None:
        bar.set_postfix(epoch=f"{record['epoch']}/{spec['epochs']}", **figures)
    elif enabled:
        text = ", ".join(f"{key} {value}" for key, value in figures.items())
        print(
            f"train: epoch {record['epoch']}/{spec['epochs']}: {text}, {record['seconds']:.1f} s",
            file=sys.stderr,
        )
