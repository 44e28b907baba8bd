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
from . import run_info
from .format import pct, pp
from .markdown import render_markdown
from .sections import SECTIONS
from .tidy import render_csv
from .view import Layout, Model, make_layout, make_models

FORMATS = ("html", "md", "csv")
FILENAMES = {"html": "report.html", "md": "report.md", "csv": "results.csv"}


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
    models = make_models(results, names)
    layout = make_layout(models)
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
    env.filters["pct"] = pct
    env.filters["pp"] = pp
    return env


def render_html(models: Sequence[Model], layout: Layout) -> str:
    compare = len(models) > 1
    ctx = {
        "sections": [(s, s.build(models, layout)) for s in SECTIONS],
        "compare": compare,
        "models": models,
        "title": " vs ".join(m.name for m in models),
        "subtitle": _subtitle(models),
        "has_shifts": bool(layout.shifts),
        "partial_notes": [f"{m.name}: {note}" if compare else note for m in models
                          if (note := run_info.partial_note(m.result))],
    }
    return _env().get_template("report.html.j2").render(**ctx)


def _subtitle(models: Sequence[Model]) -> str:
    r = models[0].result
    suite = (r.suite or {}).get("name")
    parts = []
    if suite:
        parts.append(f"suite {suite}")
    parts.append(f"seed {r.seed}")
    if (r.suite or {}).get("n") and r.execution:
        # why n is what it is (budget.Plan); results made without a plan (run.collect called
        # directly, or before plans were recorded) say the n alone rather than "(?)"
        reason = r.execution.get("n_reason")
        parts.append(f"{r.suite['n']:,} images per set" + (f" ({reason})" if reason else ""))
    if r.environment.robustmnist:
        parts.append(f"robustmnist {r.environment.robustmnist}")
    if r.created and len(models) == 1:
        parts.append(f"evaluated {r.created}")
    return " · ".join(parts)

