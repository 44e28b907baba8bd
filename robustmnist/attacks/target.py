"""The thing an attack differentiates: a model seen from the 0-1 pixel image to its logits.

The model's Preprocess spec runs *inside* the forward pass, so a perturbation of eps in pixel
units stays eps whatever range, polarity or layout the model expects, and gradients flow through
the normalisation. Outputs go through ``Preprocess.to_logits`` so probability or log-prob models
are attacked on their log-probabilities (softmax of which is the model's own distribution).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.load import LoadedModel


class Target(nn.Module):
    def __init__(self, model: LoadedModel):
        super().__init__()
        self.loaded = model
        self.differentiable = isinstance(model.module, nn.Module)  # ScriptModule is one too
        if self.differentiable:
            self.net = model.module  # registered so .eval() and .to() reach it

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.loaded.preprocess
        out = self.loaded.module(pre.apply_input(x))
        if isinstance(out, tuple | list):
            out = out[0]
        return pre.to_logits(out.to(x.device))


def input_gradient(target: Target, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d CE / d x, per image (the loss is summed so each image gets its own gradient)."""
    return gradient_and_logits(target, x, y)[0]


def gradient_and_logits(target: Target, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = target(x)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad.detach(), logits.detach()


def has_gradients(target: Target) -> bool:
    """True when a backward pass reaches the input (not for ONNX sessions or numpy callables)."""
    if not target.differentiable:
        return False
    x = torch.full((2, 1, 28, 28), 0.5, device=target.device)
    try:
        g = input_gradient(target, x, torch.zeros(2, dtype=torch.long, device=target.device))
    except RuntimeError:
        return False
    return bool(torch.isfinite(g).all())
