"""The report's view of its Results: each one as a named, coloured Model with its records
indexed by (shift, severity), and the Layout of shifts and severities the sections share.

Everything in the report is a pure function of the Results (no clock, no files), so the same
results.json always gives the same report. One Result gives a single-model report;
several give side-by-side comparisons, shift order being the union in order of first
appearance (a run writes shifts grouped by family, in suite order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..results import Result, SetMetrics, ShiftRecord
from . import plots


@dataclass
class Model:
    name: str
    result: Result
    color: str
    records: dict[tuple[str, int], ShiftRecord] = field(default_factory=dict)

    @property
    def clean(self) -> SetMetrics:
        return self.result.clean

    def acc(self, shift: str, sev: int) -> float | None:
        r = self.records.get((shift, sev))
        return None if r is None else r.accuracy

    def shift_mean(self, shift: str, severities: Sequence[int]) -> float | None:
        vals = [a for s in severities if (a := self.acc(shift, s)) is not None]
        return float(np.mean(vals)) if vals else None


@dataclass
class Layout:
    """Shifts grouped by family (order of first appearance) and the severities present."""

    families: list[tuple[str, list[str]]]
    severities: list[int]
    generative: set[str]

    @property
    def shifts(self) -> list[str]:
        return [s for _, names in self.families for s in names]


def make_models(results: Sequence[Result], names: Sequence[str] | None = None) -> list[Model]:
    if not results:
        raise UserError("no results to report on; pass at least one results.json")
    if names is not None and len(names) != len(results):
        raise UserError(f"got {len(names)} names for {len(results)} results; give one name per "
                        "results file")
    base = list(names) if names is not None else [
        r.model.name or Path(r.model.path).stem or f"model {i + 1}" for i, r in enumerate(results)]
    seen: dict[str, int] = {}
    models = []
    for i, (n, r) in enumerate(zip(base, results, strict=True)):
        seen[n] = seen.get(n, 0) + 1
        shown = n if seen[n] == 1 else f"{n} ({seen[n]})"
        m = Model(shown, r, plots.SERIES[i % len(plots.SERIES)])
        m.records = {(s.name, s.severity): s for s in r.shifts}
        models.append(m)
    return models


def make_layout(models: Sequence[Model]) -> Layout:
    families: dict[str, list[str]] = {}
    sevs: set[int] = set()
    generative: set[str] = set()
    has_twin: set[str] = set()
    for m in models:
        for s in m.result.shifts:
            names = families.setdefault(s.family or "other", [])
            if s.name not in names:
                names.append(s.name)
            sevs.add(s.severity)
            (has_twin if s.flip_rate is not None else generative).add(s.name)
    return Layout(list(families.items()), sorted(sevs), generative - has_twin)

