"""The study's reference networks: LeNet, fully connected nets, linear nets, ResNet18 (CIFAR)."""

import torch
from torch import nn

MODELS = ("lenet", "fcn", "lnn", "lnn-bn", "lnn-relu", "resnet18", "transformer")


class LeNet(nn.Module):
    """conv 6@5x5 (pad 2), max-pool, conv 16@5x5, max-pool, fc 120, 84, classes; ReLU."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        channels, height, width = in_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 16 * ((height // 2 - 4) // 2) * ((width // 2 - 4) // 2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of images x (N, C, H, W)."""
        return self.classifier(self.features(x))


def mlp(
    in_features: int,
    n_classes: int,
    depth: int,
    width: int,
    activation: type[nn.Module] | None = nn.ReLU,
    batchnorm: bool = False,
) -> nn.Sequential:
    """Flatten, then `depth` hidden layers of `width` (activation and BatchNorm optional)."""
    layers, size = [nn.Flatten()], in_features
    for _ in range(depth):
        layers.append(nn.Linear(size, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        if activation is not None:
            layers.append(activation())
        size = width
    layers.append(nn.Linear(size, n_classes))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """A ResNet basic block: two 3x3 conv-BN layers and a shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(body(x) + shortcut(x))."""
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet18 in its CIFAR form: 3x3 stem, no initial max-pool."""

    def __init__(self, in_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.net = nn.Sequential(
            nn.Conv2d(in_shape[0], 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            *layers,
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(512, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of inputs x (N, ...)."""
        return self.net(x)


def build(name: str, in_shape: tuple, n_classes: int, depth: int = 2, width: int = 100) -> nn.Module:
    """A network by name; `depth` and `width` apply to the fully connected families and the
    transformer (blocks and model width; in_shape (T,): token sequences, vocabulary classes + 1)."""
    if name == "transformer":
        from hessian_powerlaw.network.transformer import Transformer

        return Transformer(n_classes + 1, in_shape[0], n_classes, depth, width)
    if len(in_shape) != 3:
        raise ValueError(
            f"{name} takes images (channels, height, width), got inputs of shape {tuple(in_shape)}"
        )
    features = in_shape[0] * in_shape[1] * in_shape[2]
    if name == "lenet":
        return LeNet(in_shape, n_classes)
    if name == "fcn":
        return mlp(features, n_classes, depth, width)
    if name == "lnn":
        return mlp(features, n_classes, depth, width, activation=None)
    if name == "lnn-bn":
        return mlp(features, n_classes, depth, width, activation=None, batchnorm=True)
    if name == "lnn-relu":
        return mlp(features, n_classes, depth, width)
    if name == "resnet18":
        return ResNet18(in_shape, n_classes)
    raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
