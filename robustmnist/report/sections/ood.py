"""Out-of-distribution detection: AUROC, FPR95 and AUPR per OOD set and score, with the
max-softmax and predicted-digit histograms and sample images of each set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import plots
from ..blocks import Figure
from ..format import fmt3, pct
from ..images import png_data_uri
from ..view import Layout, Model

SCORE_NAMES = {"msp": "max softmax", "max_logit": "max logit", "energy": "energy"}


@dataclass
class OODRow:
    model: str
    set: str
    description: str
    n: int
    score: str
    auroc: str
    fpr95: str
    aupr_in: str
    aupr_out: str
    first: bool
    span: int
    mean_conf: str
    over_09: str
    over_099: str
    tone: str = ""


@dataclass
class OODPanel:
    title: str
    figures: list[Figure]
    samples: str  # data URI or ""


@dataclass
class OOD:
    rows: list[OODRow]
    convention: str
    panels: list[OODPanel]


def build(models: Sequence[Model], layout: Layout) -> OOD:
    return OOD(ood_rows(models), ood_convention(models), ood_panels(models))


def ood_rows(models: Sequence[Model]) -> list[OODRow]:
    rows = []
    for m in models:
        for o in m.result.ood:
            scores = [(k, o.scores[k]) for k in SCORE_NAMES if k in o.scores] + \
                [(k, v) for k, v in o.scores.items() if k not in SCORE_NAMES]
            for i, (k, v) in enumerate(scores):
                auroc = v.get("auroc")
                na = v.get("available") is False  # e.g. energy of a log-softmax model: see ood.py
                rows.append(OODRow(
                    m.name, o.name, o.description, o.n,
                    SCORE_NAMES.get(k, k) + (f" ({v.get('reason', 'not available')})" if na else ""),
                    "not available" if na else fmt3(auroc), pct(v.get("fpr95")), fmt3(v.get("aupr_in")),
                    fmt3(v.get("aupr_out")), i == 0, len(scores), pct(o.mean_confidence),
                    pct(o.frac_confidence_over_0_9), pct(o.frac_confidence_over_0_99),
                    "" if auroc is None else "good" if auroc >= 0.95 else
                    "warn" if auroc >= 0.85 else "bad"))
    return rows


def ood_convention(models: Sequence[Model]) -> str:
    """How AUROC and FPR95 were computed, said once: each OOD record carries the convention it
    was scored with, and the result-wide ``conventions["fpr95"]`` says the same in other words,
    so that one is only the fallback for records without their own."""
    texts: list[str] = []
    for m in models:
        for t in [o.convention for o in m.result.ood]:
            if t and t not in texts:
                texts.append(t)
    if not texts:
        for m in models:
            t = m.result.conventions.get("fpr95", "") if m.result.ood else ""
            if t and t not in texts:
                texts.append(t)
    return "; ".join(texts)


def ood_panels(models: Sequence[Model]) -> list[OODPanel]:
    panels = []
    for i, m in enumerate(models):
        prefix = f"{m.name}: " if len(models) > 1 else ""
        for o in m.result.ood:
            figs = []
            h = o.msp_histogram or {}
            if h.get("edges") and h.get("in") and h.get("out"):
                figs.append(Figure(plots.msp_histogram(f"{prefix}max softmax, {o.name}",
                                                       h["edges"], h["in"], h["out"], o.name),
                                   f"histogram of max softmax, MNIST test vs {o.name}"))
            if o.predicted_histogram:
                figs.append(Figure(plots.predicted_histogram(f"{prefix}{o.name} predicted as",
                                                             o.predicted_histogram,
                                                             3 if len(models) == 1 else i),
                                   f"which digit {o.name} images are predicted as"))
            samples = png_data_uri((o.gallery or {}).get("samples_png"))
            panels.append(OODPanel(f"{prefix}{o.name}", figs, samples or ""))
    return panels
