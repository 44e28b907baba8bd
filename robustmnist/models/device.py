"""The one place a device name becomes a torch.device (eval, bench, train, the Python API)."""

from __future__ import annotations

import torch

from ..errors import UserError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps", checked."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available; use `device=cpu`")
    if name == "mps" and not _mps_available():
        raise UserError("device 'mps' requested but MPS is not available; use `device=cpu`")
    return torch.device(name)
