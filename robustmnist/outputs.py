"""Write one model's run into a folder: results.json, predictions.npz and the reports.

Shared by ``robustmnist eval``/``bench``/``demo`` and ``Result.save`` in the Python API.
"""

from __future__ import annotations

from pathlib import Path

from .fileio import atomic_save_npz, sha256_file


def save_run(run, out: Path, formats=("json",)) -> dict[str, Path]:
    """Write results.json + predictions.npz (+ reports) for one model's run into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / "predictions.npz"
    # npz keys must be plain names: "rotate@3" -> "rotate__at__3" (bench.load_predictions undoes it)
    atomic_save_npz(pred_path, **{k.replace("@", "__at__").replace(":", "__"): v
                                  for k, v in run.predictions.items()})
    run.result.predictions = {"file": pred_path.name, "sha256": sha256_file(pred_path),
                              "key_format": "<shift>__at__<severity>, clean, labels"}
    run.result.save(out / "results.json")
    written = {"json": out / "results.json"}
    report_fmts = set(formats) - {"json"}
    if report_fmts:
        from .report.render import render_reports

        written.update(render_reports([run.result], out, formats=report_fmts))
    return written
