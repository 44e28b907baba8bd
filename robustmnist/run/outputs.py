"""Write one model's run into a folder: results.json, predictions.npz and the reports.

Shared by eval, bench, demo and ``Result.save``. ``check_out`` refuses an output folder the
run could not write, or one holding another model's results, before the model is loaded (a run
must not score every set and then fail, or silently replace what an earlier run wrote).
``OutputGuard`` makes a failed run leave nothing behind that it made (files it created, a folder
it created and left empty).
"""

from __future__ import annotations

import json
import os
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


def check_writable(out: Path) -> None:
    """UserError unless ``out`` is a folder this process can write into, or can be created as one."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"`out={out}` is a file, not a folder: give a folder path (it is created if missing)")
    probe = out
    while not probe.exists():  # the nearest existing folder above it is where mkdir writes
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"`out={out}` cannot be created: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == out else f" ({probe} is not writable)"
        raise UserError(f"`out={out}` is not writable{where}: give a folder you can write to")


def previous_model(out: Path) -> dict | None:
    """The model block of the results.json already in ``out`` ({} where it is unreadable), or None."""
    path = Path(out) / "results.json"
    if not path.is_file():
        return None
    try:
        model = json.loads(path.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        return {}
    return model if isinstance(model, dict) else {}


def check_out(out: Path | None, *, model_sha256: str | None = None, overwrite: bool = False,
              resume: bool = False) -> None:
    """Before the model loads: ``out`` must be writable, and not hold another model's results
    unless ``overwrite`` (``resume`` finishes what is there; the same model, by ``model_sha256``,
    may replace its own results)."""
    if out is None:
        return
    check_writable(out)
    if overwrite or resume:
        return
    check_not_another(out, model_sha256)


def check_not_another(out: Path, model_sha256: str | None) -> None:
    prior = previous_model(out)
    if prior is None or (model_sha256 and prior.get("sha256") == model_sha256):
        return
    who = prior.get("name") or prior.get("path") or "another model"
    raise UserError(f"`out={out}` holds the results of {who}: give each model its own `out=`, or pass "
                    "`overwrite=True` to replace them")


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
