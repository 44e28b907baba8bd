"""Blur family: each kernel is the optics it is named after, and MNIST-C's settings mean what
they meant in MNIST-C's code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from robustmnist.data.framing import centre_of_mass
from robustmnist.shifts import get_shift
from robustmnist.shifts._ops import filter_per_image, random_local_swaps
from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts"
BLUR = ("gaussian_blur", "defocus_blur", "motion_blur", "glass_blur")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _points(n: int, y: int = 14, x: int = 14) -> torch.Tensor:
    """n black images with one white pixel: the output is the kernel itself."""
    img = torch.zeros(n, 1, 28, 28)
    img[:, 0, y, x] = 1.0
    return img


def _digits(n: int = 32) -> torch.Tensor:
    g = _gen(3)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:22, 10:18] = torch.rand(n, 1, 16, 8, generator=g)
    return x


def test_gaussian_blur_is_scipys_gaussian_filter_and_jitter_varies_it_per_image():
    x = _digits(4)
    y = get_shift("gaussian_blur").fn(x, _gen(), sigma=1.3)
    ref = np.stack([gaussian_filter(im, 1.3, mode="nearest") for im in x[:, 0].numpy()])
    np.testing.assert_allclose(y[:, 0].numpy(), ref, atol=1e-5)
    same = _digits(1).expand(16, 1, 28, 28)
    y = get_shift("gaussian_blur").fn(same, _gen(), sigma=1.3, jitter=0.2)
    peaks = y.amax(dim=(1, 2, 3))
    assert peaks.std() > 1e-3  # each image had its own focus


def test_defocus_turns_a_point_into_a_flat_disk_of_the_given_radius():
    y = get_shift("defocus_blur").fn(_points(1), _gen(), radius=3.0)[0, 0]
    assert y.sum().item() == pytest.approx(1.0, abs=1e-5)
    yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    d = ((yy - 14) ** 2 + (xx - 14) ** 2).float().sqrt()
    inside, outside = y[d <= 2.5], y[d >= 3.5]
    assert torch.all(outside.abs() < 1e-6)
    assert inside.max() - inside.min() < 1e-5  # flat, unlike a Gaussian


def test_motion_blur_is_imagemagicks_one_sided_kernel_at_mnistc_settings():
    """At angle 0 bilinear sampling is exact, so the result must be ImageMagick's sum."""
    mc = load_suite(str(PARTS / "mnistc-blur.toml")).params("motion_blur", 1)
    assert mc == {"radius": 10.0, "sigma": 3.0, "max_angle": 45.0, "centred": False}
    x = _digits(3)
    y = get_shift("motion_blur").fn(x, _gen(), **{**mc, "max_angle": 0.0})
    t = np.arange(21)  # width = 2 ceil(radius) + 1
    w = np.exp(-t**2 / (2 * 3.0**2))
    w /= w.sum()
    xp = np.pad(x[:, 0].numpy(), ((0, 0), (0, 0), (0, 21)))
    ref = sum(wi * xp[:, :, ti : ti + 28] for ti, wi in zip(t, w, strict=True))
    np.testing.assert_allclose(y[:, 0].numpy(), ref, atol=2e-4)


def test_motion_blur_streaks_points_along_a_random_direction_per_image():
    y = get_shift("motion_blur").fn(_points(64), _gen(), radius=4.0, sigma=4.0)[:, 0]
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    w = y / y.sum(dim=(1, 2), keepdim=True)
    my, mx = (w * yy).sum(dim=(1, 2)), (w * xx).sum(dim=(1, 2))
    assert torch.allclose(my, torch.full_like(my, 14.0), atol=0.05)  # centred: the digit stays
    assert torch.allclose(mx, torch.full_like(mx, 14.0), atol=0.05)
    cyy = (w * (yy - my[:, None, None]) ** 2).sum(dim=(1, 2))
    cxx = (w * (xx - mx[:, None, None]) ** 2).sum(dim=(1, 2))
    cxy = (w * (yy - my[:, None, None]) * (xx - mx[:, None, None])).sum(dim=(1, 2))
    cov = torch.stack([torch.stack([cyy, cxy], -1), torch.stack([cxy, cxx], -1)], -2)
    ev = torch.linalg.eigvalsh(cov)
    assert torch.all(ev[:, 1] > 2.0) and torch.all(ev[:, 0] < 0.2 * ev[:, 1])  # a thin streak
    angle = torch.atan2(2 * cxy, cxx - cyy) / 2  # the streak's axis, in (-90°, 90°]
    assert angle.std() > 0.6  # directions spread over the half circle, image by image


def test_uncentred_motion_blur_moves_the_digit_like_mnistc():
    x = _digits(64)
    mc = load_suite(str(PARTS / "mnistc-blur.toml")).params("motion_blur", 1)
    y = get_shift("motion_blur").fn(x, _gen(), **mc)
    cy0, cx0 = centre_of_mass(x)
    cy1, cx1 = centre_of_mass(y)
    shift = torch.hypot(cy1 - cy0, cx1 - cx0)
    t = np.arange(21)  # the mean reach of ImageMagick's 21 half-Gaussian taps: 2.11 px
    w = np.exp(-t**2 / (2 * 3.0**2))
    assert shift.mean().item() == pytest.approx((t * w).sum() / w.sum(), abs=0.1)
    assert torch.all(cx1 < cx0)  # |angle| <= 45°: pixels read ahead, so the digit moves back


@pytest.mark.parametrize("size", [5, 15])  # both of its convolution paths
def test_filter_per_image_applies_each_image_its_own_kernel(size):
    g = _gen(1)
    x = torch.rand(3, 1, 28, 28, generator=g)
    k = torch.rand(3, size, size, generator=g)
    one_by_one = [F.conv2d(x[i : i + 1], k[i : i + 1, None], padding=size // 2) for i in range(3)]
    torch.testing.assert_close(filter_per_image(x, k), torch.cat(one_by_one), atol=2e-4, rtol=1e-5)


def _reference_swaps(rng: np.random.Generator, delta: int) -> np.ndarray:
    """The loop of ImageNet-C / MNIST-C glass_blur (one iteration) on a map of pixel ids."""
    ids = np.arange(784).reshape(28, 28)
    for h in range(28 - delta, delta, -1):
        for w in range(28 - delta, delta, -1):
            if rng.choice([True, False]):
                dx, dy = rng.integers(-delta, delta, size=(2,))
                hp, wp = h + dy, w + dx
                ids[h, w], ids[hp, wp] = ids[hp, wp], ids[h, w]
    return ids.reshape(-1)


def _moved(ids: np.ndarray) -> tuple[float, float]:
    """(share of pixels moved, their mean squared displacement), inner 16×16 only."""
    pos = np.arange(784)
    d2 = (pos // 28 - ids // 28) ** 2 + (pos % 28 - ids % 28) ** 2
    inner = ((ids // 28) >= 6) & ((ids // 28) < 22) & ((ids % 28) >= 6) & ((ids % 28) < 22)
    return float((d2[inner] > 0).mean()), float(d2[inner].mean())


@pytest.mark.parametrize("delta", [1, 2])
def test_parallel_swaps_move_pixels_as_often_as_mnistc_loop(delta):
    ids = torch.arange(784, dtype=torch.float32).reshape(1, 1, 28, 28).repeat(200, 1, 1, 1)
    ours = random_local_swaps(ids, _gen(), delta, iterations=1).reshape(200, 784).long().numpy()
    for row in ours:  # an exact permutation of each image's pixels
        assert np.array_equal(np.sort(row), np.arange(784))
    rng = np.random.default_rng(0)
    ref = np.stack([_reference_swaps(rng, delta) for _ in range(12)])
    share_ours, msd_ours = _moved(ours)
    share_ref, msd_ref = _moved(ref)
    # Measured: 0.58 vs 0.58 moved at delta 1, 0.62 vs 0.67 at 2 (a pixel's swap count is
    # binomial over the rounds here, source + target there: same mean, more zeros here).
    assert share_ours == pytest.approx(share_ref, abs=0.07)
    # The reference's raster loop can carry a value on for several steps; ours cannot, so its
    # mean squared move is a little smaller (1.1 vs 1.24 px² at delta 1, 3.0 vs 3.1 at 2).
    assert 0.75 * msd_ref < msd_ours <= 1.05 * msd_ref


def test_glass_blur_without_swaps_is_two_gaussian_blurs():
    x = _digits(4)
    y = get_shift("glass_blur").fn(x, _gen(), sigma=0.7, max_delta=1, iterations=2, swap_prob=0.0)
    once = np.stack([gaussian_filter(im, 0.7, mode="nearest") for im in x[:, 0].numpy()])
    once = np.floor(once * 255) / 255  # 8-bit, as the reference's np.uint8
    twice = np.stack([gaussian_filter(im, 0.7, mode="nearest") for im in once])
    np.testing.assert_allclose(y[:, 0].numpy(), twice, atol=1e-5)


@pytest.mark.parametrize("name", BLUR)
def test_blur_shifts_keep_the_ink_and_leave_their_input_alone(name):
    ladder = load_suite(str(PARTS / "blur.toml"))
    x = _digits(8)
    before = x.clone()
    y = get_shift(name).fn(x, _gen(), **ladder.params(name, 5))
    assert torch.equal(x, before)
    # Blurs spread ink, they do not add or remove it (the digit is away from the border).
    torch.testing.assert_close(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.01, atol=0.5)
