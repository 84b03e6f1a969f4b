"""Image classification data through torchvision, as in-memory tensors.

MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from a data root in torchvision's layout
(downloaded there when absent), or the bundled 6000/1000-image MNIST subset when no root is
given; a seeded Gaussian-noise stand-in of MNIST's shape (`gaussian`). Options: a seeded training
subset, per-pixel or global normalisation computed on the training set, label noise (each noisy
label a different class) and shuffled labels.
"""

import gzip
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch

DATASETS = {
    "modular-addition": (None, 23),  # synthetic token sequences (network.transformer)
    "mnist": ("MNIST", 10),
    "fashion-mnist": ("FashionMNIST", 10),
    "cifar10": ("CIFAR10", 10),
    "cifar100": ("CIFAR100", 100),
    "gaussian": (None, 10),  # N(0, 1) pixels of MNIST's shape and size, uniformly random labels
}
NORMALIZATIONS = ("pixel", "global", "none")
LABELS = ("true", "shuffled")
GAUSSIAN_SIZES = {"train": 60000, "test": 10000}


class DataError(ValueError):
    """Missing or unusable data, with a one-line reason."""


def bundled_root() -> Path:
    """The folder of the MNIST subset shipped inside the package."""
    return resources.files("hessian_powerlaw") / "data" / "mnist"


def _torchvision(name, root, train, download):
    import torchvision

    cls = getattr(torchvision.datasets, DATASETS[name][0])
    try:
        return cls(str(root), train=train, download=download)
    except RuntimeError as err:
        raise DataError(f"{name} under {root}: {err}") from None


def _raw(name, root, train):
    """(images uint8 N x C x H x W, labels int64 N) of one split."""
    if root is None:
        if name != "mnist":
            raise DataError(f"no data root given and only MNIST is bundled (asked for {name})")
        with tempfile.TemporaryDirectory() as tmp:  # the bundled IDX files, extracted
            raw = Path(tmp) / "MNIST" / "raw"
            raw.mkdir(parents=True)
            for item in (bundled_root() / "MNIST" / "raw").iterdir():
                if item.name.endswith(".gz"):
                    with gzip.open(item) as src, open(raw / item.name[:-3], "wb") as dst:
                        shutil.copyfileobj(src, dst)
            ds = _torchvision(name, tmp, train, download=False)
            return _arrays(ds)
    if not Path(root).is_dir():
        raise DataError(
            f"data root {root}: no such directory (it must hold {DATASETS[name][0]}/ in torchvision's "
            "layout, or be an existing folder to download it into)"
        )
    return _arrays(_torchvision(name, root, train, download=True))


def _arrays(ds):
    data = ds.data if torch.is_tensor(ds.data) else torch.from_numpy(np.asarray(ds.data))
    if data.ndim == 3:
        data = data.unsqueeze(1)  # N x 1 x H x W
    else:
        data = data.permute(0, 3, 1, 2)  # CIFAR: N x H x W x C
    targets = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return data.contiguous(), targets


def _pooled(x, pool, name):
    if not (isinstance(pool, int) and pool >= 1 and x.shape[2] % pool == 0 and x.shape[3] % pool == 0):
        raise DataError(
            f"pool must be a positive integer dividing the {name} image size {tuple(x.shape[2:])}, got {pool}"
        )
    return torch.nn.functional.avg_pool2d(x, pool)


def _modular_addition(n_train, seed, label_noise):
    """(a, b, =) -> (a + b) mod 23, half of the 529 pairs for training (or n_train of them)."""
    from hessian_powerlaw.network.transformer import modular_addition

    p = DATASETS["modular-addition"][1]
    if label_noise:
        raise DataError("label noise is not offered for modular-addition")
    if n_train and not 1 <= n_train < p * p:
        raise DataError(
            f"n_train={n_train} but modular-addition has {p * p} sequences (some must be left to test)"
        )
    return modular_addition(p, n_train / (p * p) if n_train else 0.5, seed)


def gaussian(seed: int = 0) -> dict:
    """MNIST-shaped pure noise: ((x_train, y_train), (x_test, y_test)), pixels N(0, 1) as float
    (60000 and 10000 images, 1 x 28 x 28), labels uniform over 10 classes; seeded."""
    generator = torch.Generator().manual_seed(10007 + seed)
    splits = []
    for split in ("train", "test"):
        n = GAUSSIAN_SIZES[split]
        x = torch.randn((n, 1, 28, 28), generator=generator)
        splits.append((x, torch.randint(0, DATASETS["gaussian"][1], (n,), generator=generator)))
    return splits


def flip_labels(y: torch.Tensor, fraction: float, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A copy of labels y (N,) with round(fraction * N) of them, chosen at random, replaced by a
    different class (uniform over the other n_classes - 1): a noisy label is never the true one."""
    y = y.clone()
    n_noisy = round(fraction * len(y))
    if n_noisy:
        noisy = torch.randperm(len(y), generator=generator)[:n_noisy]
        offset = torch.randint(1, n_classes, (n_noisy,), generator=generator)
        y[noisy] = (y[noisy] + offset) % n_classes
    return y


def shuffle_labels(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The labels y (N,) in a random order: the same label counts, detached from the images."""
    return y[torch.randperm(len(y), generator=generator)]


def load(
    name: str,
    root: str | os.PathLike | None = None,
    n_train: int | None = None,
    seed: int = 0,
    normalization: str = "pixel",
    label_noise: float = 0.0,
    pool: int = 1,
    labels: str = "true",
) -> dict:
    """Training and test sets as float tensors: {'train': (x, y), 'test': (x, y), 'classes': n}.

    n_train: a seeded random subset of the training split (None or 0: all of it).
    label_noise: the fraction of training labels flipped to a different class (seeded).
    labels: 'true', or 'shuffled' (the training labels randomly permuted: random labels).
    pool: average-pool the images by this factor (2: 28x28 MNIST becomes 14x14), before the
    normalisation. Test labels are never changed.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    if normalization not in NORMALIZATIONS:
        raise DataError(f"unknown normalization {normalization!r}")
    if labels not in LABELS:
        raise DataError(f"unknown labels {labels!r} (choose from {', '.join(LABELS)})")
    if name == "modular-addition":
        if labels != "true":
            raise DataError("shuffled labels are not offered for modular-addition")
        return _modular_addition(n_train, seed, label_noise)
    if not 0.0 <= label_noise <= 1.0:
        raise DataError(f"label_noise must be in [0, 1], got {label_noise}")
    if name == "gaussian":
        (x_train, y_train), (x_test, y_test) = gaussian(seed)
    else:
        x_train, y_train = _raw(name, root, train=True)
        x_test, y_test = _raw(name, root, train=False)
        x_train, x_test = x_train.float() / 255.0, x_test.float() / 255.0
    generator = torch.Generator().manual_seed(seed)
    if n_train:
        if n_train > len(x_train):
            raise DataError(f"n_train={n_train} but {name} has {len(x_train)} training images")
        if n_train < len(x_train):
            keep = torch.randperm(len(x_train), generator=generator)[:n_train].sort().values
            x_train, y_train = x_train[keep], y_train[keep]
    n_classes = DATASETS[name][1]
    if label_noise > 0:
        y_train = flip_labels(y_train, label_noise, n_classes, generator)
    if labels == "shuffled":
        y_train = shuffle_labels(y_train, generator)
    if pool != 1:
        x_train, x_test = _pooled(x_train, pool, name), _pooled(x_test, pool, name)
    if normalization == "pixel":
        mean, std = x_train.mean(0, keepdim=True), x_train.std(0, keepdim=True)
    elif normalization == "global":
        mean, std = x_train.mean(), x_train.std()
    else:
        mean, std = torch.tensor(0.0), torch.tensor(1.0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # as StandardScaler: constant pixels unscaled
    return {
        "train": ((x_train - mean) / std, y_train),
        "test": ((x_test - mean) / std, y_test),
        "classes": n_classes,
    }
