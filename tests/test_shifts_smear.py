"""Family-specific checks for the smear shifts (ink and paper) and the drawing primitives.

The generic contract (shape, dtype, range, determinism, distance growing with severity) is
tested for every shift elsewhere; here: the geometry users rely on, MNIST-C equivalence,
and the physical story each shift tells (ink is only added, stains only lift the paper...).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustmnist.data.framing import centre_of_mass
from robustmnist.shifts import _draw as draw
from robustmnist.shifts import get_shift
from robustmnist.shifts.smear import _gaussian_filter
from robustmnist.shifts.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "shifts" / "parts"
SMEAR = ["ink_blot", "smudge", "coffee_stain", "strike_through",
         "spatter", "dotted_line", "zigzag", "stripe"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def apply(name: str, x: torch.Tensor, seed: int = 0, **params) -> torch.Tensor:
    return get_shift(name).apply(x.clone(), gen(seed), **params)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """A few synthetic 'digits' (rings and bars) placed like MNIST ink, 20 px box, centred."""
    xs, ys = draw.pixel_grid(28, 28)
    r = torch.sqrt((xs - 13.5) ** 2 + (ys - 13.5) ** 2)
    ring = ((r > 5) & (r < 8)).float()
    bar = ((xs - 14).abs() < 1.5) & ((ys - 14).abs() < 9)
    cross = bar | (((ys - 14).abs() < 1.5) & ((xs - 14).abs() < 8))
    imgs = torch.cat([ring, bar.float(), cross.float(), ring.roll(3, dims=2)], dim=0)
    return imgs.repeat(8, 1, 1).unsqueeze(1)  # 32×1×28×28


# --- drawing primitives ------------------------------------------------------------------


def test_segment_field_matches_brute_force_distance():
    g = gen(1)
    p0, p1 = torch.rand(5, 2, generator=g) * 27, torch.rand(5, 2, generator=g) * 27
    dist, along = draw.segment_field(p0, p1, 28, 28)
    # Brute force: densely sample each segment and take the nearest sample.
    t = torch.linspace(0, 1, 4001).view(1, -1, 1)
    pts = p0.unsqueeze(1) + t * (p1 - p0).unsqueeze(1)  # 5×T×2
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="xy"), -1)
    d_all = torch.cdist(grid.view(1, -1, 2).expand(5, -1, -1), pts)  # 5×784×T
    best, idx = d_all.min(dim=2)
    assert torch.allclose(dist.view(5, -1), best, atol=0.01)
    seg_len = torch.linalg.vector_norm(p1 - p0, dim=1, keepdim=True)
    assert torch.allclose(along.view(5, -1), idx / 4000 * seg_len, atol=0.02)


def test_polyline_field_measures_arc_length_around_corners():
    pts = torch.tensor([[[2.0, 5.0], [12.0, 5.0], [12.0, 20.0]]])
    dist, along = draw.polyline_field(pts, 28, 28)
    assert dist[0, 5, 7] == 0 and along[0, 5, 7] == pytest.approx(5.0)
    assert dist[0, 15, 12] == 0 and along[0, 15, 12] == pytest.approx(20.0)
    assert torch.equal(draw.polyline_distance(pts, 28, 28), dist)


def test_stroke_width_sets_the_ink_per_unit_length():
    # A long horizontal pen line: each column's total ink equals the pen width, for thick and
    # for sub-pixel pens (which fade rather than vanish or bloat to a full pixel).
    p0, p1 = torch.tensor([[0.0, 13.3]]), torch.tensor([[27.0, 13.3]])
    d = draw.segments_distance(p0, p1, 28, 28)
    for width in (0.5, 1.0, 2.0, 3.5):
        column = draw.stroke_from_distance(d, width)[0, :, 14]
        assert column.sum().item() == pytest.approx(width, abs=0.05)
        assert column.max() <= 1


def test_smooth_noise_is_smooth_centred_and_seeded():
    a = draw.smooth_noise(64, 5, 28, 28, gen(3))
    assert torch.equal(a, draw.smooth_noise(64, 5, 28, 28, gen(3)))
    assert a.mean().abs() < 0.05 and 0.4 < a.std() < 0.6
    # Neighbouring pixels differ far less than independent noise of that spread would.
    assert (a[:, :, 1:] - a[:, :, :-1]).abs().mean() < 0.1
    # scale and offset act per image.
    b = draw.smooth_noise(2, 5, 28, 28, gen(3), scale=torch.tensor([0.0, 2.0]), offset=3.0)
    assert torch.allclose(b[0], torch.full((28, 28), 3.0)) and b[1].std() > 0.5


def test_log_falloff_is_mnistc_profile():
    d = torch.tensor([0.0, 1.0, 1.4, 1.5, 3.0])
    with np.errstate(divide="ignore"):
        expected = np.clip(np.log(1 - np.clip(d.numpy(), 0, 2.3 - 1e-10) / 2.3) + 1, 0, 1)
    assert np.allclose(draw.log_falloff(d).numpy(), expected, atol=1e-6)


# --- the suite parts -----------------------------------------------------------------------


def test_parts_define_every_smear_shift_with_five_levels():
    suite = load_suite(str(PARTS / "smear.toml"))
    assert sorted(suite.shift_names) == sorted(SMEAR)
    assert suite.levels == 5
    for name in SMEAR:
        assert get_shift(name).family == "smear"


def test_mnistc_part_holds_mnistc_parameters():
    suite = load_suite(str(PARTS / "mnistc-smear.toml"))
    assert suite.levels == 1
    assert suite.params("stripe", 1) == {"width": 7, "jitter": 0}
    sp = suite.params("spatter", 1)
    assert (sp["loc"], sp["scale"], sp["sigma"], sp["threshold"], sp["mask_sigma"]) == (
        0.65, 0.3, 1.0, 0.65, 1.5)
    assert sp["colour"] == pytest.approx(63 / 255)
    assert suite.params("zigzag", 1)["cols"] == [2, 25]


# --- MNIST-C equivalence ------------------------------------------------------------------


def test_stripe_at_width_7_is_mnistc_stripe(digits):
    out = apply("stripe", digits, width=7, jitter=0)
    expected = digits.clone()
    expected[..., :7] = 1 - expected[..., :7]
    expected[..., 21:] = 1 - expected[..., 21:]
    assert torch.equal(out, expected)


def test_stripe_jitter_draws_band_widths_per_image_and_side():
    out = apply("stripe", torch.zeros(200, 1, 28, 28), width=4, jitter=1)
    row = out[:, 0, 0]
    left = row[:, :14].sum(1)
    right = row[:, 14:].sum(1)
    assert set(left.tolist()) == {3.0, 4.0, 5.0} and set(right.tolist()) == {3.0, 4.0, 5.0}
    assert not torch.equal(left, right)


def test_gaussian_filter_matches_skimage_nearest_mode():
    from scipy.ndimage import gaussian_filter

    img = torch.rand(3, 1, 28, 28, generator=gen(4))
    for sigma in (0.6, 1.0, 1.5, 4.0):
        ours = _gaussian_filter(img, sigma)[:, 0].numpy()
        ref = np.stack([gaussian_filter(a, sigma, mode="nearest", truncate=4.0)
                        for a in img[:, 0].numpy()])
        assert np.allclose(ours, ref, atol=1e-5)


def test_spatter_reproduces_mnistc_algorithm(digits):
    from scipy.ndimage import gaussian_filter

    p = load_suite(str(PARTS / "mnistc-smear.toml")).params("spatter", 1)
    out = get_shift("spatter").fn(digits, gen(5), **p)
    # MNIST-C's spatter, image by image in numpy, on the same normal draws.
    noise = torch.randn(digits.shape, generator=gen(5)).numpy()[:, 0]
    for img, z, got in zip(digits[:, 0].numpy(), noise, out[:, 0].numpy(), strict=True):
        liquid = gaussian_filter(0.65 + 0.3 * z, 1.0, mode="nearest")
        liquid[liquid < 0.65] = 0
        m = gaussian_filter(np.where(liquid > 0.65, 1.0, 0.0), 1.5, mode="nearest")
        m[m < 0.8] = 0
        ref = img * (1 - m) + 63 / 255 * m
        assert np.allclose(got, ref, atol=1e-4)


def test_dotted_line_has_mnistc_profile_and_dash_phase():
    # rows=[10, 11] pins the line to row 10, horizontal.
    out = apply("dotted_line", torch.zeros(2, 1, 28, 28), rows=[10, 11])[0, 0]
    on_cols = [c for c in range(27) if c % 4 in (2, 3)]
    off_cols = [c for c in range(27) if c % 4 in (0, 1)]
    assert torch.allclose(out[10, on_cols], torch.ones(len(on_cols)))
    assert torch.allclose(out[11, on_cols], torch.tensor(math.log(1 - 1 / 2.3) + 1))
    assert out[10, off_cols].max() == 0
    assert out[12:].max() == 0 and out[:9].max() == 0


def test_zigzag_geometry_follows_mnistc():
    out = apply("zigzag", torch.zeros(1, 1, 28, 28), rows=[10, 11], tilt=0)[0, 0]
    # Starts on row 10 at column 2, peaks 2 px below at column 4, 2 px above at column 8,
    # crosses the baseline at column 6; ends at column 25.
    for r, c in [(10, 2), (12, 4), (10, 6), (8, 8), (12, 12), (8, 16)]:
        assert out[r, c] == pytest.approx(1.0, abs=1e-5), (r, c)
    assert out[:, :1].max() == 0 and out[:, 27:].max() == 0
    assert out[15:].max() == 0 and out[:6].max() == 0


def test_zigzag_profile_is_vertical_distance_like_mnistc():
    # MNIST-C's line_from_points measures the row distance to each segment's line, so a 45°
    # flank one row off its centre gets the profile at 1 px (0.43), not at 1/√2 px (0.63), and
    # MNIST-C adds the line to the digit instead of laying it over it.
    out = apply("zigzag", torch.zeros(1, 1, 28, 28), rows=[10, 11], tilt=0)[0, 0]
    at_one = math.log(1 - 1 / 2.3) + 1
    assert out[11, 3] == pytest.approx(1.0, abs=1e-5)  # mid-flank from (10, 2) to (12, 4)
    assert out[12, 3] == pytest.approx(at_one, abs=1e-5)
    assert out[10, 3] == pytest.approx(at_one, abs=1e-5)
    grey = torch.full((1, 1, 28, 28), 0.3)
    added = apply("zigzag", grey, rows=[10, 11], tilt=0)[0, 0]
    assert added[12, 3] == pytest.approx(0.3 + at_one, abs=1e-5)
    assert get_shift("zigzag").version == 3


def test_zigzag_tilt_and_rows_vary_per_image():
    out = apply("zigzag", torch.zeros(64, 1, 28, 28), rows=[0, 27], tilt=5)[:, 0]
    first_row = out[:, :, 2].argmax(dim=1)  # the start vertex's row
    assert len(set(first_row.tolist())) > 10


# --- the physical story of each shift ------------------------------------------------------


@pytest.mark.parametrize("name", ["ink_blot", "strike_through", "dotted_line", "zigzag"])
def test_pen_ink_is_only_ever_added(name, digits):
    params = load_suite(str(PARTS / "smear.toml")).params(name, 5)
    out = apply(name, digits, **params)
    assert (out >= digits - 1e-6).all()
    assert (out - digits).sum() > 0


def test_ink_blots_land_on_the_strokes(digits):
    params = load_suite(str(PARTS / "smear.toml")).params("ink_blot", 3)
    added = apply("ink_blot", digits, **params) - digits
    # Anything added lies within reach of the digit: blot radius, jitter and flung droplets.
    reach = math.ceil(params["radius"] * 1.2 * 2.3 + 1.5 + 1)
    near = F.max_pool2d(digits, 2 * reach + 1, stride=1, padding=reach) > 0.5
    assert (added[~near] > 0.05).float().mean() < 0.001
    # Each blot is a solid mass of ink, not a scatter of dots.
    assert ((added > 0.5).sum(dim=(1, 2, 3)) >= 4).all()


def test_strike_through_crosses_the_centre_of_mass(digits):
    x = digits[:4]
    out = apply("strike_through", x, width=2.0, length=20.0, angle=0.0, offset=0.0, bend=0.0)
    cy, cx = centre_of_mass(x)
    added = out - x
    for i in range(4):
        row = int(round(cy[i].item()))
        lo, hi = int(cx[i] - 7), int(cx[i] + 7)
        assert (out[i, 0, row, lo:hi] > 0.9).all()  # a solid horizontal line through the middle
        assert added[i, 0, : row - 3].max() == 0 and added[i, 0, row + 4 :].max() == 0


def test_strike_through_length_sets_the_line_extent():
    x = torch.zeros(8, 1, 28, 28)
    out = apply("strike_through", x, width=1.5, length=12.0, angle=0.0, offset=0.0, bend=0.0)
    extent = (out[:, 0] > 0.2).any(dim=1).sum(dim=1).float()  # columns touched
    # length ±15% per image, plus the pen's rounded caps.
    assert ((extent >= 12 * 0.85) & (extent <= 12 * 1.15 + 3)).all()


def test_smudge_drags_ink_one_way_without_losing_it(digits):
    length, strength = 6.0, 1.0
    out = apply("smudge", digits, length=length, strength=strength)
    # The kernel is one-sided, so the centre of mass moves by its mean offset (a symmetric
    # motion blur would leave it in place); the total ink stays, only redistributed.
    steps = torch.arange(0, int(length) + 1, dtype=torch.float32)
    w = 1 - steps / (length + 1)
    mean_drag = (steps * w).sum() / w.sum()
    cy0, cx0 = centre_of_mass(digits)
    cy1, cx1 = centre_of_mass(out)
    moved = torch.hypot(cy1 - cy0, cx1 - cx0)
    assert torch.allclose(moved, torch.full_like(moved, mean_drag.item()), atol=0.35)
    assert torch.allclose(out.sum(dim=(1, 2, 3)), digits.sum(dim=(1, 2, 3)), rtol=0.03)
    angles = torch.atan2(cy1 - cy0, cx1 - cx0)
    assert angles.std() > 1.0  # directions differ from image to image


def test_smudge_strength_keeps_that_fraction_of_the_stroke(digits):
    out = apply("smudge", digits, length=4.0, strength=0.3)
    ink = digits > 0.5
    # 70% of the stroke stays in place, the rest spreads into a tail.
    assert out[ink].min() >= 0.7 - 1e-5
    assert ((out > 0.05) & ~ink).sum() > 0


def test_coffee_stain_lifts_paper_and_spares_the_ink(digits):
    params = load_suite(str(PARTS / "smear.toml")).params("coffee_stain", 3)
    out = apply("coffee_stain", digits, **params)
    assert (out >= digits - 1e-6).all()
    ink = digits == 1
    assert torch.allclose(out[ink], digits[ink])
    assert out[~ink].max() <= 1 - (1 - params["rim"]) ** params["stains"] + 1e-5


def test_coffee_stain_is_a_ring_brighter_at_its_rim():
    x = torch.zeros(64, 1, 28, 28)
    out = apply("coffee_stain", x, stains=1, rim=0.6, fill=0.1, radius=10.0)

    def erode(mask: torch.Tensor, px: int) -> torch.Tensor:
        # max_pool pads with -inf, so the image border does not count as the stain's edge.
        return -F.max_pool2d(-mask, 2 * px + 1, stride=1, padding=px)

    stained = (out > 0.01).float()
    rim = (stained - erode(stained, 2)) > 0
    deep = erode(stained, 4) > 0
    deep[..., :4, :] = deep[..., -4:, :] = False  # a rim just outside the image is unseen
    deep[..., :4] = deep[..., -4:] = False
    for i in range(64):
        if deep[i].sum() >= 10 and rim[i].sum() >= 10:
            # Coffee dries at its edge: the rim band is much darker (here brighter) than inside.
            assert out[i][rim[i]].mean() > 1.6 * out[i][deep[i]].mean()


def test_spatter_covers_more_with_severity():
    suite = load_suite(str(PARTS / "smear.toml"))
    x = torch.zeros(200, 1, 28, 28)
    cover = [(apply("spatter", x, **suite.params("spatter", s)) > 0.1).float().mean().item()
             for s in range(1, 6)]
    assert all(a < b for a, b in zip(cover, cover[1:], strict=False))
    assert cover[0] < 0.05 and cover[-1] < 0.6  # droplets at first, never a solid sheet


def test_spatter_mud_is_grey_and_occludes(digits):
    out = apply("spatter", digits, loc=0.75, scale=0.3, sigma=1.0, threshold=0.65,
                mask_sigma=1.5)
    mud = (digits == 0) & (out > 0)
    assert out[mud].max() <= 63 / 255 + 1e-6  # mud on paper never exceeds its colour
    covered_ink = (digits == 1) & (out < 1)
    assert out[covered_ink].min() < 0.5  # strokes under the mud are hidden, not just tinted


def test_affine_grid_matches_torch():
    from robustmnist.shifts.smear import _affine_grid

    theta = torch.randn(4, 2, 3, generator=gen(6))
    ours = _affine_grid(theta[:, :, :2], theta[:, :, 2], 30, 39)
    ref = F.affine_grid(theta, [4, 1, 30, 39], align_corners=False)
    assert torch.allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("name, params", [
    ("dotted_line", {"lines": 3}),
    ("zigzag", {"lines": 2, "amplitude": 3.0, "tilt": 5}),
])
def test_drawing_on_a_band_loses_no_ink(name, params, monkeypatch):
    x = torch.zeros(64, 1, 28, 28)
    banded = apply(name, x, **params)

    def every_row(centre: torch.Tensor, reach: float) -> torch.Tensor:
        return torch.arange(28).view(1, 28, 1).expand(centre.shape[0], 28, centre.shape[-1])

    monkeypatch.setattr(draw, "column_band", every_row)
    assert torch.allclose(banded, apply(name, x, **params), atol=1e-6)
