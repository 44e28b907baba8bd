"""Registry of adversarial attacks: name -> (description, cost, gradient need, function).

An attack function is batched and pure given its seed::

    fn(target: Target, x: Tensor[N,1,28,28] in [0, 1], y: Tensor[N], cfg: AttackConfig) -> x_adv

``eps`` is in pixel units of the 0-1 image *before* the model's preprocessing (0.3 is the MNIST
challenge's L-inf radius; after MNIST's Normalize it would be 0.3 / 0.3081 ≈ 0.97), because the
threat model is about what can be done to the image, not to a model's internal scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UserError

NORMS = ("linf", "l2")
# Severities 1-5 of the threat model. L-inf ends at the MNIST challenge's 0.3 (Madry et al.
# 2018). L2 ends at 2.0, the largest radius MNIST papers report (FAB and AutoAttack evaluate
# MNIST at L2 = 2.0; Schott et al.'s ABS at 1.5); a fully saturated 0.3 L-inf box on a typical
# digit has an L2 norm near 0.3·√784 ≈ 8.4, so the L2 ladder is the stricter threat per point.
EPS_LADDERS: dict[str, tuple[float, ...]] = {
    "linf": (0.05, 0.1, 0.15, 0.2, 0.3),
    "l2": (0.25, 0.5, 1.0, 1.5, 2.0),
}


@dataclass(frozen=True)
class AttackConfig:
    norm: str
    eps: float
    seed: int = 0
    steps: int = 40  # PGD's iterations (APGD/FAB/Square use their reference budgets)
    restarts: int = 1  # PGD random restarts


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    fn: Callable
    cost: Callable[[AttackConfig], float]  # gradient evaluations per image when nothing breaks
    needs_gradients: bool = True
    implementation: str = "robustmnist"


_ATTACKS: dict[str, Attack] = {}
# the standard AutoAttack set, expanded when a user names it (Croce & Hein 2020)
SETS: dict[str, tuple[str, ...]] = {"autoattack": ("apgd-ce", "apgd-t", "fab-t", "square")}


def register_attack(name: str, *, description: str, cost: Callable[[AttackConfig], float],
                    needs_gradients: bool = True, implementation: str = "robustmnist"):
    def deco(fn: Callable) -> Callable:
        if name in _ATTACKS:
            raise ValueError(f"attack {name!r} registered twice")
        _ATTACKS[name] = Attack(name, description, fn, cost, needs_gradients, implementation)
        return fn

    return deco


def all_attacks() -> dict[str, Attack]:
    return dict(_ATTACKS)


def get_attack(name: str) -> Attack:
    if name not in _ATTACKS:
        raise UserError(f"unknown attack '{name}'. Known: {', '.join([*_ATTACKS, *SETS])}")
    return _ATTACKS[name]


def resolve_attacks(names: str | list[str]) -> list[str]:
    """A comma list of attack and set names -> attack names, in order, each once."""
    items = [s.strip().lower() for s in (names.split(",") if isinstance(names, str) else names) if s.strip()]
    if not items:
        raise UserError(f"`attack=` needs at least one name. Known: {', '.join([*_ATTACKS, *SETS])}")
    out: list[str] = []
    for item in items:
        picked = SETS.get(item, (item,))
        for name in picked:
            get_attack(name)
            if name not in out:
                out.append(name)
    return out


def check_norm(norm: str) -> str:
    norm = (norm or "").lower().replace("-", "")
    if norm not in NORMS:
        raise UserError(f"unknown norm '{norm}'; use linf or l2")
    return norm


def eps_for(norm: str, severities: list[int] | None = None) -> list[tuple[int, float]]:
    ladder = EPS_LADDERS[check_norm(norm)]
    sevs = severities or list(range(1, len(ladder) + 1))
    bad = [s for s in sevs if not 1 <= s <= len(ladder)]
    if bad:
        raise UserError(f"attack severities run 1-{len(ladder)} ({norm} eps "
                        f"{', '.join(f'{e:g}' for e in ladder)}); got {', '.join(map(str, bad))}")
    return [(s, ladder[s - 1]) for s in sorted(set(sevs))]
