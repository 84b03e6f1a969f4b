"""Where network work runs: the device choice and the memory it has free."""

import torch


class DeviceError(RuntimeError):
    """A device that was asked for but is not there."""


def pick_device(device: str | torch.device = "auto") -> str:
    """'cpu', 'cuda' or 'cuda:N' from a name or a torch.device ('auto': cuda when there is one);
    DeviceError for any other device (meta, mps, a missing GPU)."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise DeviceError(f"device must be a name such as 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r} (cpu, cuda, cuda:N or auto)") from None
    if kind not in ("cpu", "cuda"):
        raise DeviceError(f"device {device!r} is not supported (cpu, cuda, cuda:N or auto)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but CUDA is not available")
    return device


def available_bytes(device: str | torch.device) -> int:
    """Bytes free on `device`: the GPU's free memory, or the machine's available memory."""
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    import psutil

    return psutil.virtual_memory().available


def machine(device: str | torch.device) -> str:
    """What a result's rounding depends on besides its settings and threads: the instruction set
    torch's CPU kernels use (AVX2, AVX512, ...) or the GPU's name, and the torch version; a rerun
    is bit-identical only on a machine that reads the same."""
    where = (
        torch.cuda.get_device_name(torch.device(device))
        if str(device).startswith("cuda")
        else f"{torch.backends.cpu.get_cpu_capability()} CPU"
    )
    return f"{where}, torch {torch.__version__}"
