"""report.md: the summary and the top tables, short enough for a CI job summary or a PR comment."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import run_info
from .format import num, pct, pp
from .sections.real import SHOWN_SHIFTS
from .sections.summary import COMPARE_COLUMNS, compare_rows, mce_notes
from .stats import mean_known, shift_drops
from .view import Layout, Model

TOP_SHIFTS = 10


def _cell(text: object) -> str:
    # Pipes and newlines would break a Markdown table; angle brackets would become HTML on GitHub.
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"] + \
        ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def render_markdown(models: Sequence[Model], layout: Layout) -> str:
    lead = models[0]
    lines = [f"## robustmnist report: {_cell(' vs '.join(m.name for m in models))}", ""]
    r = lead.result
    suite = (r.suite or {}).get("name", "?")
    lines.append(f"Suite `{_cell(suite)}`, seed {r.seed}, {len(layout.shifts)} shifts × "
                 f"{len(layout.severities)} severities, {len(r.ood)} OOD sets. "
                 "Accuracy in %, intervals are 95% Wilson.")
    lines.append("")
    for m in models:  # eval's convention guard: said before any number
        if m.result.summary.get("convention_detected"):
            lines.append(f"> **{_cell(m.name)}:** {_cell(m.result.summary['convention_detected'])}")
        lines += [f"> **Warning ({_cell(m.name)}):** {_cell(w)}" for w in m.result.summary.get("warnings", [])]
    if any(m.result.summary.get("warnings") or m.result.summary.get("convention_detected") for m in models):
        lines.append("")
    for m in models:
        note = run_info.partial_note(m.result)
        if note:
            lines += [f"**{_cell(note)}**", ""]
    if r.execution:
        lines += [f"Images per set: {_cell(run_info.images_per_set(r))}; forward path: "
                  f"{_cell(run_info.forward_path(r))}.", ""]
    rows = []
    for row in compare_rows(models, layout):
        rows.append([row.model] + [c.text for c in row.cells])
    lines += _table(["model"] + COMPARE_COLUMNS, rows, "lrrlrr")
    lines.append("")
    lines += [x for note in mce_notes(models) for x in (_cell(note), "")]
    for m in models:
        seen = (m.result.summary.get("seen_in_training") or {}).get("families")
        if seen:
            lines.append(f"**Seen in training** by {_cell(m.name)}: {_cell(', '.join(seen))}. "
                         "Mean shifted accuracy, worst shift and mCE are over the other families.")
            lines.append("")
    lines += _real_digits(models)

    if layout.shifts:
        sevs = layout.severities
        if len(models) == 1:
            lines.append(f"**Where it breaks**: the {TOP_SHIFTS} largest drops (mean over "
                         "severities)")
            lines.append("")
            top = shift_drops(lead, layout)[:TOP_SHIFTS]
            body = [[s, fam] + [num(lead.acc(s, sv)) for sv in sevs] + [pp(-d)]
                    for s, fam, _, d, _, _ in top]
            lines += _table(["shift", "family"] + [f"s{sv}" for sv in sevs] + ["vs clean (pp)"], body,
                            "ll" + "r" * (len(sevs) + 1))
        else:
            lines.append(f"**Where they break**: the {TOP_SHIFTS} shifts with the lowest "
                         "accuracy (mean over severities and models)")
            lines.append("")
            scored = []
            for fam, names in layout.families:
                for s in names:
                    vals = [m.shift_mean(s, sevs) for m in models]
                    known = [v for v in vals if v is not None]
                    if known:
                        scored.append((float(np.mean(known)), s, fam, vals))
            scored.sort(key=lambda t: (t[0], t[1]))
            body = [[s, fam] + [num(v) for v in vals] for _, s, fam, vals in
                    scored[:TOP_SHIFTS]]
            lines += _table(["shift", "family"] + [m.name for m in models], body,
                            "ll" + "r" * len(models))
        lines.append("")
        lines.append("**Per family** (mean accuracy over shifts and severities)")
        lines.append("")
        body = []
        for fam, names in layout.families:
            body.append([fam] + [num(mean_known([m.shift_mean(s, sevs) for s in names]))
                                 for m in models])
        lines += _table(["family"] + [m.name for m in models], body)
        lines.append("")

    ood = [(m, o) for m in models for o in m.result.ood]
    if ood:
        lines.append("**Out-of-distribution** (AUROC, FPR at 95% TPR)")
        lines.append("")
        body = []
        for m, o in ood:
            sc = o.scores
            body.append(([m.name] if len(models) > 1 else []) + [o.name] + [
                _auroc_fpr(sc.get(k)) for k in ("msp", "max_logit", "energy")])
        header = (["model"] if len(models) > 1 else []) + \
            ["OOD set", "max softmax", "max logit", "energy"]
        lines += _table(header, body, "l" * (len(header) - 3) + "rrr")
        lines.append("")
    adv = [m for m in models if m.result.adversarial and m.result.adversarial.records]
    for m in adv:
        sec = m.result.adversarial
        lines.append(f"**Under attack**{' (' + m.name + ')' if len(models) > 1 else ''}: worst case over "
                     f"{', '.join(sec.attacks)}, {sec.norm}, {sec.n:,} of {sec.n_available:,} test images")
        lines.append("")
        body = [[f"{r.eps:g}", pct(r.robust_accuracy)] + [pct(r.per_attack.get(a, {})
                .get("robust_accuracy")) for a in sec.attacks] for r in sec.records]
        lines += _table(["eps", "robust accuracy"] + [f"{a} alone" for a in sec.attacks], body)
        lines += [""] + [f"- masking check: {w}" for w in sec.warnings] + ([""] if sec.warnings else [])
    lines.append("Full report with per-class, confusion, calibration and galleries: report.html.")
    return "\n".join(lines) + "\n"


def _auroc_fpr(s: dict | None) -> str:
    if not s:
        return "—"
    if s.get("available") is False:
        return "not available"
    auroc, fpr = s.get("auroc"), s.get("fpr95")
    return f"{'—' if auroc is None else f'{auroc:.3f}'} / {pct(fpr)}"


def _real_digits(models: Sequence[Model]) -> list[str]:
    """The real digits section's lines (none when no model has real sets)."""
    rows = [(m, r) for m in models for r in m.result.real]
    if not rows:
        return []
    lines = ["## Real digits", "", "| model | real set | n | accuracy | vs clean (pp) | looks most like |",
             "|---|---|---:|---:|---:|---|"]
    for m, r in rows:
        tops = ", ".join(f"{c.get('name')} s{c.get('severity')} ({pct(c.get('accuracy'))})"
                         for c in (r.closest_shifts or [])[:SHOWN_SHIFTS]) or "—"
        cells = [m.name, r.name, f"{r.n:,}", pct(r.accuracy), pp(r.accuracy - m.clean.accuracy), tops]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return lines + [""]
