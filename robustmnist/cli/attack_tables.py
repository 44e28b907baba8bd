"""How eval and bench show an adversarial section in the terminal (the plans are run/attack_plans.py)."""

from __future__ import annotations

from rich.table import Table

from .common import console


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
