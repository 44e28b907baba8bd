"""Deployment readiness: does the model know when it is wrong? Per shift family, what the clean
confidence threshold lets through, whether 90% conformal sets still hold the true digit, whether a
softmax monitor notices, and the silent failures where none of the three helps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...metrics.deployment import SILENT_BATCH, power_at
from .. import deploy_plots
from ..blocks import Figure
from ..format import pct
from ..view import Layout, Model


@dataclass
class SilentRow:
    model: str
    set: str
    accuracy: str
    drop: str
    errors_accepted: str
    accepted_error_rate: str
    power: str
    conformal: str


@dataclass
class FamilyRow:
    model: str
    family: str
    drop: str
    coverage: str
    accepted_error_rate: str
    conformal: str
    set_size: str
    power: list[str]


@dataclass
class Deployment:
    available: bool
    rule: str = ""
    note: str = ""
    silent: list[SilentRow] = field(default_factory=list)
    families: list[FamilyRow] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def _mean(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def build(models: Sequence[Model], layout: Layout) -> Deployment:
    ready = [m for m in models if m.clean.selective and m.result.summary.get("deployment")]
    if not ready:
        return Deployment(False)
    first = ready[0].result.summary["deployment"]
    clean = ready[0].clean
    note = (f"Threshold: the max softmax that accepts {first['target_coverage']:.0%} of the clean test digits; "
            f"conformal sets at alpha {first['alpha']:g} ({clean.conformal['calibration']}); monitor: "
            f"{clean.detection['test']}, {clean.detection['trials']} random batches per size.")
    out = Deployment(True, rule=first["silent_rule"], note=note,
                     batch_sizes=list(clean.detection["batch_sizes"]))
    for m in ready:
        d = m.result.summary["deployment"]
        by_set = {(r.name, r.severity): r for r in m.result.shifts}
        for s in d["silent_failures"]:
            r = by_set.get((s["name"], s["severity"]))
            out.silent.append(SilentRow(
                m.name, f"{s['name']} s{s['severity']}", pct(s["accuracy"]), pct(s["accuracy_drop"]),
                pct(s["errors_accepted"], 0), pct(s["accepted_error_rate"]), pct(s["power_100"], 0),
                pct(r.conformal["coverage"], 0) if r is not None and r.conformal else "—"))
        out.families += family_rows(m, layout)
        out.figures += figures(m, layout, len(ready) > 1)
    return out


def _records(m: Model, names: Sequence[str]):
    return [r for r in m.result.shifts if r.name in names and r.selective]


def family_rows(m: Model, layout: Layout) -> list[FamilyRow]:
    rows = []
    for fam, names in layout.families:
        recs = _records(m, names)
        if not recs:
            continue
        rows.append(FamilyRow(
            m.name, fam, pct(_mean(m.clean.accuracy - r.accuracy for r in recs)),
            pct(_mean(r.selective["coverage"] for r in recs), 0),
            pct(max(r.selective["accepted_error_rate"] for r in recs)),
            pct(min(r.conformal["coverage"] for r in recs), 0),
            f"{_mean(r.conformal['mean_set_size'] for r in recs):.2f}",
            [pct(_mean(power_at(r.detection, b) for r in recs), 0) for b in m.clean.detection["batch_sizes"]]))
    return rows


def figures(m: Model, layout: Layout, compare: bool) -> list[Figure]:
    prefix = f"{m.name}: " if compare else ""
    sel, conf, det = m.clean.selective, m.clean.conformal, m.clean.detection
    fams = [(fam, _records(m, names)) for fam, names in layout.families]
    fams = [(fam, recs) for fam, recs in fams if recs]
    figs = []
    grid = sel["risk_coverage"]["coverage"]
    curves = [(fam, grid, [_mean(r.selective["risk_coverage"]["risk"][i] for r in recs) for i in range(len(grid))])
              for fam, recs in fams]
    clean_curve = ("clean", grid, sel["risk_coverage"]["risk"])
    figs.append(Figure(deploy_plots.risk_coverage(f"{prefix}Risk-coverage", clean_curve, curves,
                                                  sel["target_coverage"]),
                       "risk-coverage curves per family",
                       "error among the accepted images as the threshold loosens; dotted: the clean "
                       "threshold's coverage"))
    sevs = [0] + list(layout.severities)

    def per_sev(recs, get, clean_value):
        return [clean_value] + [_mean(get(r) for r in recs if r.severity == s) for s in layout.severities]

    cov = [(fam, sevs, per_sev(recs, lambda r: r.selective["coverage"], sel["coverage"])) for fam, recs in fams]
    figs.append(Figure(deploy_plots.by_severity(f"{prefix}Accepted at the clean threshold", "share accepted", sevs,
                                                cov, sel["target_coverage"], "clean target"),
                       "coverage at the clean threshold by severity",
                       "falling coverage is the threshold noticing; flat coverage with falling accuracy is not"))
    cc = [(fam, sevs, per_sev(recs, lambda r: r.conformal["coverage"], conf["coverage"])) for fam, recs in fams]
    figs.append(Figure(deploy_plots.by_severity(f"{prefix}Conformal coverage", "true digit in the set", sevs, cc,
                                                1 - conf["alpha"], f"promised {1 - conf['alpha']:.0%}"),
                       "conformal coverage by severity", "sets calibrated on clean digits, applied to shifted ones"))
    silent = {(s["name"], s["severity"]) for s in m.result.summary["deployment"]["silent_failures"]}
    pts = [(fam, m.clean.accuracy - r.accuracy, power_at(r.detection), (r.name, r.severity) in silent)
           for fam, recs in fams for r in recs if power_at(r.detection) is not None]
    if pts:
        figs.append(Figure(deploy_plots.power_vs_drop(f"{prefix}Would a monitor notice?", pts,
                                                      power_at(det), SILENT_BATCH),
                           "detection power against accuracy drop",
                           f"each point a (shift, severity) set; batches of {SILENT_BATCH} unlabeled images"))
    return figs



