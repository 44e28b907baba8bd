"""Digital shifts: jpeg, pixelate, downsample, binarize, canny_edges (robustmnist/shifts/digital.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robustmnist.data.datasets import to_float, to_uint8
from robustmnist.shifts import get_shift
from robustmnist.shifts.digital import canny_edge_map, jpeg_quant_table, jpeg_roundtrip
from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def strokes(n: int = 24, seed: int = 0) -> np.ndarray:
    """uint8 N×28×28 digit-like images: an anti-aliased ring and a slanted tail per image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    out = []
    for _ in range(n):
        cy, cx, rad, slope = rng.uniform(10, 14), rng.uniform(11, 16), rng.uniform(4, 7), rng.uniform(-1, 1)
        ring = np.clip(1.6 - np.abs(np.hypot(yy - cy, xx - cx) - rad), 0, 1)
        tail = np.clip(1.3 - np.abs((xx - cx) - slope * (yy - 20)), 0, 1) * (yy > cy) * (yy < 26)
        out.append(np.maximum(ring, tail))
    return (np.stack(out) * 255 + 0.5).astype(np.uint8)


def pillow_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    decoded = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buf)))
    return np.stack(decoded)


# --------------------------------------------------------------------------------------------
# jpeg


def test_quant_table_is_libjpegs():
    base = jpeg_quant_table(50)
    assert base[0, 0] == 16 and base[7, 7] == 99  # quality 50 is the standard table itself
    assert torch.equal(jpeg_quant_table(100), torch.ones(8, 8, dtype=base.dtype))
    assert jpeg_quant_table(10)[0, 0] == (16 * 500 + 50) // 100
    assert jpeg_quant_table(1).max() == 255  # baseline JPEG clamps to 8-bit tables


def _assert_like_pillow(images: np.ndarray, quality: int) -> None:
    ours = to_uint8(jpeg_roundtrip(to_float(images), quality)).astype(int)
    ref = pillow_jpeg(images, quality).astype(int)
    diff = np.abs(ours - ref)
    # libjpeg uses an integer DCT: a coefficient right at a rounding boundary may land the
    # other way, so a few pixels differ by a level or more; the artefacts themselves are
    # tens of levels (checked by the last assert).
    assert diff.mean() < 0.3, diff.mean()
    assert (diff <= 1).mean() > 0.95
    assert np.abs(ref - images.astype(int)).mean() > 5 * diff.mean()


@pytest.mark.parametrize("quality", [5, 25, 75])
def test_jpeg_decodes_like_pillows_libjpeg(quality):
    _assert_like_pillow(strokes(), quality)


@pytest.mark.mirror
def test_jpeg_decodes_like_pillow_on_mnist(mnist_test):
    for quality in (2, 10, 50):
        _assert_like_pillow(mnist_test.images[:200], quality)


def test_off_grid_jpeg_is_a_crop_of_a_larger_compressed_photo():
    x = to_float(strokes(16))
    out = get_shift("jpeg").fn(x, gen(3), quality=10)
    # The same phases the shift draws: the digit sits at (dy, dx) of a 40×40 canvas whose
    # border repeats the edge pixels, the canvas is compressed on its own grid, then cropped.
    phase = torch.randint(0, 64, (16,), generator=gen(3))
    for i in range(16):
        dy, dx = divmod(int(phase[i]), 8)
        canvas = F.pad(x[i : i + 1], (dx, 12 - dx, dy, 12 - dy), mode="replicate")
        expected = jpeg_roundtrip(canvas, 10)[..., dy : dy + 28, dx : dx + 28]
        assert torch.equal(out[i : i + 1], expected)


def test_jpeg_resaves_compound_and_quality_100_is_nearly_lossless():
    x = to_float(strokes())
    one = get_shift("jpeg").fn(x, gen(), quality=5, generations=1)
    four = get_shift("jpeg").fn(x, gen(), quality=5, generations=4)
    assert (four - x).abs().mean() > 1.3 * (one - x).abs().mean()
    best = get_shift("jpeg").fn(x, gen(), quality=100, random_grid=False)
    assert (best - x).abs().max() <= 2 / 255


# --------------------------------------------------------------------------------------------
# resampling


def test_pixelate_keeps_each_images_ink_and_is_blocky_on_a_per_image_grid():
    x = to_float(np.repeat(strokes(1), 8, axis=0))  # the same digit eight times
    out = get_shift("pixelate").fn(x, gen(), block=3.0)
    # Cell means times cell sizes: the total ink of every image is unchanged.
    assert torch.allclose(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=1e-5)
    # 3-px cells: every 3×3 cell of a 30×30 grid (28 px plus phase) holds one value, so an
    # image has at most 100 distinct values; and the grids differ between images.
    assert all(len(torch.unique(img)) <= 100 for img in out)
    assert not all(torch.equal(out[0], out[i]) for i in range(1, 8))


def test_downsample_equals_interpolate_down_then_up():
    x = to_float(strokes(8))
    out = get_shift("downsample").fn(x, gen(), size=11)
    small = F.interpolate(x, size=(11, 11), mode="bilinear", antialias=True, align_corners=False)
    ref = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)
    assert torch.allclose(out, ref, atol=1e-5)


# --------------------------------------------------------------------------------------------
# binarize


def test_binarize_gives_two_levels_and_without_noise_is_a_plain_threshold():
    x = to_float(strokes())
    plain = get_shift("binarize").fn(x, gen(), threshold=0.4, noise=0.0, jitter=0.0)
    assert torch.equal(plain, (x > 0.4).float())
    noisy = get_shift("binarize").apply(x, gen(), threshold=0.7, noise=0.2, jitter=0.1)
    assert set(torch.unique(noisy).tolist()) == {0.0, 1.0}
    # Ragged, not random: it still agrees with the clean threshold on most pixels.
    assert (noisy == (x > 0.7).float()).float().mean() > 0.9


# --------------------------------------------------------------------------------------------
# canny


def _golden_image() -> torch.Tensor:
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    ring = np.clip(1.6 - np.abs(np.hypot(yy - 11.5, xx - 13.0) - 6.0), 0, 1)
    d = np.abs((yy - 14) - 0.9 * (xx - 14)) / np.hypot(1, 0.9)
    bar = np.clip(1.3 - d, 0, 1) * ((yy > 14) & (yy < 26))
    return torch.from_numpy(np.maximum(ring, bar)).float()[None, None]


# skimage 0.26 feature.canny(image) of _golden_image (113 edge pixels), and with sigma 2,
# low 0.05, high 0.15 (105): np.packbits(edges.ravel()).tobytes().hex().
_GOLDEN = {
    (1.0, 0.1, 0.2): "0000000000000000000000000000001f0000060c0000c0600019f30003319800260c8002404"
                     "800240480024048002404800260c800333180019e10000c01800060cc0001f66000003300"
                     "00019800000cc00000620000018000000c00000060000000",
    (2.0, 0.05, 0.15): "0000000000000000000000000000003f80000c060001803000300180020e08006318c0042"
                       "0840042084004208400420840063b8c0020e080030008001800c000c0060003fc300000"
                       "60c0000306000018200000c000000600000030000001e0000000",
}


@pytest.mark.parametrize("params", list(_GOLDEN))
def test_canny_reproduces_skimage_edge_maps(params):
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(_GOLDEN[params]), dtype=np.uint8))
    expected = torch.from_numpy(bits[: 28 * 28].astype(bool)).view(1, 1, 28, 28)
    assert torch.equal(canny_edge_map(_golden_image(), *params), expected)


@pytest.mark.mirror
def test_canny_matches_skimage_on_mnist(mnist_test):
    feature = pytest.importorskip("skimage.feature")
    images = mnist_test.images[:300]
    ours = canny_edge_map(to_float(images))[:, 0].numpy()
    ref = np.stack([feature.canny(im / 255.0) for im in images])
    assert (ours == ref).all()


def test_canny_blend_runs_from_the_digit_to_pure_edges_as_mnistc():
    x = to_float(strokes(8))
    shift = get_shift("canny_edges")
    assert torch.equal(shift.fn(x, gen(), blend=0.0), x)
    suite = load_suite(str(PARTS / "mnistc-digital.toml"))
    params = suite.params("canny_edges", 1)
    assert params == {"blend": 1.0, "sigma": 1.0, "low": 0.1, "high": 0.2}  # skimage defaults
    edges = shift.apply(x, gen(), **params)
    assert set(torch.unique(edges).tolist()) == {0.0, 1.0}
    assert torch.equal(edges.bool(), canny_edge_map(x))
    # Between the two, the outline is laid over a dimmed digit.
    half = shift.fn(x, gen(), blend=0.5)
    assert torch.allclose(half, 0.5 * x + 0.5 * edges)
