"""Adversarial robustness: accuracy-vs-eps curves, a table per model, masking warnings and a
gallery of attacked digits.

A pure function of ``Result.adversarial``; every string reaches the page through Jinja's
autoescaping, and every image through ``png_data_uri`` (which drops anything not a PNG).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import plots
from ..blocks import Figure
from ..format import pct
from ..images import png_data_uri
from ..view import Layout, Model


@dataclass
class AdvRow:
    eps: str
    robust: str
    ci: str
    per_attack: list[str]
    median_norm: str
    seconds: str


@dataclass
class AdvExample:
    clean: str
    adversarial: str
    perturbation: str | None
    pair: str
    caption: str
    title: str


@dataclass
class AdvPanel:
    model: str
    summary: str
    attacks: list[str]
    rows: list[AdvRow]
    warnings: list[str]
    examples: list[AdvExample]
    black_box: bool


@dataclass
class Adversarial:
    curves: list[Figure]
    panels: list[AdvPanel]


def build(models: Sequence[Model], layout: Layout) -> Adversarial:
    return Adversarial(curves(models), panels(models))


def curves(models: Sequence[Model]) -> list[Figure]:
    with_adv = [m for m in models if m.result.adversarial and m.result.adversarial.records]
    if not with_adv:
        return []
    figs = []
    by_norm: dict[str, list[Model]] = {}
    for m in with_adv:
        by_norm.setdefault(m.result.adversarial.norm, []).append(m)
    for norm, ms in by_norm.items():
        if len(ms) == 1:  # one model: the worst case and each attack on its own
            sec = ms[0].result.adversarial
            xs = [0.0] + [r.eps for r in sec.records]
            clean = ms[0].clean.accuracy
            series = [("worst case", xs, [clean] + [r.robust_accuracy for r in sec.records])]
            if len(sec.attacks) > 1:
                series += [(a, xs, [clean] + [r.per_attack.get(a, {}).get("robust_accuracy", 0.0)
                                              for r in sec.records]) for a in sec.attacks]
            figs.append(Figure(plots.accuracy_vs_eps(f"robust accuracy vs {norm} eps", norm, series,
                                               [("clean", clean)]),
                               f"robust accuracy against {norm} eps, worst case and per attack"))
        else:
            series = [(m.name, [0.0] + [r.eps for r in m.result.adversarial.records],
                       [m.clean.accuracy] + [r.robust_accuracy for r in m.result.adversarial.records])
                      for m in ms]
            figs.append(Figure(plots.accuracy_vs_eps(f"robust accuracy vs {norm} eps", norm, series, []),
                               f"worst-case robust accuracy against {norm} eps, one line per model"))
    return figs


def panels(models: Sequence[Model], k: int = 8) -> list[AdvPanel]:
    out = []
    for m in models:
        sec = m.result.adversarial
        if sec is None:
            continue
        rows = []
        for r in sec.records:
            lo, hi = r.robust_accuracy_ci
            rows.append(AdvRow(f"{r.eps:g}", pct(r.robust_accuracy), f"{pct(lo)}–{pct(hi)}",
                               [pct(r.per_attack.get(a, {}).get("robust_accuracy")) for a in sec.attacks],
                               "-" if r.median_norm is None else f"{r.median_norm:.3f}", f"{r.seconds:.0f} s"))
        examples = []
        last = sec.records[-1] if sec.records else None
        for e in (last.gallery if last else [])[:k]:
            clean, adv = png_data_uri(e.get("clean_png")), png_data_uri(e.get("png"))
            if clean is None or adv is None:
                continue
            conf = e.get("confidence")
            examples.append(AdvExample(clean, adv, png_data_uri(e.get("perturbation_png")),
                                       f"{e.get('true')}→{e.get('pred')}", pct(conf, 0),
                                       f"test image {e.get('index')}: true {e.get('true')}, read as "
                                       f"{e.get('pred')} ({pct(conf)}) at {sec.norm} eps {last.eps:g}"))
        summary = (f"{', '.join(sec.attacks)} · {sec.norm} · {sec.n:,} of {sec.n_available:,} test images "
                   f"({sec.prefix}) · seed {sec.seed}" + (f" · PGD restarts {sec.restarts}" if "pgd" in
                                                          sec.attacks else ""))
        out.append(AdvPanel(m.name, summary, list(sec.attacks), rows, list(sec.warnings), examples,
                            sec.black_box))
    return out
