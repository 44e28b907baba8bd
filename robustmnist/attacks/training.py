"""The inner maximisation of PGD adversarial training (Madry et al. 2018), for ``train``.

Madry's MNIST model trains on PGD-40 (step 0.01) examples at eps 0.3 for 100k steps of batch 50
on a GPU. What a 2-core CPU can afford is scaled down: fewer PGD steps with the step size rule
2.5·eps/steps, and eps ramped up linearly over the first part of training. The ramp matters on
MNIST: at full eps from the first step a small network often settles on predicting one class
(the loss barely moves), while a ramp lets it learn digits first and then robustness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import UserError
from .pgd import STEP_FACTOR, project, random_start, step_direction

METHODS = ("pgd",)


@dataclass(frozen=True)
class AdversarialTraining:
    method: str = "pgd"
    norm: str = "linf"
    eps: float = 0.3
    steps: int = 10
    ramp: float = 0.3  # share of the training steps over which eps grows from 0 to eps

    def __post_init__(self):
        if self.method not in METHODS:
            raise UserError(f"unknown adversarial training method '{self.method}'; use {', '.join(METHODS)}")
        if self.norm not in ("linf", "l2"):
            raise UserError(f"unknown norm '{self.norm}' for adversarial training; use linf or l2")
        if not self.eps > 0:
            raise UserError(f"`eps=` must be positive, got {self.eps}")
        if self.steps < 1:
            raise UserError(f"`steps=` must be at least 1, got {self.steps}")
        if not 0 <= self.ramp < 1:
            raise UserError(f"the eps ramp must be a share in [0, 1), got {self.ramp}")

    @classmethod
    def from_spec(cls, spec: AdversarialTraining | str | dict) -> AdversarialTraining:
        """``"pgd"``, a dict of fields (as zoo recipes write it), or an instance."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        known = {k: spec[k] for k in cls.__dataclass_fields__ if k in spec}
        return cls(**known)

    def to_dict(self) -> dict:
        return {**asdict(self), "step_size": f"{STEP_FACTOR}*eps/steps", "random_start": True}


class AdversarialStep:
    """``(x, y) -> (x_adv, y)``: sits where the training loop applies augmentation.

    The batch is replaced by PGD examples against the current weights (Madry trains on
    adversarial examples only). ``inner`` (an augmenter) runs first, so augmented digits are
    attacked too. Returned on the device the batch came from, so the loop is unchanged.
    """

    def __init__(self, model: nn.Module, cfg: AdversarialTraining | str | dict, seed: int, total_steps: int,
                 inner=None):
        cfg = AdversarialTraining.from_spec(cfg)
        self.model, self.cfg, self.inner = model, cfg, inner
        self.ramp_steps = max(1, round(cfg.ramp * total_steps))
        self.calls = 0
        self.g = torch.Generator().manual_seed(seed + 0x5EED)

    def eps_now(self) -> float:
        if self.cfg.ramp == 0:
            return self.cfg.eps
        return self.cfg.eps * min(1.0, (self.calls + 1) / self.ramp_steps)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inner is not None:
            x, y = self.inner(x, y)
        eps = self.eps_now()
        self.calls += 1
        dev = next(self.model.parameters()).device
        xd, yd = x.to(dev), y.to(dev)
        was_training = self.model.training
        self.model.eval()  # same as the evaluation attack; our zoo nets have no BN or dropout
        try:
            x_adv = pgd_iterate(self.model, xd, yd, eps, self.cfg.steps, self.cfg.norm, self.g)
        finally:
            self.model.train(was_training)
        return x_adv.to(x.device), y


def pgd_iterate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                norm: str, g: torch.Generator) -> torch.Tensor:
    """Fixed-length PGD from a random start; the last iterate (the max-loss point Madry trains on)."""
    alpha = STEP_FACTOR * eps / steps
    xa = project(x + random_start(x.shape, eps, norm, g).to(x.device), x, eps, norm)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(xa), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
        xa = project(xa.detach() + alpha * step_direction(grad, norm), x, eps, norm)
    return xa.detach()
