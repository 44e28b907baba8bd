"""results.csv: one tidy row per (model, set, severity, class), ready for pandas.

Columns: model, set, kind (clean | shift | ood | real), family, severity, class (0..9 | all),
n (images of that true class), correct, accuracy, n_predicted (images predicted as that
class). OOD sets have no digit labels: their class rows carry only n_predicted (the
predicted-digit histogram) and the "all" row n. Empty cells are missing values.
The model column is always present, so one-model and comparison files share a schema.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from ..results import SetMetrics
from .view import Model

COLUMNS = ["model", "set", "kind", "family", "severity", "class", "n", "correct", "accuracy",
           "n_predicted"]


def _labelled_rows(model: str, name: str, kind: str, family: str, severity: int,
                   m: SetMetrics) -> list[list]:
    cm = m.confusion
    rows = []
    for k in range(len(cm)):
        n = sum(cm[k])
        correct = cm[k][k]
        rows.append([model, name, kind, family, severity, k, n, correct,
                     _acc(correct, n), sum(row[k] for row in cm)])
    n = sum(map(sum, cm)) or m.n
    correct = sum(cm[k][k] for k in range(len(cm))) if cm else round(m.accuracy * m.n)
    rows.append([model, name, kind, family, severity, "all", n, correct, _acc(correct, n), n])
    return rows


def _acc(correct: int, n: int) -> str:
    return "" if not n else f"{correct / n:.6f}"


def render_csv(models: Sequence[Model]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for m in models:
        r = m.result
        w.writerows(_labelled_rows(m.name, "clean", "clean", "", 0, r.clean))
        for s in r.shifts:
            w.writerows(_labelled_rows(m.name, s.name, "shift", s.family, s.severity, s))
        for o in r.ood:
            for k, c in enumerate(o.predicted_histogram):
                w.writerow([m.name, o.name, "ood", "ood", "", k, "", "", "", c])
            w.writerow([m.name, o.name, "ood", "ood", "", "all", o.n, "", "", o.n])
        for x in r.real:
            w.writerows(_labelled_rows(m.name, x.name, "real", "real", "", x))
    return buf.getvalue()
