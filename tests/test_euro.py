"""European 1s and 7s: flags, feet and crossbars drawn on real MNIST digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from robustmnist.assets import shifts_dir
from robustmnist.data.datasets import to_float
from robustmnist.data.framing import centre_of_mass, ink_boxes
from robustmnist.shifts import euro as E
from robustmnist.shifts._draw import segments_distance, stroke_from_distance
from robustmnist.shifts.fonts import generate_fonts
from robustmnist.shifts.glyphs import stroke_width
from robustmnist.shifts.registry import get_shift
from robustmnist.shifts.suite import load_suite

SUITE = shifts_dir() / "parts" / "euro.toml"
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def suite():
    return load_suite(str(SUITE))


@pytest.fixture(scope="module")
def digits(mnist_test):
    x = to_float(mnist_test.images[:2000])
    y = torch.from_numpy(mnist_test.labels[:2000])
    return x, y


def _flag_params(suite, level):
    return {k: v for k, v in suite.params("euro_one", level).items()}


def _rows_from_top(img: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero((img > E.INK).any(axis=1))
    return rows


@pytest.mark.parametrize("level", [1, 3, 5])
def test_flag_keeps_every_original_pixel(digits, suite, level):
    x, y = digits
    ones = x[y == 1][:150]
    out = E.add_flag(ones, _g(), **_flag_params(suite, level))
    assert out.shape == ones.shape
    assert torch.equal(torch.maximum(out, ones), out)  # edit = max(original, stroke)
    added = (out - ones).sum(dim=(1, 2, 3))
    assert (added > 3).all(), "every 1 gets a visible flag"


def test_flag_adds_only_strokes_connected_to_the_top(digits, suite):
    x, y = digits
    ones = x[y == 1][:150]
    out = E.add_flag(ones, _g(), **_flag_params(suite, 3))  # level 3: flag, no foot
    for before, after in zip(ones[:, 0].numpy(), out[:, 0].numpy(), strict=True):
        ink = before > E.INK
        rows = _rows_from_top(before)
        top_band = np.zeros_like(ink)
        top_band[rows[0] : rows[0] + max(2, len(rows) // 4)] = True
        new = (after - before) > 0.05
        labels, k = ndimage.label(new, structure=EIGHT)
        assert k >= 1
        for c in range(1, k + 1):
            touching = ndimage.binary_dilation(labels == c, structure=EIGHT) & ink
            assert (touching & top_band).any(), "a stroke not attached to the top of the 1"
        # The flag runs down-left from the top: its ink lies left of and below the top row.
        ys, xs = np.nonzero(new & ~ink)
        top_x = np.nonzero(ink[rows[0]])[0].mean()
        assert xs.mean() < top_x and ys.mean() > rows[0]


def test_flag_follows_the_slant_of_the_one():
    # A 1 leaning right: the flag must start at its top end, not at the top of the image box.
    n = 4
    top = torch.tensor([[18.0, 4.0]]).expand(n, 2)
    bottom = torch.tensor([[10.0, 24.0]]).expand(n, 2)
    one = stroke_from_distance(segments_distance(top, bottom, 28, 28), 2.5).unsqueeze(1)
    out = E.add_flag(one, _g(), flag_length=0.35, flag_angle=45.0, jitter=0.0)
    new = (out - one)[:, 0] > 0.05
    ys, xs = torch.nonzero(new[0], as_tuple=True)
    # Every new pixel is within the flag's reach of the top end, none near the bottom end.
    d_top = torch.sqrt((xs - 18.0) ** 2 + (ys - 4.0) ** 2)
    d_bottom = torch.sqrt((xs - 10.0) ** 2 + (ys - 24.0) ** 2)
    assert d_top.max() < 0.35 * 21.5 + 2.5
    assert d_bottom.min() > 10


def test_added_strokes_match_the_digit_pen_and_ink(digits, suite):
    x, y = digits
    ones = x[y == 1][:100]
    p = _flag_params(suite, 4)
    thin = E.add_flag(ones, _g(), **p)
    thick_src = torch.nn.functional.max_pool2d(ones, 3, stride=1, padding=1)  # a bolder pen
    thick = E.add_flag(thick_src, _g(), **p)
    assert (stroke_width(thick_src) > stroke_width(ones)).all()
    grown = (thick - thick_src).sum(dim=(1, 2, 3)) / (thin - ones).sum(dim=(1, 2, 3))
    assert grown.median() > 1.3, "a bolder digit must get a bolder flag"
    faint = ones * 0.6
    out = E.add_flag(faint, _g(), **p)
    assert out.amax() <= 0.6 + 1e-6  # never brighter than the digit's own ink
    assert ((out - faint).amax(dim=(1, 2, 3)) > 0.3).all()


def test_foot_is_added_at_the_bottom_at_high_levels(digits, suite):
    x, y = digits
    ones = x[y == 1][:60]
    assert suite.params("euro_one", 3)["foot"] == 0
    assert suite.params("euro_one", 5)["foot"] > 0
    out = E.add_flag(ones, _g(), **_flag_params(suite, 5))
    for before, after in zip(ones[:, 0].numpy(), out[:, 0].numpy(), strict=True):
        rows = _rows_from_top(before)
        bottom = rows[-1]
        width_before = (before[bottom - 1 : bottom + 1] > E.INK).any(axis=0).sum()
        width_after = (after[bottom - 1 : bottom + 1] > E.INK).any(axis=0).sum()
        assert width_after >= width_before + 3


def test_crossbar_crosses_the_stem_near_mid_height(digits, suite):
    x, y = digits
    sevens = x[y == 7][:150]
    out = E.add_crossbar(sevens, _g(), **suite.params("euro_seven", 3))
    assert torch.equal(torch.maximum(out, sevens), out)
    a, b, y0, height = E.stem_line(sevens)
    for i, (before, after) in enumerate(zip(sevens[:, 0].numpy(), out[:, 0].numpy(),
                                            strict=True)):
        new = (after - before) > 0.05
        ys, xs = np.nonzero(new)
        rel = (ys.mean() - y0[i].item()) / height[i].item()
        assert 0.35 < rel < 0.8, rel
        stem_x = a[i].item() + b[i].item() * ys.mean()
        assert xs.min() < stem_x - 1 and xs.max() > stem_x + 1, "the bar must cross the stem"


def test_labelled_shifts_touch_only_their_digits_and_reframe(digits, suite):
    x, y = digits
    for name, targets in (("euro_one", {1}), ("euro_seven", {7}), ("euro", {1, 7})):
        shift = get_shift(name)
        assert shift.family == "euro" and shift.kind == "labelled"
        out = shift.apply(x.clone(), _g(), y=y, **suite.params(name, 4))
        hit = torch.tensor([int(v) in targets for v in y])
        assert torch.equal(out[~hit], x[~hit]), f"{name} changed other digits"
        assert ((out[hit] - x[hit]).abs().sum(dim=(1, 2, 3)) > 1).all()
        boxes, _ = ink_boxes(out[hit])
        side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        assert (side <= 20).all()
        cy, cx = centre_of_mass(out[hit])
        assert ((cy - 14).abs() <= 1).all() and ((cx - 14).abs() <= 1).all()


def test_edits_are_deterministic(digits, suite):
    x, y = digits
    p = suite.params("euro", 5)
    a = get_shift("euro").apply(x[:500].clone(), _g(3), y=y[:500], **p)
    b = get_shift("euro").apply(x[:500].clone(), _g(3), y=y[:500], **p)
    c = get_shift("euro").apply(x[:500].clone(), _g(4), y=y[:500], **p)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_euro_fonts_flags_the_handwriting_fonts_ones_and_sevens(suite):
    params = suite.params("euro_fonts", 5)
    x, y = get_shift("euro_fonts").generate(200, _g(5), **params)
    plain, y2 = generate_fonts(200, _g(5), category="handwriting", faces=params["faces"])
    assert torch.equal(y, y2)
    assert torch.bincount(y, minlength=10).tolist() == [20] * 10
    edited = (x - plain).abs().sum(dim=(1, 2, 3)) > 1
    assert torch.equal(edited, (y == 1) | (y == 7))


def test_suite_part_has_five_levels_that_grow(suite):
    for name in ("euro_one", "euro_seven", "euro", "euro_fonts"):
        assert len(suite.shift_params[name]) == 5
    lengths = [suite.params("euro_one", s)["flag_length"] for s in range(1, 6)]
    angles = [suite.params("euro_one", s)["flag_angle"] for s in range(1, 6)]
    bars = [suite.params("euro_seven", s)["bar_length"] for s in range(1, 6)]
    for ladder in (lengths, angles, bars):
        assert ladder == sorted(ladder) and ladder[0] < ladder[-1]
