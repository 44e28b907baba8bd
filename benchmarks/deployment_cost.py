"""What the deployment records (selective prediction, conformal sets, BBSD shift detection) add to
the default eval's wall time (issue 27: at most 10%). One tree, two variants of the same
`robustmnist eval MODEL` (default suite, default budget, warm set cache), run alternately:

- ``none``: calibration and every record replaced by no-ops (what an eval cost before the records);
- ``inline``: as shipped, the records computed in the scoring loop, set after set.

(A thread computing them beside the scoring was tried and removed: on 2 cores it competed with
torch's threads, +12.0% against +11.7% inline once detection was made cheaper.)

    python benchmarks/deployment_cost.py MODEL.pt [--reps 3] [--n N]

Each run's total is results.json's timings["total"] (the wall clock of the run itself, without
Python's start-up); the "deployment" timing is the loop's own seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
VARIANTS = ("none", "inline")


def _patch(variant: str) -> None:
    """Runs in the child: make the variant before the CLI starts."""
    from robustmnist.metrics import deployment

    if variant == "none":  # no calibration either: no threshold, q-hats, reference, scipy import
        deployment.calibrate = lambda *a, **k: None
        deployment.clean_metrics = lambda *a, **k: {}
        deployment.deployment_metrics = lambda *a, **k: {}


def run(variant: str, model: str, n: int | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = ["eval", model, "-o", out, "-q", "--format", "json", "--overwrite"] + (["--n", str(n)] if n else [])
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from benchmarks.deployment_cost import _patch; "
                f"_patch({variant!r}); sys.argv = ['robustmnist', *{args!r}]; from robustmnist.cli import main; main()")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)})
        wall = time.perf_counter() - t
        r = json.loads((Path(out) / "results.json").read_text())
    return {"wall_s": round(wall, 2), "total_s": r["timings"]["total"], "deployment_s": r["timings"].get("deployment"),
            "timings": r["timings"], "n": r["suite"]["n"], "sets": len(r["shifts"]),
            "has_records": r["shifts"][0].get("detection") is not None}


def summarise(rows: dict[str, list], model: str, reps: int, n: int | None) -> dict:
    """Medians per variant, and the overhead of each rep's inline run over the none run beside it
    (the pairs share the machine's load of the moment, so their ratios scatter less)."""
    med = {v: statistics.median(r["total_s"] for r in rows[v]) for v in VARIANTS}
    paired = [round(i["total_s"] / o["total_s"] - 1, 4) for o, i in zip(rows["none"], rows["inline"], strict=True)]
    return {"what": "default eval total (results.json timings.total) with the deployment records off (none: "
                    "no calibration, no records) and on (inline, as shipped), run alternately",
            "model": model, "reps": reps, "n": n,
            "machine": {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]},
            "median_total_s": med,
            "overhead_vs_none": {"inline": round(med["inline"] / med["none"] - 1, 4)},
            "paired_overhead": paired, "paired_overhead_median": statistics.median(paired),
            "paired_overhead_max": max(paired),
            "deployment_stage_s": statistics.median(r["deployment_s"] for r in rows["inline"]),
            "runs": rows,
            "note": "shared 2-core machine: ratios within this run, not absolute times across runs"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--out", default=str(HERE / "benchmarks" / "deployment_cost.json"))
    a = ap.parse_args()
    run("inline", a.model, a.n)  # warm the set cache (and the page cache) for all
    rows: dict[str, list] = {v: [] for v in VARIANTS}
    for _ in range(a.reps):
        for v in VARIANTS:
            rows[v].append(run(v, a.model, a.n))
            print(v, rows[v][-1]["total_s"], rows[v][-1]["deployment_s"], flush=True)
    report = summarise(rows, Path(a.model).name, a.reps, a.n)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("median_total_s", "overhead_vs_none", "paired_overhead",
                                             "deployment_stage_s")}))


if __name__ == "__main__":
    main()
