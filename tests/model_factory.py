"""Small trained models for tests, built fresh so tests never depend on files outside the repo."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robustmnist.models.zoo import build

from .helpers import single_thread


def quick_train(arch: str, images: np.ndarray, labels: np.ndarray, steps: int = 150, seed: int = 0,
                lr: float = 2e-3, batch: int = 128) -> nn.Module:
    """A few hundred Adam steps: enough for ~95% on MNIST with lenet5, seconds on CPU."""
    torch.manual_seed(seed)
    model = build(arch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(labels).long()
    g = torch.Generator().manual_seed(seed)
    # One thread: batches this small gain little from a second one on an idle box and spin-wait
    # many times slower on a busy one (lenet5, 300 steps, load ~15: 5.5 s CPU with one thread, 97 s with two).
    with single_thread():
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,), generator=g)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
