"""Shifts a model saw in training, so its headline numbers measure robustness, not recall.

A model trained with ``--augment fonts`` and then evaluated on the fonts family scores what it
was taught (lenet5: fonts +5.1 points with ``--augment fonts``, real printed digits +3.4). So
eval marks every record of a family the model was augmented with as ``seen``, and the headline
numbers (mean shifted accuracy, worst shift, mCE, the gate's aggregates) are computed over the
unseen shifts only; the seen ones are reported beside them.

Where the knowledge comes from:

- a robustmnist checkpoint records ``training.augment.families`` (and ``shifts``), written by
  ``robustmnist train --augment``;
- a model from elsewhere declares it with ``--trained-on FAMILIES`` (shift or family names; a
  shift name marks its whole family, as shifts of one family are variations of one generator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SeenInTraining:
    families: tuple[str, ...] = ()
    shifts: tuple[str, ...] = ()  # the shift names as trained on (or declared)
    source: str = ""  # "checkpoint", "--trained-on" or both, joined by " + "

    def __bool__(self) -> bool:
        return bool(self.families)

    def covers(self, family: str) -> bool:
        return family in self.families

    def to_dict(self) -> dict:
        return {"families": list(self.families), "shifts": list(self.shifts), "source": self.source}


def _families_of(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(shift names, families) for shift or family names; unknown names fail with the list."""
    from ..shifts.registry import all_shifts, resolve_names

    shifts = all_shifts()
    picked = resolve_names(list(names))
    families: list[str] = []
    for n in picked:
        if shifts[n].family not in families:
            families.append(shifts[n].family)
    return picked, families


def from_checkpoint(metadata: dict | None) -> tuple[list[str], list[str]]:
    """(shifts, families) a robustmnist checkpoint says it was augmented with."""
    training = (metadata or {}).get("training") or {}
    aug = training.get("augment") or {}
    shifts = list(aug.get("shifts") or (training.get("config") or {}).get("augment") or [])
    families = list(aug.get("families") or [])
    if shifts and not families:  # checkpoints from before families were recorded
        known = _known_shift_names()
        _, families = _families_of([s for s in shifts if s in known])
    return shifts, families


def _known_shift_names() -> set[str]:
    from ..shifts.registry import all_shifts

    return set(all_shifts())


def resolve(metadata: dict | None, trained_on: str | Sequence[str] | None = None
            ) -> SeenInTraining:
    """What the model saw in training: its checkpoint's record plus ``--trained-on``."""
    shifts, families = from_checkpoint(metadata)
    sources = ["checkpoint"] if families else []
    if trained_on:
        names = trained_on.split(",") if isinstance(trained_on, str) else list(trained_on)
        declared, fams = _families_of([n.strip() for n in names if n.strip()])
        shifts += [s for s in declared if s not in shifts]
        families += [f for f in fams if f not in families]
        sources.append("--trained-on")
    return SeenInTraining(tuple(families), tuple(shifts), " + ".join(sources))
