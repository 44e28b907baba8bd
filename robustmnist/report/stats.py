"""The numbers the report computes from Results beyond what results.json stores: means that
skip missing sets, per-class drops, confusion rates and the confusions that grew, pooled
reliability bins. Pure functions of metrics; formatting is the sections' job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..results import SetMetrics, ShiftRecord

if TYPE_CHECKING:
    from .view import Layout, Model

N_CLASSES = 10


def mean_known(vals) -> float | None:
    """Mean of the values that are not None; None when none is known."""
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def nanmean(a, axis=0) -> np.ndarray:
    """nanmean that gives NaN for an all-missing column without a RuntimeWarning (a model
    whose run lacks a family the other model has)."""
    a = np.asarray(a, dtype=float)
    n = np.isfinite(a).sum(axis=axis)
    total = np.where(np.isfinite(a), a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def per_class_accuracy(metrics: SetMetrics) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in metrics.per_class_accuracy[:N_CLASSES]],
                    dtype=float)


def class_drops(m: Model, severities: Sequence[int], names: Sequence[str]) -> np.ndarray:
    """Mean over severities of (clean per-class accuracy − shifted), one row per shift name."""
    clean = per_class_accuracy(m.clean)
    rows = []
    for s in names:
        recs = [m.records[(s, sv)] for sv in severities if (s, sv) in m.records]
        rows.append(nanmean([clean - per_class_accuracy(r) for r in recs], axis=0) if recs
                    else np.full(N_CLASSES, np.nan))
    return np.array(rows).reshape(len(rows), N_CLASSES)


def most_confused(cm: np.ndarray, k: int) -> tuple[int, float] | None:
    """(the digit true k is most often predicted as, its share of the true k's), or None when
    every k was read correctly."""
    off = cm[k].copy()
    off[k] = 0
    if not off.sum():
        return None
    p = int(off.argmax())
    return p, off[p] / max(cm[k].sum(), 1)


def shift_drops(m: Model, layout: Layout) -> list[tuple[str, str, float, float, int, float]]:
    """(shift, family, mean accuracy over severities, drop from clean, worst severity, worst acc),
    largest drop first."""
    out = []
    for fam, names in layout.families:
        for s in names:
            mean = m.shift_mean(s, layout.severities)
            if mean is None:
                continue
            worst_sev, worst = min(((sv, a) for sv in layout.severities
                                    if (a := m.acc(s, sv)) is not None), key=lambda t: t[1])
            out.append((s, fam, mean, m.clean.accuracy - mean, worst_sev, worst))
    return sorted(out, key=lambda t: (-t[3], t[0]))


def confusion_rates(cm) -> np.ndarray:
    """Each row of a confusion matrix as shares of its true digit."""
    a = np.asarray(cm, dtype=float)
    return a / np.maximum(a.sum(axis=1, keepdims=True), 1)


def worst_records(records: Sequence[ShiftRecord], k: int = 3) -> list[ShiftRecord]:
    """The k shifts with the lowest accuracy, each at its worst severity."""
    best: dict[str, ShiftRecord] = {}
    for r in records:
        if r.name not in best or r.accuracy < best[r.name].accuracy:
            best[r.name] = r
    return sorted(best.values(), key=lambda r: (r.accuracy, r.name))[:k]


def grown_confusions(clean_cm, records: Sequence[ShiftRecord], top: int = 5
                     ) -> list[tuple[float, str, int, int, ShiftRecord, float]]:
    """Off-diagonal (true → predicted) rates that grew from clean: (growth, shift, true, predicted,
    record, clean rate). Each set offers its ``top`` largest; each (shift, pair) is kept once, at
    the severity where it grew most."""
    clean = confusion_rates(clean_cm)
    best: dict[tuple[str, int, int], tuple[float, ShiftRecord]] = {}
    for r in records:
        delta = confusion_rates(r.confusion) - clean
        np.fill_diagonal(delta, -np.inf)
        for flat in np.argsort(delta, axis=None)[::-1][:top]:
            t, p = divmod(int(flat), N_CLASSES)
            key = (r.name, t, p)
            if key not in best or delta[t, p] > best[key][0]:
                best[key] = (float(delta[t, p]), r)
    return [(g, shift, t, p, r, clean[t, p]) for (shift, t, p), (g, r) in best.items() if g > 0]


def pooled_reliability(records: Sequence[SetMetrics]) -> tuple[list, list, list[int]]:
    """Bins summed over sets: count-weighted accuracy and confidence per bin."""
    bins = max((len(r.reliability.get("counts", [])) for r in records), default=0)
    n = np.zeros(bins)
    a = np.zeros(bins)
    c = np.zeros(bins)
    for r in records:
        rel = r.reliability or {}
        for i, (cnt, acc, conf) in enumerate(zip(rel.get("counts", []), rel.get("accuracy", []),
                                                 rel.get("confidence", []), strict=False)):
            if cnt and acc is not None and conf is not None:
                n[i] += cnt
                a[i] += cnt * acc
                c[i] += cnt * conf
    acc = [float(a[i] / n[i]) if n[i] else None for i in range(bins)]
    conf = [float(c[i] / n[i]) if n[i] else None for i in range(bins)]
    return acc, conf, [int(x) for x in n]
