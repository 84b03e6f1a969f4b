"""Where network work runs: the device choice, the memory it has free and the machine it is."""

import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")


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


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU as the kernel names it, from the first processor in ``cpuinfo``: vendor, family and
    model ('AuthenticAMD family 25 model 17'); ``platform.processor()`` (possibly '') where that
    file is absent or names none of them."""
    try:
        first = cpuinfo.read_text(errors="replace").split("\n\n", 1)[0]
    except OSError:
        return platform.processor()
    fields = {
        key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())
    }
    named = [
        fields.get("vendor_id", ""),
        f"family {fields['cpu family']}" if fields.get("cpu family") else "",
        f"model {fields['model']}" if fields.get("model", "").isdigit() else "",
    ]
    return " ".join(part for part in named if part) or platform.processor()


def machine(device: str | torch.device) -> str:
    """What a result's rounding depends on besides its settings and threads: the GPU's name, or the
    instruction set torch's CPU kernels use (AVX2, AVX512, ...) and the CPU model (two AVX512
    CPUs of different vendors or generations round differently: the math libraries pick their
    kernels by model), and the torch version; a rerun is bit-identical only on a machine that
    reads the same."""
    if str(device).startswith("cuda"):
        where = torch.cuda.get_device_name(torch.device(device))
    else:
        model = cpu_model()
        where = f"{torch.backends.cpu.get_cpu_capability()} CPU" + (f" ({model})" if model else "")
    return f"{where}, torch {torch.__version__}"
