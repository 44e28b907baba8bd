"""Report rendering at the size of the full default suite: 42 shifts × 5 severities + 2 OOD sets.

The bar (issue 6): one model's report renders in under 15 s and report.html weighs under
10 MB. Builds a synthetic full-size results.json (tests/report_factory.py, galleries included),
reloads it as `robustmnist report` would, renders html+md+csv for one model and for a
two-model comparison, and writes the numbers to benchmarks/report.json.

Run: .venv/bin/python benchmarks/report_bench.py [--repeats 3]
Wall time depends on machine load, so CPU time and the load average are recorded too.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import matplotlib  # noqa: E402
from report_factory import make_result  # noqa: E402

from robustmnist.fileio import atomic_write_json  # noqa: E402
from robustmnist.results import Result  # noqa: E402

BAR_SECONDS = 15.0
BAR_MB = 10.0


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "report.json")
    args = ap.parse_args()

    import_wall, import_cpu = _timed(lambda: __import__("robustmnist.report"))
    from robustmnist.report import render_reports

    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        tmp = Path(tmp)
        a, b = tmp / "a.json", tmp / "b.json"
        make_result("lenet5").save(a)
        make_result("cnn-aug", seed=1, strength=0.6).save(b)
        ra, rb = Result.load(a), Result.load(b)
        cases = {"single": [ra], "compare_2_models": [ra, rb]}
        out: dict = {}
        for case, results in cases.items():
            walls, cpus = [], []
            written: dict[str, Path] = {}
            for i in range(args.repeats):
                target = tmp / f"{case}-{i}"
                w, c = _timed(lambda results=results, target=target, written=written:
                              written.update(render_reports(results, target)))
                walls.append(w)
                cpus.append(c)
            html = written["html"].read_bytes()
            identical = all((tmp / f"{case}-{i}" / "report.html").read_bytes() == html
                            for i in range(args.repeats))
            out[case] = {
                "render_wall_s": {"min": round(min(walls), 2),
                                  "median": round(statistics.median(walls), 2)},
                "render_cpu_s": {"min": round(min(cpus), 2),
                                 "median": round(statistics.median(cpus), 2)},
                "html_mb": round(len(html) / 1e6, 3),
                "md_lines": len(written["md"].read_text(encoding="utf-8").splitlines()),
                "csv_rows": len(written["csv"].read_text(encoding="utf-8").splitlines()) - 1,
                "html_identical_across_renders": identical,
            }
        n_shifts = len({s.name for s in ra.shifts})
        results_mb = round(a.stat().st_size / 1e6, 3)

    single = out["single"]
    report = {
        "what": "render_reports(html, md, csv) from a reloaded full-size synthetic results.json",
        "suite": {"shifts": n_shifts, "severities": 5, "ood_sets": len(ra.ood),
                  "results_json_mb": results_mb},
        "bar": {"render_s": BAR_SECONDS, "html_mb": BAR_MB},
        "passes_bar": single["render_wall_s"]["median"] < BAR_SECONDS and
        single["html_mb"] < BAR_MB,
        "import_s": {"wall": round(import_wall, 2), "cpu": round(import_cpu, 2)},
        **out,
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "matplotlib": matplotlib.__version__,
                    "platform": platform.platform(terse=True)},
        "repeats": args.repeats,
    }
    atomic_write_json(args.out, report)
    print(f"single: {single['render_wall_s']['median']} s wall "
          f"({single['render_cpu_s']['median']} s CPU), {single['html_mb']} MB html; "
          f"compare: {out['compare_2_models']['render_wall_s']['median']} s, "
          f"{out['compare_2_models']['html_mb']} MB; load {report['machine']['load_average_1m']}"
          f" -> {args.out}")


if __name__ == "__main__":
    main()
