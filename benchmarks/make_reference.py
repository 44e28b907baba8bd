"""Pin the mCE reference: compact a results.json of the zoo's lenet5 on the default suite
(10,000 images per set, seed 0) into robustmnist/reference/lenet5-default.json.

    robustmnist zoo --out out/zoo --only lenet5
    robustmnist eval out/zoo/lenet5.pt --suite default --format json --out out/reference
    python benchmarks/make_reference.py out/reference/results.json

Only what CE needs is kept: per (shift, severity) error and the sha256 of the images, so a
result is compared with the reference only on byte-identical sets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "robustmnist" / "reference" / "lenet5-default.json"
REFERENCE_VERSION = 1


def _training_config(d: dict) -> dict:
    return d["model"].get("metadata", {}).get("training", {}).get("config", {})


def main(src: str) -> None:
    d = json.loads(Path(src).read_text())
    compact = {
        "reference_version": REFERENCE_VERSION,
        "schema_version": d["schema_version"],
        "description": "robustmnist's mCE reference (ImageNet-C uses AlexNet; MNIST has none): the zoo's "
                       "lenet5, seed 0, on the default suite, 10,000 images per set, set seed 0",
        "model": {k: d["model"][k] for k in ("name", "sha256", "arch", "format", "preprocess")}
        | {"path": "lenet5.pt", "training": _training_config(d)},
        "environment": {k: d["environment"].get(k) for k in ("robustmnist", "torch", "device")},
        "suite": {k: d["suite"].get(k) for k in ("name", "levels", "severities", "n")},
        "seed": d["seed"],
        "clean": {"n": d["clean"]["n"], "accuracy": d["clean"]["accuracy"], "error": d["clean"]["error"]},
        "shifts": [{"name": r["name"], "severity": r["severity"], "version": r["version"], "n": r["n"],
                    "accuracy": r["accuracy"], "error": r["error"], "sha256": r["sha256"]}
                   | ({"edited": r["edited"]} if r.get("edited") else {})  # euro: the edited digits
                   for r in d["shifts"]],
    }
    OUT.write_text(json.dumps(compact, indent=1) + "\n")
    print(f"wrote {OUT} ({len(compact['shifts'])} records, clean accuracy {compact['clean']['accuracy']:.4f})")


if __name__ == "__main__":
    main(sys.argv[1])
