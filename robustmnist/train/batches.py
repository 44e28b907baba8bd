"""What the loop feeds the model: the validation hold-out and per-batch scaling to [0, 1]."""

from __future__ import annotations

import torch

from ..shifts.sets import derive_seed


def as_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1]; float input is passed through (the range guard checks it)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


def split_validation(n: int, val_split: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): a seeded random hold-out, independent of every other seed use."""
    g = torch.Generator().manual_seed(derive_seed("robustmnist-train-split", seed))
    perm = torch.randperm(n, generator=g)
    n_val = int(round(n * val_split))
    if val_split > 0 and n_val == 0:
        n_val = 1
    return perm[n_val:].sort().values, perm[:n_val].sort().values
