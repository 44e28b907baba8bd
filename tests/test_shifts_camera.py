"""The camera family: phone photos of digits on paper, photo-framed."""

from __future__ import annotations

import numpy as np
import torch

from robustmnist.shifts.registry import get_shift
from robustmnist.shifts.sets import make_set
from robustmnist.shifts.suite import load_suite


def _digits(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageDraw

    imgs = []
    for i in range(n):
        im = Image.new("L", (28, 28), 0)
        d = ImageDraw.Draw(im)
        if i % 2:
            d.line([(14, 4), (13, 23)], fill=255, width=3)
        else:
            d.ellipse([(8, 5), (20, 23)], outline=255, width=3)
        imgs.append(np.asarray(im))
    return np.stack(imgs), (np.arange(n) % 2).astype(np.int64)


def test_camera_suite_loads_with_every_shift():
    suite = load_suite("camera")
    names = list(suite.shift_params)
    assert len(names) >= 4 and all(get_shift(n).family == "camera" for n in names)
    assert all(len(levels) == 5 for levels in suite.shift_params.values())


def test_sets_are_deterministic_and_nested():
    x, y = _digits()
    suite = load_suite("camera")
    shift = get_shift("camera_marks")
    p = suite.params("camera_marks", 3)
    a, la = make_set(shift, 3, p, x, y, 20, seed=0)
    b, _ = make_set(shift, 3, p, x, y, 12, seed=0)
    assert a.dtype == np.uint8 and a.shape == (20, 28, 28) and (la == y).all()
    assert np.array_equal(a[:12], b)
    c, _ = make_set(shift, 3, p, x, y, 20, seed=0)
    assert np.array_equal(a, c)


def test_a_clear_photo_gives_back_the_digit():
    from robustmnist.data.framing import frame_mnist

    x, _ = _digits()
    xt = torch.from_numpy(x).double().div(255).unsqueeze(1)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = get_shift("camera_light").apply(xt.clone(), torch.Generator().manual_seed(0))
    finally:
        torch.set_default_dtype(prev)
    ref = frame_mnist(xt)
    a, b = out.flatten(1), ref.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    assert corr.mean() > 0.8, corr
