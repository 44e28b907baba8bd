"""FGSM and PGD with random restarts (Goodfellow et al. 2015; Madry et al. 2018), our own.

PGD follows Madry's MNIST recipe: a uniform random start inside the ball, signed (L-inf) or
normalised (L2) gradient steps of 2.5·eps/steps on the cross-entropy of the logits, projection
onto the ball and onto [0, 1] after each step. Two choices that change no trajectory but save
most of the time on models that break: an image leaves the batch at the first iterate the model
misclassifies (that iterate is its adversarial example), and a restart only attacks the images
still standing. Images are independent in eval mode and every random start is drawn up front
from a CPU generator, so the result does not depend on batch size or device.
"""

from __future__ import annotations

import torch

from .registry import AttackConfig, register_attack
from .target import Target, gradient_and_logits, input_gradient

STEP_FACTOR = 2.5  # Madry et al.: step size 2.5·eps/steps lets PGD reach the far side of the ball


def _flat_norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def step_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step for the norm: sign for L-inf, grad/||grad|| for L2."""
    return grad.sign() if norm == "linf" else grad / _flat_norm(grad)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def random_start(shape: torch.Size, eps: float, norm: str, g: torch.Generator) -> torch.Tensor:
    """A point drawn uniformly from the L-inf ball, or uniformly by volume from the L2 ball."""
    if norm == "linf":
        return (torch.rand(shape, generator=g) * 2 - 1) * eps
    d = torch.randn(shape, generator=g)
    d = d / _flat_norm(d)
    dim = d[0].numel()
    r = torch.rand((shape[0], 1, 1, 1), generator=g) ** (1.0 / dim)
    return d * r * eps


@register_attack("fgsm", description="fast gradient sign method: one step of eps (no random start)",
                 cost=lambda cfg: 1.0)
def fgsm(target: Target, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    grad = input_gradient(target, x, y)
    return project(x + cfg.eps * step_direction(grad, cfg.norm), x, cfg.eps, cfg.norm)


@register_attack("pgd", description="projected gradient descent on the cross-entropy, random start, "
                 "--restarts restarts, 40 steps of 2.5·eps/40",
                 cost=lambda cfg: float(cfg.steps * cfg.restarts))
def pgd(target: Target, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed)
    alpha = STEP_FACTOR * cfg.eps / cfg.steps
    x_best = x.clone()
    standing = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for _ in range(max(1, cfg.restarts)):
        start = random_start(x.shape, cfg.eps, cfg.norm, g).to(x.device)  # drawn for all images
        idx = torch.nonzero(standing).flatten()
        if len(idx) == 0:
            break
        x0, yy = x[idx], y[idx]
        xa = project(x0 + start[idx], x0, cfg.eps, cfg.norm)
        for step in range(cfg.steps + 1):
            # the forward pass of each gradient also tells which iterates already fool the model
            if step < cfg.steps:
                grad, logits = gradient_and_logits(target, xa, yy)
            else:
                with torch.no_grad():
                    logits = target(xa)
            broke = logits.argmax(1) != yy
            if broke.any():
                x_best[idx[broke]] = xa[broke]
                standing[idx[broke]] = False
                keep = ~broke
                idx, x0, yy, xa = idx[keep], x0[keep], yy[keep], xa[keep]
                if len(idx) == 0:
                    break
                if step < cfg.steps:
                    grad = grad[keep]
            if step < cfg.steps:
                xa = project(xa + alpha * step_direction(grad, cfg.norm), x0, cfg.eps, cfg.norm)
        # images that never broke keep their last iterate: it is still a valid point in the ball
        if len(idx):
            x_best[idx] = xa
    return x_best
