"""Attack options a run takes (eval's and bench's alike) and the plan per model they make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..errors import UserError


@dataclass(frozen=True)
class AttackOptions:
    names: str | Sequence[str] | None = None
    norm: str = "linf"
    severity: str | Sequence[int] | int | None = None  # eps levels 1-5
    restarts: int = 1
    n: int | None = None
    budget: float | None = None

    @property
    def wanted(self) -> bool:
        return bool(self.names)

    def severities(self) -> list[int] | None:
        s = self.severity
        if s is None or s == "":
            return None
        if isinstance(s, int):
            return [s]
        try:
            return [int(t) for t in (s.split(",") if isinstance(s, str) else s) if str(t).strip()]
        except ValueError:
            raise UserError(f"`attack_severity=` must be a comma list of whole numbers, got '{s}'") from None


def make_plan(model, opts: AttackOptions, n_available: int, seed: int = 0,
              log: Callable[[str], None] | None = None):
    """The plan for one model, its ETA said before anything is attacked."""
    from ..attacks.evaluate import plan_attacks

    plan = plan_attacks(model, opts.names, norm=opts.norm, severities=opts.severities(), n=opts.n,
                        budget_s=opts.budget, restarts=opts.restarts, seed=seed, n_available=n_available)
    if log:
        log(f"{model.name}: {plan.describe()}")
    return plan


def same_prefix(models, opts: AttackOptions, n_available: int, seed: int = 0,
                log: Callable[[str], None] | None = None) -> list:
    """One plan per model, all on the same images: the smallest prefix any model's budget allows."""
    plans = [make_plan(m, opts, n_available, seed, log) for m in models]
    k = min(p.n for p in plans)
    if any(p.n != k for p in plans) and log:
        log(f"all models are attacked on the first {k} images (the smallest budget's prefix)")
    return [replace(p, n=k, eta_seconds=(p.eta_seconds or 0) * k / max(p.n, 1),
                    prefix=p.prefix if p.n == k else f"first {k} test images (shared by every model of the bench)")
            for p in plans]
