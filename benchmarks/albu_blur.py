"""albumentations 2.0.8 counterparts of the blur shifts, for speed comparisons.

``EQUIVALENTS[name](severity)`` returns a transform (p=1) for one uint8 28×28(×1) image, of
roughly the strength of our severity level, read from the same ladder
(shifts/parts/blur.toml) so the two stay matched when a level is retuned. All four have a
counterpart: GaussianBlur, Defocus, MotionBlur and GlassBlur. Differences, noted per factory:
albumentations' kernels take whole-pixel sizes (Defocus radius, MotionBlur length) and a
uniform streak, and its GlassBlur swaps every pixel (no swap probability).

Timed side by side with our shifts by ``benchmarks/shifts.py`` (all families, one run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "shifts" / "parts" / "blur.toml"


def _params(name: str, severity: int) -> dict:
    from robustmnist.shifts.suite import load_suite

    return load_suite(str(LADDER)).params(name, severity)


def _spread(p: dict, key: str) -> tuple[float, float]:
    v, j = p[key], p.get("jitter", 0.0)
    return v * (1 - j), v * (1 + j)


def gaussian_blur(severity: int) -> A.BasicTransform:
    # blur_limit 0: kernel size from sigma, as PIL does.
    return A.GaussianBlur(sigma_limit=_spread(_params("gaussian_blur", severity), "sigma"),
                          blur_limit=0, p=1.0)


def defocus_blur(severity: int) -> A.BasicTransform:
    lo, hi = _spread(_params("defocus_blur", severity), "radius")
    return A.Defocus(radius=(max(1, round(lo)), max(1, round(hi))), alias_blur=(0.1, 0.1), p=1.0)


def motion_blur(severity: int) -> A.BasicTransform:
    p = _params("motion_blur", severity)
    # A uniform streak with the same spread along the motion as our faded one: a box of
    # length L has std L / sqrt(12). Odd, at least 3 px.
    t = np.arange(2 * math.ceil(p["radius"]) + 1)
    w = np.exp(-0.5 * (t / p["sigma"]) ** 2)
    std = math.sqrt(np.average((t - np.average(t, weights=w)) ** 2, weights=w))
    k = max(3, 2 * round(math.sqrt(12.0) * std / 2) + 1)
    a = p.get("max_angle", 180.0)
    return A.MotionBlur(blur_limit=(k, k), angle_range=(-a, a) if a < 180 else (0, 360),
                        direction_range=(0.0, 0.0) if p.get("centred", True) else (1.0, 1.0),
                        allow_shifted=False, p=1.0)


def glass_blur(severity: int) -> A.BasicTransform:
    p = _params("glass_blur", severity)
    return A.GlassBlur(sigma=p["sigma"], max_delta=int(p["max_delta"]),
                       iterations=int(p["iterations"]), mode="fast", p=1.0)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform]] = {
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "glass_blur": glass_blur,
}
