"""The ``--attack`` options that eval and bench share: make the plan, print its ETA and results."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from .common import console, parse_int_list


@dataclass(frozen=True)
class AttackOptions:
    names: str | None = None
    norm: str = "linf"
    severity: str | None = None
    restarts: int = 1
    n: int | None = None
    budget: float | None = None

    @property
    def wanted(self) -> bool:
        return bool(self.names)


def make_plan(model, opts: AttackOptions, n_available: int, seed: int = 0):
    """The plan for one model, its ETA printed before anything is attacked."""
    from ..attacks.evaluate import plan_attacks

    plan = plan_attacks(model, opts.names, norm=opts.norm, severities=parse_int_list(opts.severity,
                        "--attack-severity"), n=opts.n, budget_s=opts.budget, restarts=opts.restarts,
                        seed=seed, n_available=n_available)
    console.print(f"[bold]{model.name}[/]: {plan.describe()}", highlight=False)
    return plan


def same_prefix(models, opts: AttackOptions, n_available: int, seed: int = 0) -> list:
    """One plan per model, all on the same images: the smallest prefix any model's budget allows."""
    from dataclasses import replace

    plans = [make_plan(m, opts, n_available, seed) for m in models]
    k = min(p.n for p in plans)
    if any(p.n != k for p in plans):
        console.print(f"all models are attacked on the first {k} images (the smallest budget's prefix)")
    return [replace(p, n=k, eta_seconds=(p.eta_seconds or 0) * k / max(p.n, 1),
                    prefix=p.prefix if p.n == k else f"first {k} test images (shared by every model of the bench)")
            for p in plans]


def adversarial_table(section, name: str) -> Table:
    t = Table(title=f"{name} under attack ({', '.join(section.attacks)}; {section.norm}; "
                    f"{section.n} of {section.n_available} images)")
    for col in ("eps", "robust acc", "95% CI", *section.attacks, "median ‖δ‖", "seconds"):
        t.add_column(col, justify="right")
    for r in section.records:
        lo, hi = r.robust_accuracy_ci
        t.add_row(f"{r.eps:g}", f"{r.robust_accuracy:.2%}", f"{lo:.1%}–{hi:.1%}",
                  *[f"{r.per_attack[a]['robust_accuracy']:.2%}" for a in section.attacks],
                  "-" if r.median_norm is None else f"{r.median_norm:.3f}", f"{r.seconds:.0f}")
    return t


def print_adversarial(result) -> None:
    section = result.adversarial
    if section is None:
        return
    console.print(adversarial_table(section, result.model.name))
    for w in section.warnings:
        console.print(f"[bold yellow]masking check:[/] {w}", highlight=False)
