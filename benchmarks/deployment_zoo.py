"""The deployment numbers issue 27 asks to quote, for models of one's own: which shifts fail
silently, the accepted-error rates at fonts and the euro shifts levels 1-5, the conformal coverage
there, and the detection power at batch 100 per family (mean over its shifts and levels).

    python benchmarks/deployment_zoo.py NAME=MODEL.pt [...] [--n 1000] [--out benchmarks/deployment_zoo.json]

Each model: ``robustmnist.evaluate(MODEL, n=N, seed=0)`` on the default suite.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUOTED = ("fonts", "euro_one", "euro_seven", "euro", "euro_fonts")


def quote(result) -> dict:
    from robustmnist.metrics.deployment import power_at

    dep = result.summary["deployment"]
    by = {(s.name, s.severity): s for s in result.shifts}
    families: dict[str, list[float]] = defaultdict(list)
    for s in result.shifts:
        p = power_at(s.detection)
        if p is not None:
            families[s.family].append(p)
    return {
        "clean_accuracy": result.clean.accuracy,
        "threshold": dep["threshold"],
        "clean_conformal_coverage": dep["clean_conformal_coverage"],
        "false_alarm": dep["false_alarm"],
        "silent_failures": [f"{f['name']} s{f['severity']}" for f in dep["silent_failures"]],
        "accepted_error_rate": {n: [round(by[n, v].selective["accepted_error_rate"], 3) for v in range(1, 6)]
                                for n in QUOTED if (n, 1) in by},
        "conformal_coverage": {n: [round(by[n, v].conformal["coverage"], 3) for v in range(1, 6)]
                               for n in QUOTED if (n, 1) in by},
        "power_100_by_family": {f: round(float(np.mean(v)), 3) for f, v in sorted(families.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="NAME=checkpoint.pt")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE / "deployment_zoo.json"))
    a = ap.parse_args()
    import robustmnist

    models = {}
    for spec in a.models:
        name, path = spec.split("=", 1)
        models[name] = quote(robustmnist.evaluate(path, n=a.n, seed=0))
        print(name, json.dumps({k: models[name][k] for k in ("clean_accuracy", "silent_failures",
                                                              "power_100_by_family")}), flush=True)
    out = {"what": f"deployment records of the given models, default suite, n={a.n}, seed 0",
           "command": "python benchmarks/deployment_zoo.py " + " ".join(a.models) + f" --n {a.n}",
           "models": models}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
