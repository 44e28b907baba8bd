"""Photometric shifts: brightness, contrast, invert, gamma, fog (robustmnist/shifts/photometric.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustmnist.data.datasets import normalise_polarity
from robustmnist.shifts import get_shift
from robustmnist.shifts.photometric import _plasma_crops, plasma_fractal
from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts"


def digits(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Stroke-like test images: a bright anti-aliased ring on black, one per image, jittered."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    cy = 13.5 + torch.rand(n, 1, 1, generator=g) * 4 - 2
    r = torch.hypot(ys - cy, xs - 13.5)
    return (1.8 - (r - 6.5).abs()).clamp(0, 1).unsqueeze(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_brightness_at_mnistc_setting_lifts_paper_to_half_and_keeps_ink_white():
    suite = load_suite(str(PARTS / "mnistc-photometric.toml"))
    x = digits()
    out = get_shift("brightness").apply(x, gen(), **suite.params("brightness", 1))
    # MNIST-C: V + 0.5 in HSV, which for grey pixels is x + 0.5 clipped.
    assert torch.equal(out, (x + 0.5).clamp(0, 1))
    assert out[x == 0].eq(0.5).all() and out[x == 1].eq(1.0).all()


def test_contrast_keeps_each_image_mean_and_shrinks_the_ink_paper_gap():
    x = digits()
    out = get_shift("contrast").fn(x, gen(), factor=0.25, jitter=0.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out.mean(dim=(1, 2, 3), keepdim=True), mean, atol=1e-6)
    assert torch.allclose(out - mean, 0.25 * (x - mean), atol=1e-6)


def test_invert_grades_the_way_to_dark_ink_on_light_paper():
    x = digits()
    full = get_shift("invert").fn(x, gen(), paper=1.0, ink=0.0, jitter=0.0)
    assert torch.allclose(full, 1.0 - x)
    suite = load_suite(str(PARTS / "photometric.toml"))
    paper_tones = []
    for sev in range(1, 6):
        out = get_shift("invert").apply(x, gen(sev), **suite.params("invert", sev))
        # v2: levels 1-4 are white ink on ever more tinted paper (still white on dark, so
        # robustmnist's polarity detector leaves them); level 5 is the full inversion, which it
        # recognises as a photographed page and flips back.
        flipped = torch.allclose(normalise_polarity(out), 1 - out)
        assert flipped == (sev == 5)
        paper_tones.append(out[:, :, 0, 0].mean().item())
    assert paper_tones == sorted(paper_tones) and paper_tones[0] < 0.15 and paper_tones[-1] > 0.95


def test_gamma_moves_only_the_grey_edge_pixels():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 2, 2).repeat(64, 1, 1, 1)
    dark = get_shift("gamma").fn(x, gen(), gamma=4.0, two_sided=False)
    assert torch.allclose(dark, x**4)
    both = get_shift("gamma").fn(x, gen(), gamma=4.0, two_sided=True)
    assert torch.equal(both[..., 0, 0], x[..., 0, 0]) and torch.equal(both[..., 1, 1], x[..., 1, 1])
    mid = both[:, 0, 1, 0]  # the 0.5 pixel of every image
    darker, brighter = (mid < 0.5).sum().item(), (mid > 0.5).sum().item()
    assert darker + brighter == 64 and 16 < darker < 48  # both directions, about even odds


def _mnistc_plasma(mapsize: int, decay: float, g: torch.Generator) -> np.ndarray:
    """MNIST-C's plasma_fractal (corruptions.py) line for line, except that its
    np.random.uniform(-wibble, wibble) draws come from g in the same order and shape."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        u = (torch.rand(array.shape, generator=g) * 2 - 1).double().numpy()
        return array / 4 + wibble * (wibble * u)

    while stepsize >= 2:
        half = stepsize // 2
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum)
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= decay
    maparray -= maparray.min()
    return maparray / maparray.max()


@pytest.mark.parametrize("mapsize,decay", [(8, 2.0), (32, 1.6), (64, 1.4)])
def test_plasma_is_mnistc_diamond_square(mapsize, decay):
    ours = plasma_fractal(1, mapsize, decay, gen(5))[0].double().numpy()
    ref = _mnistc_plasma(mapsize, decay, gen(5))
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    crop = plasma_fractal(1, mapsize, decay, gen(5), crop=7)[0].double().numpy()
    np.testing.assert_allclose(crop, ref[:7, :7], atol=1e-6)


def test_fog_is_mnistc_formula_and_never_brightens_the_ink_beyond_its_peak():
    x = digits() * 0.9
    out = get_shift("fog").fn(x, gen(3), strength=1.5, decay=1.6, mapsize=32)
    haze = _plasma_crops(len(x), 28, 28, 32, 1.6, gen(3))
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out, (x + 1.5 * haze) * peak / (peak + 1.5), atol=1e-6)
    assert (out <= peak + 1e-6).all()
    paper = out[x == 0]
    assert paper.min() >= 0 and paper.std() > 0.02  # a patchy veil, not a flat lift


def test_mnistc_fog_draws_a_256_map_and_crops_its_corner():
    suite = load_suite(str(PARTS / "mnistc-photometric.toml"))
    params = suite.params("fog", 1)
    assert params == {"strength": 3.0, "decay": 1.4, "mapsize": 256}
    x = digits(4)
    out = get_shift("fog").apply(x, gen(), **params)
    # (x + 3·p)·1/4: the paper lands between 0 and 3/4, the ink at (1 + 3p)/4 ≥ 1/4.
    assert out.shape == x.shape and out.max() <= 1.0
    assert (out[x == 1] >= 0.25 - 1e-6).all() and (out[x == 0] <= 0.75 + 1e-6).all()


def test_fog_severity_thickens_the_veil():
    suite = load_suite(str(PARTS / "photometric.toml"))
    x = digits(32)
    contrast = []
    for sev in range(1, 6):
        out = get_shift("fog").apply(x, gen(sev), **suite.params("fog", sev))
        contrast.append((out[x == 1].mean() - out[x == 0].mean()).item())
    assert contrast == sorted(contrast, reverse=True)
