"""Which torch device a job runs on (``--device``), shared by segment, benchmark and training."""

from __future__ import annotations

from .errors import InputError

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def pick_device(spec: str, local_rank: int = 0):
    """``auto`` takes a CUDA GPU (the torchrun rank's), else Apple's MPS, else the CPU; a named device must exist."""
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank}")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device '{spec}' ({DEVICE_HELP})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available (use --device cpu)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise InputError("device 'mps' was asked for but Apple's Metal backend is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device '{spec}' ({DEVICE_HELP})")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev
