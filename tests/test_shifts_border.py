"""Border shifts: each artefact lands where a bad crop or scan puts it, and each parameter
means what its docstring says. (Shape, range, determinism and severity ordering are checked
for every shift by the generic shift tests.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustmnist.data.framing import centre_of_mass
from robustmnist.shifts import get_shift
from robustmnist.shifts.border import _neighbours
from robustmnist.shifts.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def apply(name: str, x: torch.Tensor, seed: int = 0, **params) -> torch.Tensor:
    return get_shift(name).apply(x.clone(), gen(seed), **params)


def square(n: int = 32, lo: int = 4, hi: int = 24) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[..., lo:hi, lo:hi] = 1.0
    return x


def bright_edges(img: torch.Tensor, level: float) -> list[int]:
    """Which of (left, right, top, bottom) outermost lines are bright along their whole length."""
    lines = (img[:, 0], img[:, -1], img[0, :], img[-1, :])
    return [k for k, line in enumerate(lines) if bool((line >= level).all())]


def test_scan_border_bar_lies_along_one_edge_and_replaces_the_digit():
    x = torch.ones(64, 1, 28, 28) * 0.3  # a uniform "digit" everywhere, to see what is covered
    out = apply("scan_border", x, width=4.0, corner_prob=0.0, tilt=0.0, level=(0.9, 1.0))
    for img in out[:, 0]:
        edges = bright_edges(img, 0.89)
        assert len(edges) == 1
        # The opposite half is untouched: the bar is ~4 px deep, never across the image.
        if edges == [0]:
            assert torch.all(img[:, 14:] == 0.3)
        if edges == [2]:
            assert torch.all(img[14:, :] == 0.3)
    # Inside the bar the page is gone: pixels are the bar's level, not the digit's plus it.
    assert out.max() <= 1.0 and (out[:, :, :, 0] >= 0.9).float().mean() > 0.15


def test_scan_border_corner_takes_two_adjacent_edges():
    out = apply("scan_border", torch.zeros(64, 1, 28, 28), width=3.0, corner_prob=1.0, tilt=0.0)
    for img in out[:, 0]:
        edges = bright_edges(img, 0.79)
        assert len(edges) == 2
        assert {edges[0] // 2, edges[1] // 2} == {0, 1}  # one vertical edge, one horizontal


def test_scan_border_width_sets_the_depth():
    x = torch.zeros(256, 1, 28, 28)
    covered = [(apply("scan_border", x, width=w, corner_prob=0.0, tilt=0.0) > 0.5).float()
               .sum(dim=(1, 2, 3)).mean() / 28 for w in (2.0, 6.0)]
    assert covered[0] == pytest.approx(2.0, abs=0.5)
    assert covered[1] == pytest.approx(6.0, abs=0.7)


@pytest.mark.parametrize("cut", [0.1, 0.25, 0.4])
def test_crop_shift_loses_the_given_share_of_the_ink_box(cut):
    x = square()
    out = apply("crop_shift", x, cut=cut, recentre=False)
    kept = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert torch.allclose(kept, torch.full_like(kept, 1 - cut), atol=0.026)  # whole pixels
    # Without re-centring the cut side touches the frame.
    for img in out[:, 0]:
        assert img[:, 0].any() or img[:, -1].any() or img[0, :].any() or img[-1, :].any()


def test_crop_shift_recentres_what_is_left():
    x = square()
    out = apply("crop_shift", x, cut=0.3)
    cy, cx = centre_of_mass(out)
    assert torch.all((cy - 14).abs() <= 0.5) and torch.all((cx - 14).abs() <= 0.5)
    # ... but the lost part stays lost: 30% of the square is gone.
    kept = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert torch.allclose(kept, torch.full_like(kept, 0.7), atol=0.026)


def test_crop_shift_leaves_empty_images_alone():
    x = torch.zeros(4, 1, 28, 28)
    assert torch.equal(apply("crop_shift", x, cut=0.3), x)


def test_box_lines_sit_at_the_inset_and_count_the_sides():
    x = torch.zeros(32, 1, 28, 28)
    # inset 3.5 from the pixel edge puts each line's centre on pixel row/column 3 (or 24).
    out = apply("box_lines", x, inset=3.5, sides=4, jitter=0.0, tilt=0.0, line_width=1.0,
                level=(1.0, 1.0))
    img = out[:, 0]
    for line in (img[:, 3, :], img[:, 24, :], img[:, :, 3], img[:, :, 24]):
        assert torch.all(line > 0.99)
    assert torch.all(img[:, 5:23, 5:23] == 0)  # thin lines: nothing inside the box
    one = apply("box_lines", x, inset=3.5, sides=1, jitter=0.0, tilt=0.0, line_width=1.0,
                level=(1.0, 1.0))[:, 0]
    counts = sum((line > 0.99).all(dim=1).int()
                 for line in (one[:, 3, :], one[:, 24, :], one[:, :, 3].flatten(1),
                              one[:, :, 24].flatten(1)))
    assert torch.all(counts == 1)


def test_box_lines_add_to_the_digit():
    x = square(8, 10, 18)
    out = apply("box_lines", x, inset=12.5, sides=4, jitter=0.0, tilt=0.0)
    assert torch.all(out >= x)  # printed lines never erase ink


def test_neighbours_are_other_images_of_the_batch():
    for n in (2, 3, 10, 100):
        nb1 = _neighbours(n, gen(1), 1)
        assert sorted(nb1.tolist()) == list(range(n))  # each image lends itself once
        assert torch.all(nb1 != torch.arange(n))
    nb2 = _neighbours(10, gen(1), 2)
    assert torch.all(nb2 != torch.arange(10))


def test_neighbor_fragment_shows_another_digit_at_the_side():
    # Image i holds a block of brightness (i + 1) / 20: a fragment's value names its source.
    n = 19
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        x[i, :, 4:24, 4:24] = (i + 1) / 20
    out = apply("neighbor_fragment", x, spacing=20.0, both_prob=0.0, jitter=0.0)
    for i in range(n):
        added = out[i, 0] - x[i, 0]
        cols = added.abs().sum(dim=0).nonzero().flatten()
        assert len(cols) > 0
        assert cols.max() < 4 or cols.min() > 23  # only in the margin beside the digit
        values = set(out[i, 0][added > 0].unique().tolist())
        assert values and (i + 1) / 20 not in values
    both = apply("neighbor_fragment", x, spacing=20.0, both_prob=1.0, jitter=0.0)
    left, right = (both - x)[:, 0, :, :4], (both - x)[:, 0, :, 24:]
    assert torch.all(left.sum(dim=(1, 2)) > 0) and torch.all(right.sum(dim=(1, 2)) > 0)


def test_shadow_lifts_the_background_and_fades_the_ink():
    lift, fade = 0.4, 0.7
    blank = apply("shadow", torch.zeros(64, 1, 28, 28), lift=lift, fade=fade)
    ink = apply("shadow", torch.ones(64, 1, 28, 28), lift=lift, fade=fade)  # same draws
    assert blank.min() >= 0 and blank.max() <= lift + 1e-6
    assert torch.all(blank.amax(dim=(1, 2, 3)) > 0.5 * lift)  # every image gets a shadow
    contrast = ink - blank
    assert contrast.min() >= 1 - fade - 1e-6
    assert torch.all(contrast.amin(dim=(1, 2, 3)) < 1 - 0.3 * fade)


def test_shadow_is_smooth():
    lift = 0.6
    out = apply("shadow", torch.zeros(128, 1, 28, 28), lift=lift, fade=0.8)
    step = torch.maximum((out[..., 1:, :] - out[..., :-1, :]).abs().amax(),
                         (out[..., :, 1:] - out[..., :, :-1]).abs().amax())
    assert step <= lift / 3 + 1e-6  # the penumbra is at least 3 px wide


def test_ladders_load_with_five_levels():
    suite = load_suite(str(ROOT / "shifts" / "parts" / "border.toml"))
    assert set(suite.shift_names) == {"scan_border", "crop_shift", "box_lines",
                                      "neighbor_fragment", "shadow"}
    insets = [suite.params("box_lines", s)["inset"] for s in range(1, 6)]
    assert insets == sorted(insets) and insets[-1] > 4  # lines reach the digit's box at s5
    spacing = [suite.params("neighbor_fragment", s)["spacing"] for s in range(1, 6)]
    assert spacing == sorted(spacing, reverse=True)
