"""The one device resolver: training, scoring and the API all read a device name here."""

from __future__ import annotations

import torch

from ..errors import UserError


def resolve_device(name: str = "auto", param: str = "device") -> torch.device:
    """auto, cpu, cuda, cuda:N or mps -> a torch.device available on this machine.

    ``param`` is the name the caller knows the setting by, so an error names what to change
    (the core names parameters; the CLI maps them to its flags).
    """
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UserError(f"unknown {param} '{name}'; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{param} '{name}' requested but CUDA is not available; use {param} cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"{param} 'mps' requested but MPS is not available; use {param} cpu")
    return torch.device(name)
