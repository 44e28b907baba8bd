"""Adversarial attacks: worst-case perturbations of a given norm and radius (0-1 pixel units).

Each module registers its attacks (see registry.py); importing the package registers them all.
``evaluate.plan_attacks`` sizes a run (ETA first), ``evaluate.evaluate_attacks`` runs it.
"""

from . import (
    pgd,  # noqa: F401
    reference,  # noqa: F401
)
