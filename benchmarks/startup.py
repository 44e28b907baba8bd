"""Start-up time of the CLI: `robustmnist --help`, `gate`, `shifts list`, `compare` and
`report --format md`, each in a fresh
interpreter, and whether torch got imported. Writes benchmarks/startup.json.

    python benchmarks/startup.py [--baseline PATH_OF_ANOTHER_CHECKOUT]

With ``--baseline`` the same commands also run with that checkout first on the path (e.g. the
main branch), so the JSON holds before and after on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".json")
REPEATS = 3

# A tiny results.json and policy so `gate` runs end to end without any model or data.
RESULT = {
    "schema_version": 1,
    "model": {"path": "m.pt", "sha256": "0" * 64, "format": "checkpoint", "preprocess": "range=0-1",
              "name": "m"},
    "environment": {"python": "3", "torch": "-", "device": "cpu"},
    "clean": {"n": 100, "accuracy": 0.99, "accuracy_ci": [0.95, 1.0], "error": 0.01, "ece": 0.01,
              "per_class_accuracy": [], "per_class_n": [], "confusion": [], "nll": 0.05, "brier": 0.02,
              "mean_confidence": 0.99},
    "shifts": [], "ood": [], "summary": {}, "predictions": {"file": "predictions.npz"},
}
POLICY = "min_clean_accuracy = 0.98\n"

PROBE = ("import runpy, sys; sys.argv = ['robustmnist'] + sys.argv[1:]; rc = 0\n"
         "try:\n    runpy.run_module('robustmnist', run_name='__main__')\n"
         "except SystemExit as e:\n    rc = e.code\n"
         "print(rc, 'TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)\n")


def run_once(args: list[str], path: Path, cwd: str) -> tuple[float, str, bool]:
    env = dict(os.environ, PYTHONPATH=str(path))
    t = time.perf_counter()
    # cwd outside both checkouts: `python -c` puts the cwd first on sys.path
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t
    last = (proc.stderr.strip().splitlines() or ["? ?"])[-1].split()
    return wall, last[0], last[-1] == "TORCH"


def time_commands(commands: dict[str, list[str]], checkouts: dict[str, Path], cwd: str) -> dict:
    """Per checkout and command: median and min wall time, whether torch loaded, exit codes.
    The checkouts take turns on every repeat, so a change in the machine's load hits both alike."""
    runs: dict = {label: {name: [] for name in commands} for label in checkouts}
    for _ in range(REPEATS):
        for name, args in commands.items():
            for label, path in checkouts.items():
                runs[label][name].append(run_once(args, path, cwd))
    return {label: {name: {"median_s": round(statistics.median(w for w, _, _ in rs), 3),
                           "min_s": round(min(w for w, _, _ in rs), 3), "torch_imported": rs[-1][2],
                           "exit_codes": sorted({c for _, c, _ in rs})}
                    for name, rs in per.items()}
            for label, per in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="another checkout to time the same way")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res, pol = Path(tmp) / "results.json", Path(tmp) / "gate.toml"
        res.write_text(json.dumps(RESULT))
        labels = np.arange(100) % 10  # compare reads the per-image predictions
        np.savez(Path(tmp) / "predictions.npz", clean=labels, labels=labels)
        pol.write_text(POLICY)
        commands = {"--help": ["--help"], "gate": ["gate", str(res), "--policy", str(pol)],
                    "shifts list": ["shifts", "list"], "compare": ["compare", str(res), str(res)],
                    "report --format md": ["report", str(res), "--format", "md", "--out", str(Path(tmp) / "rep")]}
        report = {
            "what": "wall seconds from interpreter start to exit, median of 3 fresh processes",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "load_average_before": os.getloadavg()},
            "note": "shared 2-core box with other jobs: wall times are inflated; compare columns "
                    "measured in the same run (the checkouts take turns on every repeat)",
        }
        checkouts = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
        timed = time_commands(commands, checkouts, tmp)
        for label, path in checkouts.items():
            commit = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
            report[label] = {"checkout": path.name, "commit": commit, "commands": timed[label]}
        report["machine"]["load_average_after"] = os.getloadavg()
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
