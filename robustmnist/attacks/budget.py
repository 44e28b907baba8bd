"""How many images an attack run can afford, and how long it may take (printed before it starts).

The estimate is an upper bound: it prices every image as if it resisted every step of every
attack, which is what a robust model costs. Plain models break within a few steps, so their
runs finish far sooner. On CUDA there is no default budget (the whole test set is attacked).
"""

from __future__ import annotations

import time

import torch

from .registry import AttackConfig, get_attack
from .target import Target, gradient_and_logits

DEFAULT_CPU_BUDGET_S = 300.0
MIN_IMAGES = 100  # below this a robust accuracy's 95% interval is wider than ±10 points
FORWARD_SHARE = 1 / 3  # a forward pass costs about a third of a forward + backward


def seconds_per_gradient(target: Target, batch: int = 128, differentiable: bool = True) -> float:
    """Measured seconds of one input gradient (or one forward pass) per image."""
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(target.device)
    y = torch.zeros(batch, dtype=torch.long, device=target.device)

    def once():
        if differentiable:
            gradient_and_logits(target, x, y)
        else:
            with torch.no_grad():
                target(x)

    once()  # warm-up: first calls allocate and pick kernels
    reps = 3
    t = time.perf_counter()
    for _ in range(reps):
        once()
    if target.device.type == "cuda":
        torch.cuda.synchronize(target.device)
    per = (time.perf_counter() - t) / (reps * batch)
    return per if differentiable else per / FORWARD_SHARE  # in gradient units either way


def gradients_per_image(attacks: list[str], cfgs: list[AttackConfig]) -> float:
    return sum(get_attack(a).cost(c) for a in attacks for c in cfgs)


def choose_prefix(per_image_s: float, n_available: int, budget_s: float | None,
                  n: int | None) -> tuple[int, str]:
    """(images to attack, why): --attack-n wins; else what fits the budget; else all."""
    if n is not None:
        k = min(n, n_available)
        return k, f"first {k} test images (--attack-n)"
    if budget_s is None:
        return n_available, "the whole test set"
    fit = int(budget_s / max(per_image_s, 1e-9))
    k = max(min(MIN_IMAGES, n_available), min(n_available, fit))
    if k >= n_available:
        return n_available, "the whole test set (fits the time budget)"
    return k, f"first {k} test images: what fits a {budget_s:.0f} s budget (--attack-budget, --attack-n)"
