"""APGD-CE, APGD-T, FAB-T and Square from the reference AutoAttack (Croce & Hein 2020).

The code is fra31/auto-attack as packaged on PyPI by ``pyautoattack`` (0.2.0, keyword-only
constructor, logging instead of prints); the ``attacks`` extra installs it. We build its
``AutoAttack(version="standard")`` and call the configured component attacks one at a time, so
each runs with exactly the standard hyperparameters (APGD 100 iterations, 9 target classes for
APGD-T and FAB-T, Square 5000 queries with p_init 0.8). The reference seeds torch's global
generator; a forked RNG keeps the caller's untouched.
"""

from __future__ import annotations

import logging

import torch

from ..errors import UserError
from .registry import AttackConfig, register_attack
from .target import Target

REFERENCE = "pyautoattack 0.2.0 (fra31/auto-attack, standard version)"
# per image when it never breaks: APGD 100 iterations; the targeted versions 100 per target
# class; FAB's step costs about a gradient and a forward; Square's 5000 queries are forwards
# (about a third of a gradient each)
APGD_ITER, TARGETS, SQUARE_QUERIES = 100, 9, 5000


def _standard(target: Target, cfg: AttackConfig):
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise UserError("APGD, FAB and Square use the reference AutoAttack code; install it with "
                        "pip install 'robustmnist[attacks]'") from None
    logging.getLogger("auto-attack").setLevel(logging.ERROR)
    norm = {"linf": "Linf", "l2": "L2"}[cfg.norm]
    return AutoAttack(target, eps=cfg.eps, norm=norm, seed=cfg.seed, device=target.device, version="standard")


def _run(attack, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return attack.perturb(x, y).detach()


@register_attack("apgd-ce", description="APGD on the cross-entropy, 100 iterations (AutoAttack)",
                 cost=lambda cfg: float(APGD_ITER), implementation=REFERENCE)
def apgd_ce(target: Target, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    aa = _standard(target, cfg)
    aa.apgd.loss = "ce"
    return _run(aa.apgd, x, y)


@register_attack("apgd-t", description="targeted APGD on the DLR loss, 9 target classes (AutoAttack)",
                 cost=lambda cfg: float(APGD_ITER * TARGETS), implementation=REFERENCE)
def apgd_t(target: Target, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    return _run(_standard(target, cfg).apgd_targeted, x, y)


@register_attack("fab-t", description="targeted FAB, 9 target classes (AutoAttack)",
                 cost=lambda cfg: APGD_ITER * TARGETS * 1.3, implementation=REFERENCE)
def fab_t(target: Target, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    aa = _standard(target, cfg)
    aa.fab.targeted = True
    aa.fab.n_restarts = 1
    return _run(aa.fab, x, y)


@register_attack("square", description="Square Attack, 5000 queries: black-box, needs no gradients",
                 cost=lambda cfg: SQUARE_QUERIES / 3, needs_gradients=False, implementation=REFERENCE)
def square(target: Target, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    with torch.no_grad():
        return _run(_standard(target, cfg).square, x, y)
