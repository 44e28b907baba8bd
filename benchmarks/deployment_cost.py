"""What the deployment records (selective prediction, conformal sets, BBSD shift detection) add to
the default eval's wall time: the same `robustmnist eval MODEL` (default suite, default budget)
run with the tree before them (--base, a checkout of the parent commit) and with this tree,
alternately, on a warm set cache; plus the run's own "deployment" stage (timings in results.json).

    python benchmarks/deployment_cost.py MODEL.pt --base /path/to/old/checkout [--reps 1] [--n N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run(tree: Path, model: str, n: int | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "robustmnist", "eval", model, "-o", out, "-q", "--format", "json"]
        if n:
            cmd += ["--n", str(n)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=tree)
        wall = time.perf_counter() - t
        r = json.loads((Path(out) / "results.json").read_text())
    return {"wall_s": round(wall, 2), "total_s": r["timings"]["total"], "deployment_s": r["timings"].get("deployment"),
            "timings": r["timings"],
            "n": r["suite"]["n"], "sets": len(r["shifts"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--base", required=True)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--out", default=str(HERE / "benchmarks" / "deployment_cost.json"))
    a = ap.parse_args()
    run(HERE, a.model, a.n)  # warm the set cache (and the page cache) for both
    rows = {"before": [], "after": []}
    for _ in range(a.reps):
        rows["before"].append(run(Path(a.base), a.model, a.n))
        rows["after"].append(run(HERE, a.model, a.n))
    before = min(r["total_s"] for r in rows["before"])
    after = min(r["total_s"] for r in rows["after"])
    dep = min(r["deployment_s"] for r in rows["after"])
    report = {"what": "default eval wall time before/after the deployment records", "model": a.model,
              "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
              "runs": rows, "total_before_s": before, "total_after_s": after,
              "overhead_total": round(after / before - 1, 4), "deployment_stage_s": dep,
              "deployment_share_of_after": round(dep / after, 4),
              "note": "shared 2-core machine: A/B wall times are noisy; the deployment stage is the direct cost"}
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("total_before_s", "total_after_s", "overhead_total",
                                             "deployment_stage_s", "deployment_share_of_after")}))


if __name__ == "__main__":
    main()
