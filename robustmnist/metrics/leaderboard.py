"""bench's leaderboard: rows ranked by mean shifted accuracy over the families no ranked model
saw in training, with mCE against the reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import Result
from .corruption import corruption_errors
from .reference import Reference


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    name: str
    clean_accuracy: float
    clean_ci: tuple[float, float]
    mean_shifted_accuracy: float
    mce: float | None
    relative_mce: float | None
    worst: str
    worst_accuracy: float
    ood_auroc: float | None
    sha256: str
    robust_accuracy: float | None = None  # worst case at the largest eps of bench --attack
    robust_label: str = ""  # e.g. "linf 0.3"
    mce_vs_first: float | None = None  # bench's extra column: against its first model, labelled so
    seen: str = ""  # families seen in training (left out of this row's headline numbers)
    # does it know when it is wrong (summary["deployment"]): the largest accepted-error rate at the
    # clean threshold, the lowest conformal coverage, mean monitor power at batch 100, silent failures
    max_accepted_error: float | None = None
    min_conformal_coverage: float | None = None
    power_100: float | None = None
    silent_failures: int | None = None


def _deployment(d: dict | None) -> dict:
    if not d or "worst_accepted_error" not in d:
        return {}
    return {"max_accepted_error": d["worst_accepted_error"]["accepted_error_rate"],
            "min_conformal_coverage": d["min_conformal_coverage"]["coverage"],
            "power_100": d.get("mean_power_100"), "silent_failures": len(d["silent_failures"])}


def _robust_label(summary: dict) -> str:
    ra = summary.get("robust_accuracy")
    return f"{ra['norm']} {ra['eps']:g}" if ra else ""


def _unseen_by_all(results: list[Result]) -> set[str]:
    """Families no ranked model saw in training: the only fair ground to rank them on."""
    seen = {f for r in results for f in (r.summary.get("seen_in_training") or {}).get("families", [])}
    seen |= {x.family for r in results for x in r.shifts if getattr(x, "seen", False)}
    return {x.family for r in results for x in r.shifts} - seen


def leaderboard(results: list[Result], reference: Reference,
                relative_to: Reference | None = None) -> list[LeaderRow]:
    """Rows ranked by mean accuracy over the families that no ranked model saw in training (a
    model augmented with fonts would otherwise top the board on the fonts it was taught); mCE
    against ``reference`` (the pinned lenet5 by default everywhere) and, with ``relative_to``, a
    second mCE against another model."""
    fair = _unseen_by_all(results)
    rows = []
    for r in results:
        ce = corruption_errors(r, reference)
        first = corruption_errors(r, relative_to)["mce"] if relative_to is not None else None
        s = r.summary
        w = s.get("worst_shift", {})
        mean = s.get("mean_shifted_accuracy", float("nan"))
        common = [x for x in r.shifts if x.family in fair]
        if common and len(common) < len(r.shifts):
            mean = float(np.mean([x.accuracy for x in common]))
            wr = min(common, key=lambda x: x.accuracy)
            w = {"name": wr.name, "severity": wr.severity, "accuracy": wr.accuracy}
        rows.append(dict(
            name=r.model.name, clean_accuracy=r.clean.accuracy, clean_ci=tuple(r.clean.accuracy_ci),
            mean_shifted_accuracy=mean,
            mce=ce["mce"], relative_mce=ce["relative_mce"],
            worst=f"{w.get('name', '-')} s{w.get('severity', '-')}", worst_accuracy=w.get("accuracy", float("nan")),
            ood_auroc=s.get("ood_mean_auroc"), sha256=r.model.sha256,
            robust_accuracy=s.get("robust_accuracy", {}).get("accuracy"),
            robust_label=_robust_label(s), mce_vs_first=first,
            seen=", ".join((s.get("seen_in_training") or {}).get("families", [])),
            **_deployment(s.get("deployment")),
        ))
    rows.sort(key=lambda d: -d["mean_shifted_accuracy"])
    return [LeaderRow(rank=i + 1, **d) for i, d in enumerate(rows)]
