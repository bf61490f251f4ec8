"""Which device embeds: ``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (a GPU when PyTorch sees one).

On a GPU the PyTorch model runs in float16 (its vectors agree with float32's at cosine > 0.999);
the fast backend (ONNX Runtime int8) is a CPU backend.
"""
from __future__ import annotations

from core.errors import ShoalError

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _no_gpu_message(device: str) -> str:
    import torch
    build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (f"--device {device}: PyTorch sees no CUDA GPU here (torch {torch.__version__}, {build}). "
            "Use --device cpu (or auto, which falls back to the CPU), or run on a machine with an "
            "NVIDIA GPU and a CUDA build of torch.")


def resolve_device(device: str | None = "auto") -> str:
    """``cpu`` or ``cuda[:N]`` for a requested device; a clear error if a GPU is asked for and absent."""
    wanted = (device or "auto").strip().lower()
    if wanted == "auto":
        return "cuda" if cuda_available() else "cpu"
    if wanted == "cpu":
        return "cpu"
    if wanted == "cuda" or (wanted.startswith("cuda:") and wanted[5:].isdigit()):
        if not cuda_available():
            raise ShoalError(_no_gpu_message(wanted))
        import torch
        index = int(wanted[5:]) if ":" in wanted else 0
        if index >= torch.cuda.device_count():
            raise ShoalError(f"--device {wanted}: only {torch.cuda.device_count()} CUDA GPU(s) are visible.")
        return wanted
    raise ShoalError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)} (or cuda:N).")


def is_gpu(device: str) -> bool:
    return device.startswith("cuda")
