"""Render Results into report.html (one self-contained file), report.md and results.csv.

The HTML fetches nothing: CSS is inline, figures are SVG/PNG data URIs, there is no
JavaScript, and a Content-Security-Policy forbids any request a future template edit might
add. Jinja autoescaping is on, so model names and paths print as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import jinja2

from ..errors import UserError
from ..fileio import atomic_write_text
from ..results import Result
from . import adversarial, run_info, view
from .markdown import render_markdown
from .real_section import real_blocks
from .tidy import render_csv

FORMATS = ("html", "md", "csv")
FILENAMES = {"html": "report.html", "md": "report.md", "csv": "results.csv"}

# Section ids and headings, in page order; the template and the tests use this list.
SECTIONS = (
    ("summary", "Summary"),
    ("real", "Real digits"),
    ("overview", "Robustness overview"),
    ("per-class", "Per-class degradation"),
    ("confusion", "Confusion matrices"),
    ("calibration", "Calibration"),
    ("ood", "Out-of-distribution detection"),
    ("adversarial", "Adversarial robustness"),
    ("galleries", "Galleries"),
    ("reproducibility", "Model and reproducibility"),
)


def render_reports(results: list[Result], out_dir: Path, formats: Iterable[str] = frozenset(FORMATS),
                   names: list[str] | None = None) -> dict[str, Path]:
    """Write the requested formats into ``out_dir``; returns {format: path written}.

    One result gives a single-model report, several a side-by-side comparison. ``names``
    overrides the model names shown (one per result)."""
    formats = set(formats)
    unknown = formats - set(FORMATS)
    if unknown:
        raise UserError(f"unknown report format(s) {', '.join(sorted(unknown))}; "
                        f"choose from {', '.join(FORMATS)}")
    models = view.make_models(results, names)
    layout = view.make_layout(models)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    for fmt in FORMATS:  # fixed order: the HTML is the slow one, the small files come after
        if fmt not in formats:
            continue
        if fmt == "html":
            text = render_html(models, layout)
        elif fmt == "md":
            text = render_markdown(models, layout)
        else:
            text = render_csv(models)
        path = out_dir / FILENAMES[fmt]
        atomic_write_text(path, text)
        written[fmt] = path
    return written


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("robustmnist.report", "templates"),
        autoescape=True,  # every .html.j2 is HTML; names from results.json are untrusted text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["pct"] = view.pct
    env.filters["pp"] = view.pp
    return env


def render_html(models: Sequence[view.Model], layout: view.Layout) -> str:
    compare = len(models) > 1
    lead = models[0]
    ctx = {
        "sections": SECTIONS,
        "compare": compare,
        "models": models,
        "layout": layout,
        "title": " vs ".join(m.name for m in models),
        "subtitle": _subtitle(models),
        "cards": None if compare else view.summary_cards(lead, layout),
        # eval's convention guard: a doubtful input convention is said before any number
        "warnings": [(m.name, w) for m in models for w in m.result.summary.get("warnings", [])],
        "compare_columns": view.COMPARE_COLUMNS,
        "compare_rows": view.compare_rows(models, layout) if compare else [],
        "breaks": view.where_it_breaks(lead, layout) if not compare else [],
        "gaps": view.model_gaps(models, layout) if compare else [],
        "weak_classes": [] if compare else view.class_ranking(lead)[:3],
        "has_shifts": bool(layout.shifts),
        "accuracy_heat": view.accuracy_heat(models, layout) if layout.shifts else None,
        "curves": view.family_curves(models, layout) if layout.shifts else [],
        "class_heat": view.class_heat(models, layout) if layout.shifts else None,
        "class_rankings": [(m.name, view.class_ranking(m)) for m in models],
        "matrices": view.confusion_matrices(models),
        "pairs": view.confused_pairs(models),
        "calibration_figures": view.calibration_figures(models, layout),
        "ece_heat": view.ece_heat(models, layout) if layout.shifts else None,
        "ood_rows": view.ood_rows(models),
        "ood_convention": view.ood_convention(models),
        "ood_panels": view.ood_panels(models),
        "galleries": view.galleries(models, layout) if layout.shifts else [],
        "adv_curves": adversarial.curves(models),
        "adv_panels": adversarial.panels(models),
        "model_rows": view.model_rows(models),
        "partial_notes": [f"{m.name}: {note}" if compare else note for m in models
                          if (note := run_info.partial_note(m.result))],
        "timing_rows": view.timing_rows(models),
        "set_hashes": view.set_hashes(models, layout),
        "conventions": _conventions(models),
        "real_blocks": real_blocks(models),
    }
    return _env().get_template("report.html.j2").render(**ctx)


def _subtitle(models: Sequence[view.Model]) -> str:
    r = models[0].result
    suite = (r.suite or {}).get("name")
    parts = []
    if suite:
        parts.append(f"suite {suite}")
    parts.append(f"seed {r.seed}")
    if (r.suite or {}).get("n") and r.execution:
        parts.append(f"{r.suite['n']:,} images per set ({r.execution.get('n_reason', '?')})")
    if r.environment.robustmnist:
        parts.append(f"robustmnist {r.environment.robustmnist}")
    if r.created and len(models) == 1:
        parts.append(f"evaluated {r.created}")
    return " · ".join(parts)


def _conventions(models: Sequence[view.Model]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for m in models:
        for k, v in (m.result.conventions or {}).items():
            seen.setdefault(str(k), str(v))
    return sorted(seen.items())
