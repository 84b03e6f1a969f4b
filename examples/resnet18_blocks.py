"""Per-layer Hessian spectra of your own network: a torchvision ResNet18 from its constructor
(random weights), CIFAR-shaped random images, the top-K of chosen parameter blocks.

    python examples/resnet18_blocks.py [--images 128] [--k 50] [--blocks "fc.*,layer4.1.bn2.*"]

Prints one line per block: its size, the top eigenvalue, the power-law fit of its top K and the
cost (Hessian-vector products, seconds). Any `torch.nn.Module`, loss and data go the same way
(`hessian_powerlaw.top_spectrum`); `--blocks layer` takes every module (slow on a CPU for
ResNet18: each block's products run through the whole network).
"""

import argparse
import time

import torch
import torchvision

import hessian_powerlaw as hp
from hessian_powerlaw.fit import FitError


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--blocks", default="fc.*,layer4.1.bn2.*")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    x = torch.randn(args.images, 3, 32, 32)
    y = torch.randint(0, 10, (args.images,))
    start = time.perf_counter()
    blocks = hp.top_spectrum(
        model, torch.nn.CrossEntropyLoss(), (x, y), k=args.k, blocks=args.blocks, device=args.device
    )
    for name, spectrum in blocks.items():
        head = f"{name}: {spectrum.n_params} parameters, lambda_max {spectrum.eigenvalues[0]:.4g}, "
        cost = f"{spectrum.hvp_count} HVPs, {spectrum.seconds:.1f} s"
        try:
            fit = hp.power_law_fit(spectrum.eigenvalues, len(spectrum.eigenvalues), compare=False)
        except FitError as err:
            print(f"{head}no fit ({err}), {cost}")
            continue
        verdict = "power law" if fit["power_law"] else "not a power law"
        print(
            f"{head}beta {fit['beta']:.3f} ± {fit['beta_sigma']:.3f} "
            f"(d_ks {fit['d_ks']:.3f}, d_c {fit['d_c']:.3f}: {verdict}), {cost}"
        )
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
