"""Confusion matrices: clean, then the worst shifts each followed by its change from clean,
and the confusions that grew most."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..blocks import Matrix, delta_matrix, rate_matrix
from ..format import pct, pp
from ..stats import confusion_rates, grown_confusions, worst_records
from ..view import Layout, Model


@dataclass
class PairRow:
    model: str
    pair: str
    shift: str
    clean: str
    shifted: str
    growth: str
    count: int


@dataclass
class Confusion:
    matrices: list[Matrix]
    pairs: list[PairRow]


def build(models: Sequence[Model], layout: Layout) -> Confusion:
    return Confusion(confusion_matrices(models), confused_pairs(models))


def confusion_matrices(models: Sequence[Model]) -> list[Matrix]:
    """Clean, then the worst shifts (3 for one model, 1 per model when comparing), each
    followed by its change from clean."""
    out = []
    k = 3 if len(models) == 1 else 1
    for m in models:
        prefix = f"{m.name}: " if len(models) > 1 else ""
        out.append(rate_matrix(m.clean.confusion, f"{prefix}clean ({pct(m.clean.accuracy)})"))
        clean = confusion_rates(m.clean.confusion)
        for r in worst_records(m.result.shifts, k):
            out.append(rate_matrix(r.confusion, f"{prefix}{r.name} s{r.severity} "
                                                f"({pct(r.accuracy)})"))
            out.append(delta_matrix(confusion_rates(r.confusion) - clean,
                                    f"{prefix}{r.name} s{r.severity} − clean (pp)"))
    return out


def confused_pairs(models: Sequence[Model], k: int = 10) -> list[PairRow]:
    """The k confusions that grew most from clean (at least 3 per model when comparing)."""
    cands = [(g, m, shift, t, p, r, c) for m in models
             for g, shift, t, p, r, c in grown_confusions(m.clean.confusion, m.result.shifts)]
    cands.sort(key=lambda c: (-c[0], c[1].name, c[2], c[3], c[4]))
    per_model = k if len(models) == 1 else max(3, k // len(models))
    used: dict[str, int] = {}
    out = []
    for g, m, shift, t, p, r, c in cands:
        if used.get(m.name, 0) >= per_model:
            continue
        used[m.name] = used.get(m.name, 0) + 1
        out.append(PairRow(m.name, f"{t} → {p}", f"{shift} s{r.severity}", pct(c),
                           pct(confusion_rates(r.confusion)[t, p]), pp(g), int(r.confusion[t][p])))
    return out
