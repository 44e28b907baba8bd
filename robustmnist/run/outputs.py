"""Write one model's run into a folder: results.json, predictions.npz and the reports.

Shared by eval, bench, demo and ``Result.save``. ``OutputGuard`` makes a failed run leave
nothing behind that it made (files it created, a folder it created and left empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_save_npz, sha256_file

FORMATS = ("json", "html", "md", "csv")


def parse_formats(formats: str | Iterable[str]) -> set[str]:
    """'json,html' or a list -> the formats to write; results.json is always one of them."""
    items = formats.split(",") if isinstance(formats, str) else formats
    fmts = {f.strip().lower() for f in items if f.strip()}
    bad = fmts - set(FORMATS)
    if bad:
        raise UserError(f"unknown format(s) {', '.join(sorted(bad))}; use {', '.join(FORMATS)}")
    return fmts | {"json"}  # results.json is always written: every report is rebuilt from it


def save_run(run, out: Path, formats=("json",)) -> dict[str, Path]:
    """Write results.json + predictions.npz (+ reports) for one model's run into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / "predictions.npz"
    # npz keys must be plain names: "rotate@3" -> "rotate__at__3" (metrics.paired.load_predictions undoes it)
    atomic_save_npz(pred_path, **{k.replace("@", "__at__").replace(":", "__"): v
                                  for k, v in run.predictions.items()})
    run.result.predictions = {"file": pred_path.name, "sha256": sha256_file(pred_path),
                              "key_format": "<shift>__at__<severity>, clean, labels"}
    run.result.save(out / "results.json")
    written = {"json": out / "results.json"}
    report_fmts = set(formats) - {"json"}
    if report_fmts:
        from ..report.render import render_reports

        written.update(render_reports([run.result], out, formats=report_fmts))
    return written


class OutputGuard:
    """``with OutputGuard(out):`` -- on an exception other than Ctrl-C (whose partial results are
    kept for resume), remove the run files this run created and the folder if it made it."""

    NAMES = ("results.json", "predictions.npz")

    def __init__(self, out: Path | None):
        self.out = Path(out) if out is not None else None
        self.existed = self.out is not None and self.out.exists()
        self.created = [self.out / n for n in self.NAMES if not (self.out / n).exists()] if self.out else []

    def __enter__(self) -> OutputGuard:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None or self.out is None or issubclass(kind, KeyboardInterrupt):
            return
        for p in self.created:
            p.unlink(missing_ok=True)
        if not self.existed and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()
