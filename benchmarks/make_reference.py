"""Pin the mCE reference: compact a results.json of the zoo's lenet5 on the default suite
(10,000 images per set, seed 0) into robustmnist/reference/lenet5-default.json, with the
per-image correctness in lenet5-default.npz beside it.

    robustmnist eval benchmarks/reference/lenet5.pt --suite default --n 10000 --format json \\
        --out out/reference --no-cache
    python benchmarks/make_reference.py out/reference/results.json

The checkpoint is committed (benchmarks/reference/lenet5.pt, trained by
``robustmnist zoo --only lenet5``): training is not bit-identical across CPUs, so the
reference is re-derived from these weights, not retrained. Re-pin whenever a shift's bytes
change (a version bump): tests/test_bench.py checks the pins against sets generated today.

Kept per set: error, version, parameters, sha256, one short digest per 500-image chunk (so a
run at any n is matched with the reference on its common prefix) and one bit per image
(right or wrong), so the reference's error is known on the first n images for every n.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "robustmnist" / "reference" / "lenet5-default.json"
REFERENCE_VERSION = 2


def _training_config(d: dict) -> dict:
    return d["model"].get("metadata", {}).get("training", {}).get("config", {})


def main(src: str) -> None:
    sys.path.insert(0, str(ROOT))
    from robustmnist.fileio import atomic_save_npz, atomic_write_json, sha256_file

    path = Path(src)
    d = json.loads(path.read_text())
    with np.load(path.parent / d["predictions"]["file"], allow_pickle=False) as z:
        preds = {k.replace("__at__", "@").replace("__labels", ":labels"): z[k] for k in z.files}
    bits = {"clean": np.packbits(preds["clean"] == preds["labels"])}
    for r in d["shifts"]:
        sid = f"{r['name']}@{r['severity']}"
        labels = preds.get(f"{sid}:labels", preds["labels"])
        correct = preds[sid] == labels
        assert abs(1 - correct.mean() - r["error"]) < 1e-12, sid
        bits[sid.replace("@", "__at__")] = np.packbits(correct)
    npz = OUT.with_suffix(".npz")
    atomic_save_npz(npz, **bits)
    compact = {
        "reference_version": REFERENCE_VERSION,
        "schema_version": d["schema_version"],
        "description": "robustmnist's mCE reference (ImageNet-C uses AlexNet; MNIST has none): the zoo's "
                       "lenet5, seed 0, on the default suite, 10,000 images per set, set seed 0",
        "model": {k: d["model"][k] for k in ("name", "sha256", "arch", "format", "preprocess")}
        | {"path": "lenet5.pt", "training": _training_config(d)},
        "environment": {k: d["environment"].get(k) for k in ("robustmnist", "torch", "device", "device_name")},
        "suite": {k: d["suite"].get(k) for k in ("name", "levels", "severities", "n")},
        "seed": d["seed"],
        "nest_chunk": 500,
        "correct": {"file": npz.name, "sha256": sha256_file(npz),
                    "format": "numpy packbits of (prediction == label) per image, keys clean and SHIFT__at__SEV"},
        "clean": {"n": d["clean"]["n"], "accuracy": d["clean"]["accuracy"], "error": d["clean"]["error"]},
        "shifts": [{"name": r["name"], "severity": r["severity"], "version": r["version"], "params": r["params"],
                    "n": r["n"], "accuracy": r["accuracy"], "error": r["error"], "sha256": r["sha256"],
                    "chunks": r["chunks"]}
                   | ({"edited": r["edited"]} if r.get("edited") else {})  # euro: the edited digits
                   for r in d["shifts"]],
    }
    atomic_write_json(OUT, compact)
    print(f"wrote {OUT} ({len(compact['shifts'])} records, clean accuracy {compact['clean']['accuracy']:.4f}) "
          f"and {npz.name} ({npz.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(sys.argv[1])
