"""albumentations 2.0.8 transforms of roughly the same strength as our photometric shifts.

``EQUIVALENTS[name](severity)`` builds a p=1 transform that does to one uint8 28×28 image what
our shift does to a batch at that severity; the timing benchmark runs it image by image to
check that no batched shift is slower than albumentations' per-image loop. The strength comes
from the same suite parameters, so the two stay matched when a level is retuned.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import albumentations as A

from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts" / "photometric.toml"


@cache
def _suite():
    return load_suite(str(PARTS))


def level(name: str, severity: int) -> dict:
    return _suite().params(name, severity)


def brightness(severity: int) -> A.BasicTransform:
    lift = level("brightness", severity)["lift"]
    # brightness_by_max: beta = lift × 255, added to every pixel, as our lift is.
    return A.RandomBrightnessContrast(brightness_limit=(lift, lift), contrast_limit=(0.0, 0.0),
                                      brightness_by_max=True, p=1.0)


def contrast(severity: int) -> A.BasicTransform:
    f = level("contrast", severity)["factor"]
    # alpha·x + beta with alpha = f and beta = (1 − f)·mean(x) (brightness_by_max=False scales
    # beta by the image mean): exactly a contrast change about the image's own mean.
    return A.RandomBrightnessContrast(brightness_limit=(1.0 - f, 1.0 - f),
                                      contrast_limit=(f - 1.0, f - 1.0),
                                      brightness_by_max=False, p=1.0)


def invert(severity: int) -> A.BasicTransform:
    del severity  # albumentations only has the full inversion (our level 5)
    return A.InvertImg(p=1.0)


def gamma(severity: int) -> A.BasicTransform:
    gm = level("gamma", severity)["gamma"]
    # RandomGamma draws gamma uniformly in the range; ours is gm or 1/gm with even odds.
    return A.RandomGamma(gamma_limit=(100.0 / gm, 100.0 * gm), p=1.0)


def fog(severity: int) -> A.Compose:
    strength = level("fog", severity)["strength"]
    coef = min(1.0, strength / 2.2)
    # RandomFog only takes RGB images, so the grey digit goes through RGB and back.
    return A.Compose([
        A.ToRGB(p=1.0),
        A.RandomFog(fog_coef_range=(coef, coef), alpha_coef=0.08, p=1.0),
        A.ToGray(num_output_channels=1, p=1.0),
    ])


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform | A.Compose]] = {
    "brightness": brightness,
    "contrast": contrast,
    "invert": invert,
    "gamma": gamma,
    "fog": fog,
}
