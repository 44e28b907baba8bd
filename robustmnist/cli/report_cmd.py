"""`robustmnist report`: rebuild reports from results.json files (one model, or a comparison)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from .common import console, parse_name_list


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        results: list[Path] = typer.Argument(
            ..., metavar="RESULTS.json [MORE.json ...]",
            help="results.json from robustmnist eval; several give a side-by-side comparison"),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="folder for the reports [default: the first results "
                                      "file's folder]"),
        format: str = typer.Option(
            "html,md,csv", "--format", "-f", help="comma list of html, md, csv"),
        name: list[str] | None = typer.Option(
            None, "--name", help="display name of each model, in the order of the results "
                                 "files (repeat the option)"),
    ) -> None:
        """Write report.html (self-contained), report.md and results.csv from results files."""
        from ..report import render_reports  # matplotlib is only imported when reporting
        from ..results import Result

        formats = parse_name_list(format) or []
        if not formats:
            raise UserError("--format is empty; give a comma list of html, md, csv")
        loaded = [Result.load(p) for p in results]
        # a results folder (eval's --out) stands for its results.json: the reports go beside it
        target = out if out is not None else (results[0] if results[0].is_dir() else results[0].parent)
        written = render_reports(loaded, target, set(formats), list(name) if name else None)
        for path in written.values():
            console.print(f"wrote {path} ({_size(path.stat().st_size)})")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
