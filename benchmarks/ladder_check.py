"""Do the print and euro ladders get harder level by level? Scores models on chosen shifts (issue 15).

    python benchmarks/ladder_check.py [--model NAME=ckpt.pt ...] [--shifts a,b] [--n 5000]
        [--suite default|path.toml] [--margin 0.003] [--out result.json]

Default model: the pinned reference checkpoint benchmarks/reference/lenet5.pt; default shifts:
every shift of the fonts and euro families (the ladders retuned for issue 15). For each shift
it prints the accuracy at severities 1..5 and checks that every step falls by at least
``--margin`` (0.3 points: well above the paired sampling noise of the same digits at n=10000)
on the first model; exit status 1 lists the shifts that do not. Run it after re-pinning the
reference: it needs only the suite ladders and ``make_set`` (no cache, no reference JSON).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from robustmnist.data.datasets import load_mnist, to_float
from robustmnist.fileio import atomic_write_json
from robustmnist.models.checkpoint import model_from_checkpoint
from robustmnist.shifts.registry import all_shifts
from robustmnist.shifts.sets import make_set
from robustmnist.shifts.suite import load_suite

HERE = Path(__file__).resolve().parent
FAMILIES = ("fonts", "euro")


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    out = [model(to_float(images[i : i + 2048])).argmax(dim=1) for i in range(0, len(images), 2048)]
    return torch.cat(out).numpy()


def falls(acc: list[float], margin: float) -> bool:
    return all(a - b >= margin for a, b in zip(acc, acc[1:], strict=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="NAME=checkpoint.pt (first one is checked)")
    ap.add_argument("--shifts", default="", help="comma list (default: fonts and euro families)")
    ap.add_argument("--suite", default="default")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=0.003)
    ap.add_argument("--data-root", default=os.environ.get("ROBUSTMNIST_DATA"))
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)

    models = {}
    for spec in args.model or [f"lenet5={HERE / 'reference' / 'lenet5.pt'}"]:
        name, path = spec.split("=", 1)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        models[name] = model_from_checkpoint(ckpt).eval()
    suite, shifts = load_suite(args.suite), all_shifts()
    names = [s for s in args.shifts.split(",") if s] or [
        n for n in suite.shift_names if shifts[n].family in FAMILIES]
    test = None
    if any(shifts[n].kind != "generative" for n in names):
        test = load_mnist("test", Path(args.data_root) if args.data_root else None)
    result: dict = {"n": args.n, "seed": args.seed, "suite": args.suite, "margin": args.margin,
                    "shifts": {}}
    bad = []
    t0 = time.perf_counter()
    for name in names:
        shift = shifts[name]
        acc: dict[str, list[float]] = {m: [] for m in models}
        for sev in suite.severities:
            src = (None, None) if shift.kind == "generative" else (test.images, test.labels)
            images, labels = make_set(shift, sev, suite.params(name, sev), *src, args.n, args.seed)
            for m, model in models.items():
                acc[m].append(round(float((predict(model, images) == labels).mean()), 4))
        first = next(iter(models))
        ok = falls(acc[first], args.margin)
        bad += [] if ok else [name]
        result["shifts"][name] = {"version": shift.version, "accuracy": acc, "falls": ok}
        print(f"{name:18s} {'ok ' if ok else 'BAD'} " + "  ".join(f"{m} {v}" for m, v in acc.items()),
              flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        atomic_write_json(Path(args.out), result)
    if bad:
        print(f"not falling by >= {args.margin} per level on {first}: {', '.join(bad)}")
        return 1
    print(f"all {len(names)} ladders fall by >= {args.margin} per level on {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
