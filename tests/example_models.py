"""The models new users bring first, trained briefly: PyTorch's examples/mnist CNN (Normalize
and log_softmax), an MLP trained with Normalize, and an MLP ending in log_softmax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MEAN, STD = 0.1307, 0.3081  # transforms.Normalize((0.1307,), (0.3081,)) in the example


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py ``Net``, layer for layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


class MLP(nn.Module):
    """784-100-10 with an optional log_softmax at the end."""

    def __init__(self, log_softmax: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(784, 100)
        self.fc2 = nn.Linear(100, 10)
        self.log_softmax = log_softmax

    def forward(self, x):
        x = self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))
        return F.log_softmax(x, dim=1) if self.log_softmax else x


def train(net: nn.Module, images: np.ndarray, labels: np.ndarray, *, normalize: bool, steps: int,
          batch: int = 64, lr: float = 1e-3, seed: int = 0) -> nn.Module:
    """Adam on random batches; inputs as ToTensor() (+ Normalize when ``normalize``) give them."""
    torch.manual_seed(seed)
    x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
    if normalize:
        x = (x - MEAN) / STD
    y = torch.from_numpy(labels).long()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        out = net(x[idx])
        # the example trains with nll_loss on log_softmax outputs; logits take cross_entropy
        loss = F.nll_loss(out, y[idx]) if getattr(net, "log_softmax", True) else F.cross_entropy(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def script_model(net, path: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still what users ship
        torch.jit.save(torch.jit.script(net), str(path))
    return path
