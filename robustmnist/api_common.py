"""What evaluate and bench share: the notebook Result, the suite as the CLI builds it, and the
default log and warning printers (api.py and api_bench.py both build on it)."""

from __future__ import annotations

import dataclasses
import html
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import results
from .errors import UserError, plain

ALL_FORMATS = ("json", "html", "md", "csv")


class Result(results.Result):
    """``results.Result`` (the results.json schema) plus what a notebook does with it."""

    _per_image: dict[str, np.ndarray]

    @classmethod
    def from_run(cls, run) -> Result:
        r = cls(**{f.name: getattr(run.result, f.name) for f in dataclasses.fields(results.Result)})
        r._per_image = dict(run.predictions)
        return r

    def as_result(self) -> results.Result:
        return results.Result(**{f.name: getattr(self, f.name) for f in dataclasses.fields(results.Result)})

    def to_pandas(self):
        """The tidy table of results.csv: one row per (set, severity, class), as a DataFrame."""
        import pandas as pd

        from .report import view
        from .report.tidy import render_csv

        return pd.read_csv(io.StringIO(render_csv(view.make_models([self]))))

    def save(self, out: str | os.PathLike, formats: Sequence[str] | str = ALL_FORMATS) -> dict[str, Path]:
        """Write results.json, predictions.npz and the reports in ``formats`` into folder ``out``."""
        from .run.collect import RunOutput
        from .run.outputs import save_run

        fmts = {f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats)}
        unknown = fmts - set(ALL_FORMATS)
        if unknown:
            raise UserError(f"unknown format(s) {', '.join(sorted(unknown))}; use {', '.join(ALL_FORMATS)}")
        base = self.as_result()
        written = save_run(RunOutput(base, getattr(self, "_per_image", {})), Path(out), fmts | {"json"})
        self.predictions = base.predictions
        return written

    def report(self, path: str | os.PathLike | None = None) -> str | Path:
        """The HTML report: its text, or written to ``path`` (a file) and the path returned."""
        from .fileio import atomic_write_text
        from .report import view
        from .report.render import render_html

        models = view.make_models([self])
        text = render_html(models, view.make_layout(models))
        if path is None:
            return text
        atomic_write_text(path, text)
        return Path(path)

    def _repr_html_(self) -> str:
        # The report is a whole page with its own CSS and CSP; an iframe keeps both from
        # leaking into (or being broken by) the notebook's page.
        doc = html.escape(self.report(), quote=True)
        return (f'<iframe srcdoc="{doc}" style="width:100%;height:760px;border:1px solid #ddd" '
                f'title="robustmnist report: {html.escape(self.model.name)}"></iframe>')

    def __repr__(self) -> str:
        s = self.summary
        parts = [f"clean {self.clean.accuracy:.2%}"]
        if "mean_shifted_accuracy" in s:
            parts.append(f"shifted mean {s['mean_shifted_accuracy']:.2%}")
            w = s["worst_shift"]
            parts.append(f"worst {w['name']}@{w['severity']} {w['accuracy']:.2%}")
        if "mce" in s:
            parts.append(f"mCE {s['mce']:.1%}")
        return f"<robustmnist.Result {self.model.name}: {', '.join(parts)}>"


def as_list(value: str | int | Sequence | None) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, int):
        return [value]
    return list(value)


def build_suite(suite: Any = None, shift: str | Sequence[str] | None = None,
                severity: int | Sequence[int] | str | None = None):
    """The suite to run, as the CLI builds it: ``suite`` (default 'default') narrowed by shift/severity."""
    from .shifts.registry import FAMILIES, resolve_names
    from .shifts.suite import Suite, load_suite

    the_suite = suite if isinstance(suite, Suite) else load_suite(str(suite) if suite else "default")
    names = None
    if shift:
        names = []
        for item in as_list(shift):  # suite-declared shifts are not in the registry
            in_family = [n for n, sh in the_suite.custom.items() if sh.family == item]
            if item in the_suite.custom:
                picked = [item]
            elif in_family and item not in FAMILIES:
                picked = in_family
            else:
                picked = resolve_names([item]) + in_family
            names += [n for n in picked if n not in names]
    levels = as_list(severity)
    if levels is not None:
        try:
            levels = [int(v) for v in levels]
        except (TypeError, ValueError):
            raise UserError(f"severity must be whole numbers, got {severity!r}") from None
    return the_suite.restrict(names, levels)


def print_log(text: str) -> None:
    print(text, file=sys.stderr)


def print_warning(text: str) -> None:
    print(f"robustmnist: warning: {plain(text)}", file=sys.stderr)
