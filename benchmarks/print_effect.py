"""Printed-digit accuracy per shift and level for a few models (issue 15), before and after.

    python benchmarks/print_effect.py --label after --model lenet5=M1.pt --model mlp=M2.pt \
        [--n 2000] [--split eval|train] [--out benchmarks/print_effect.json]

Scores every generative shift of the fonts family that this checkout registers (run it from
an older checkout for the "before" numbers: it only needs ``make_set`` and the suite ladders)
and merges the numbers into the JSON under ``runs[label]``, so one file holds before and after.
``--split train`` renders the fonts' *training* faces instead of the evaluation faces: with a
model trained with ``--augment fonts``, the gap between the two splits is what seeing the faces
in training is worth. Timings are on a shared machine; the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from robustmnist.data.datasets import to_float
from robustmnist.fileio import atomic_write_json, sha256_file
from robustmnist.models.checkpoint import model_from_checkpoint
from robustmnist.shifts.registry import all_shifts
from robustmnist.shifts.sets import make_set
from robustmnist.shifts.suite import load_suite

HERE = Path(__file__).resolve().parent


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    out = [model(to_float(images[i : i + 2048])).argmax(dim=1) for i in range(0, len(images), 2048)]
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=checkpoint.pt")
    ap.add_argument("--label", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="eval", help="font faces: eval (default) or train")
    ap.add_argument("--shifts", default="", help="comma list (default: the fonts family)")
    ap.add_argument("--out", default=str(HERE / "print_effect.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    models = {}
    for spec in args.model:
        name, path = spec.split("=", 1)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        models[name] = (model_from_checkpoint(ckpt).eval(), path)
    suite = load_suite("default")
    shifts = all_shifts()
    names = [s for s in args.shifts.split(",") if s] or [
        n for n, s in shifts.items() if s.family == "fonts" and s.kind == "generative"]
    params_of = dict(suite.shift_params)
    run: dict = {"n": args.n, "seed": args.seed, "split": args.split, "shifts": {},
                 "models": {k: {"checkpoint": Path(p).name, "sha256": sha256_file(p)}
                            for k, (_, p) in models.items()}}
    t0 = time.perf_counter()
    for name in names:
        shift = shifts[name]
        takes_split = "split" in inspect.signature(shift.fn).parameters
        per_level = {m: [] for m in models}
        for sev, params in enumerate(params_of[name], start=1):
            p = dict(params)
            if takes_split and args.split != "eval":
                p["split"] = args.split
            images, labels = make_set(shift, sev, p, None, None, args.n, args.seed)
            for m, (model, _) in models.items():
                per_level[m].append(round(float((predict(model, images) == labels).mean()), 4))
        run["shifts"][name] = {"version": shift.version, "accuracy": per_level}
        print(name, {m: v for m, v in per_level.items()}, flush=True)
    # family mean per level: the number the issue compares (fonts family "about 95%" for a CNN)
    run["family_mean_per_level"] = {
        m: [round(float(np.mean([v["accuracy"][m][lv] for v in run["shifts"].values()])), 4)
            for lv in range(5)] for m in models}
    run["seconds"] = round(time.perf_counter() - t0, 1)
    run["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    run["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                      "cpu_threads": 1}
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {
        "what": "accuracy per level of the fonts family shifts; runs[label][shifts][shift]"
                "[accuracy][model] is a list over severities 1..5", "runs": {}}
    doc["runs"][args.label] = run
    atomic_write_json(out, doc)


if __name__ == "__main__":
    main()
