"""Stroke shifts: thick_stroke, thin_stroke (robustmnist/shifts/stroke.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robustmnist.data.datasets import to_float
from robustmnist.shifts import get_shift
from robustmnist.shifts.stroke import soft_dilate
from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def strokes(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Digit-like images on the 8-bit grid: an anti-aliased ring (a '0') with a slanted tail."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    out = []
    for _ in range(n):
        cy, cx, rad = rng.uniform(11, 14), rng.uniform(12, 15), rng.uniform(5, 7)
        ring = np.clip(1.8 - np.abs(np.hypot(yy - cy, xx - cx) - rad), 0, 1)
        tail = np.clip(1.5 - np.abs((xx - cx) - 0.4 * (yy - 20)), 0, 1) * (yy > cy) * (yy < 25)
        out.append(np.maximum(ring, tail))
    return to_float((np.stack(out) * 255 + 0.5).astype(np.uint8))


def ink(x: torch.Tensor) -> float:
    return x.sum().item()


def test_a_dot_grows_into_a_soft_round_disc():
    dot = torch.zeros(1, 1, 9, 9)
    dot[..., 4, 4] = 1.0
    out = soft_dilate(dot, torch.tensor(1.0).view(1, 1, 1, 1))[0, 0]
    # Coverage weights clamp(r + ½ − |q|, 0, 1): ½ at the 4-neighbours, 1.5 − √2 diagonally.
    assert abs(out[4, 5].item() - 0.5) <= 1 / 255
    assert abs(out[5, 5].item() - (1.5 - math.sqrt(2))) <= 2 / 255
    assert out[4, 6] == 0 and out[4, 4] == 1
    assert torch.equal(out, out.T) and torch.equal(out, out.flip(0)) and torch.equal(out, out.flip(1))


def test_soft_dilate_matches_the_float_definition_with_per_image_radii():
    x = strokes(12)
    radii = torch.linspace(0.3, 2.8, 12).view(-1, 1, 1, 1)
    reach = 3
    padded = F.pad(x, (reach,) * 4)
    expected = x.clone()
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            weight = (radii + 0.5 - math.hypot(dy, dx)).clamp(0, 1)
            shifted = padded[..., reach + dy : reach + dy + 28, reach + dx : reach + dx + 28]
            expected = torch.maximum(expected, weight * shifted)
    # 8-bit levels with 7-bit ring weights: within two levels of the float computation.
    assert (soft_dilate(x, radii) - expected).abs().max() <= 2 / 255


def test_thick_never_removes_ink_and_thin_never_adds_it():
    x = strokes()
    thick = get_shift("thick_stroke").fn(x, gen(), radius=1.5, jitter=0.2)
    thin = get_shift("thin_stroke").fn(x, gen(), thinning=0.7, jitter=0.2)
    assert (thick >= x).all()
    # A finer pen draws inside the old stroke: no ink where there was none, less ink per digit
    # (re-inking may brighten a narrowed core, so pixelwise <= does not hold).
    assert (thin[x == 0] == 0).all()
    assert (thin.sum(dim=(1, 2, 3)) < x.sum(dim=(1, 2, 3))).all()
    # thinning 0 is the same pen: the soft disc of radius ½ covers only the centre pixel.
    assert torch.allclose(get_shift("thin_stroke").fn(x, gen(), thinning=0.0), x, atol=1e-6)


def test_pen_width_follows_severity_and_the_digit_stays_in_place():
    suite = load_suite(str(PARTS / "stroke.toml"))
    x = strokes(32)
    total = ink(x)
    com = _centre_of_mass(x)
    thick, thin = [total], [total]
    for sev in range(1, 6):
        t = get_shift("thick_stroke").apply(x, gen(sev), **suite.params("thick_stroke", sev))
        s = get_shift("thin_stroke").apply(x, gen(sev), **suite.params("thin_stroke", sev))
        thick.append(ink(t))
        thin.append(ink(s))
        # A pen, not a shift (a fine pen may lose a thin end, which moves the balance a bit).
        assert (_centre_of_mass(t) - com).abs().max() < 0.6
        assert (_centre_of_mass(s) - com).abs().max() < 1.0
    assert thick == sorted(thick) and thick[-1] > 2 * total
    assert thin == sorted(thin, reverse=True) and thin[-1] < 0.75 * total
    # A fine pen is still ink, not a faint trace: the hairline keeps a bright core.
    assert (s.amax(dim=(1, 2, 3)) > 0.9).all()


def test_each_writer_gets_their_own_pen():
    x = strokes(1).repeat(8, 1, 1, 1)
    out = get_shift("thick_stroke").fn(x, gen(), radius=1.5, jitter=0.3)
    widths = {round(out[i].sum().item(), 3) for i in range(8)}
    assert len(widths) > 4


def _centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    ys = torch.arange(28.0).view(1, 1, 28, 1)
    xs = torch.arange(28.0).view(1, 1, 1, 28)
    m = x.sum(dim=(1, 2, 3))
    return torch.stack([(x * ys).sum(dim=(1, 2, 3)) / m, (x * xs).sum(dim=(1, 2, 3)) / m], 1)
