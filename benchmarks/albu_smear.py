"""albumentations 2.0.8 counterparts of the smear shifts, for speed comparisons.

``EQUIVALENTS[name](severity)`` returns a transform (p=1) of roughly the strength of our
severity level, read from the same ladder (shifts/parts/smear.toml). Only shifts that
albumentations really implements are listed: spatter (Spatter, mud mode), smudge (a one-sided
MotionBlur) and ink_blot (CoarseDropout filling with white ink: square holes where ours are
round blots, so a lower bound on the cost of drawing them). strike_through, coffee_stain,
dotted_line, zigzag and stripe have no albumentations counterpart.

Spatter refuses single-channel images, so its entry is a Compose that goes through RGB and
back; the conversions are part of what a user of albumentations would pay on MNIST.

Timed side by side with our shifts by ``benchmarks/shifts.py`` (all families, one run).
"""

from __future__ import annotations

import math
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
