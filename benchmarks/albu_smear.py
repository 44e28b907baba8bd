"""albumentations 2.0.8 counterparts of the smear shifts, for speed comparisons.

``EQUIVALENTS[name](severity)`` returns a transform (p=1) of roughly the strength of our
severity level, read from the same ladder (shifts/parts/smear.toml). Only shifts that
albumentations really implements are listed: spatter (Spatter, mud mode), smudge (a one-sided
MotionBlur) and ink_blot (CoarseDropout filling with white ink: square holes where ours are
round blots, so a lower bound on the cost of drawing them). strike_through, coffee_stain,
dotted_line, zigzag and stripe have no albumentations counterpart.

Spatter refuses single-channel images, so its entry is a Compose that goes through RGB and
back; the conversions are part of what a user of albumentations would pay on MNIST.

Run ``python benchmarks/albu_smear.py`` to time both sides on 10,000 MNIST test digits and
write benchmarks/results/albu_smear.json.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import albumentations as A

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "shifts" / "parts" / "smear.toml"


def _params(name: str, severity: int) -> dict:
    from robustmnist.shifts.suite import load_suite

    return load_suite(str(LADDER)).params(name, severity)


def spatter(severity: int) -> A.BasicTransform:
    p = _params("spatter", severity)
    grey = round(p.get("colour", 63 / 255) * 255)
    mud = A.Spatter(mean=(p["loc"], p["loc"]), std=(p["scale"], p["scale"]),
                    gauss_sigma=(p["sigma"], p["sigma"]),
                    cutout_threshold=(p["threshold"], p["threshold"]),
                    intensity=(1.0, 1.0), mode="mud", color=(grey, grey, grey), p=1.0)
    return A.Compose([A.ToRGB(p=1.0), mud, A.ToGray(num_output_channels=1, p=1.0)])


def smudge(severity: int) -> A.BasicTransform:
    length = _params("smudge", severity)["length"]
    # direction 1.0 puts the whole line on one side of the centre, as a drag does; the kernel
    # then spans about half its size, so size 2·length + 1 drags ink about `length` px.
    k = 2 * math.ceil(length) + 1
    return A.MotionBlur(blur_limit=(k, k), angle_range=(0, 360), direction_range=(1.0, 1.0),
                        allow_shifted=False, p=1.0)


def ink_blot(severity: int) -> A.BasicTransform:
    p = _params("ink_blot", severity)
    side = max(1, round(2 * p["radius"]))
    blots = int(p.get("blots", 1))
    return A.CoarseDropout(num_holes_range=(blots, blots), hole_height_range=(side, side),
                           hole_width_range=(side, side), fill=255, p=1.0)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform]] = {
    "spatter": spatter,
    "smudge": smudge,
    "ink_blot": ink_blot,
}


def main(n: int = 10_000) -> dict:
    import numpy as np
    import torch

    from robustmnist.data import load_mnist
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set

    ds = load_mnist("test")
    images, labels = ds.images[:n], ds.labels[:n]
    out: dict = {"n": n, "torch_threads": torch.get_num_threads(), "shifts": {}}
    for name, factory in EQUIVALENTS.items():
        rows = []
        for severity in range(1, 6):
            t0 = time.perf_counter()
            make_set(get_shift(name), severity, _params(name, severity), images, labels, n, 0)
            ours = time.perf_counter() - t0
            transform = factory(severity)
            t0 = time.perf_counter()
            for img in images:
                transform(image=np.ascontiguousarray(img[..., None]))
            theirs = time.perf_counter() - t0
            rows.append({"severity": severity, "robustmnist_s": round(ours, 3),
                         "albumentations_s": round(theirs, 3)})
            print(f"{name:10s} s{severity}  ours {ours:6.3f} s   albumentations {theirs:6.3f} s")
        out["shifts"][name] = rows
    dest = ROOT / "benchmarks" / "results" / "albu_smear.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
