"""Photo framing (data/photo.py): the digit is found in photo-like images the camera renderer
makes (light, frame edge, neighbour, ruled lines), where the old lift-and-box framing keeps
frames and lines as ink; small scans keep their bytes; faint ink under noise takes the
fallback, blank paper stays blank; a large photo frames like its small copy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustmnist.data.framing import detect_dark_on_light, frame_mnist, lift_ink
from robustmnist.data.photo import DOUBT_EMPTY, DOUBT_FALLBACK, frame_photo, frame_real, frame_real_report
from robustmnist.shifts import camera
from robustmnist.shifts.camera import photograph


def _old(img: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[-2:]
    y = torch.where(detect_dark_on_light(img).view(-1, 1, 1, 1), 1 - img, img)
    return frame_mnist(lift_ink(y), sampling_ratio=max(2, math.ceil(max(h, w) / 20) * 2))


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-9)


_STROKES = (  # pen strokes of a few digits, in 28-px coordinates
    [(14, 5), (9, 8), (8, 14), (9, 20), (14, 23), (19, 20), (20, 14), (19, 8), (14, 5)],  # 0
    [(15, 5), (13, 23)],  # 1
    [(8, 6), (20, 6), (12, 23)],  # 7
    [(17, 23), (17, 5), (8, 17), (21, 17)],  # 4
    [(9, 8), (14, 5), (19, 8), (18, 13), (9, 23), (20, 23)],  # 2
)


@pytest.fixture(scope="module")
def digits():
    """Line drawings of digits, 28×28 white on black, MNIST-sized (the test suite has no MNIST)."""
    from PIL import Image, ImageDraw

    out = []
    for pts in _STROKES * 4:
        im = Image.new("L", (112, 112), 0)
        ImageDraw.Draw(im).line([(4 * x, 4 * y) for x, y in pts], fill=255, width=10, joint="curve")
        out.append(np.asarray(im.resize((28, 28), Image.Resampling.BOX), dtype=np.float64) / 255)
    return torch.from_numpy(np.stack(out)).unsqueeze(1)


@pytest.mark.parametrize("scene", [dict(light=0.6, vignette=0.5, shadow=0.5), dict(frame=1.0),
                                   dict(neighbour=1.0), dict(lines=1.0), dict(grid=1.0)],
                         ids=["light", "frame", "neighbour", "lines", "grid"])
def test_the_digit_is_found(digits, scene):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        raw = photograph(digits, torch.Generator().manual_seed(1), framed=False, **scene)
    finally:
        torch.set_default_dtype(prev)
    clean = frame_mnist(digits)
    new, _ = frame_photo(raw)
    c_new, c_old = _corr(new, clean).mean(), _corr(_old(raw), clean).mean()
    assert c_new > 0.8, (c_new, c_old)
    assert c_new > c_old + 0.3, (c_new, c_old)


def test_small_scans_keep_their_framing(digits):
    # a tight 16-px crop (USPS-like) and an MNIST-like digit: the photo path's components keep
    # all the ink, so the bytes are those of the plain lift-and-box framing
    small = torch.nn.functional.interpolate(digits[:, :, 4:24, 4:24], size=(16, 16), mode="area")
    for x in (small, digits):
        ratio = max(2, math.ceil(max(x.shape[-2:]) / 20) * 2)
        old = frame_mnist(lift_ink(x), sampling_ratio=ratio)
        assert torch.equal(frame_real(x[:, 0].numpy()), old.float())


def test_doubtful_framings_are_named():
    blank = np.full((64, 64), 0.8)
    edge = np.full((64, 64), 0.85)
    edge[:, :10] = 0.1  # only a frame edge: the ink touches the border
    _, why = frame_real_report([blank, edge])
    assert DOUBT_EMPTY in why[0]
    assert why[1]


def test_real_sets_count_doubtful_framings():
    from robustmnist.data.real import real_from_arrays
    from robustmnist.metrics.real import framing_gallery
    from robustmnist.report.sections.real import _doubtful_line

    ok = np.full((64, 64), 0.85)
    ok[20:44, 30:35] = 0.1  # a "1" in the middle
    blank = np.full((64, 64), 0.85)
    rs = real_from_arrays("mine", [ok, blank, ok], np.array([1, 1, 1]))
    assert rs.doubtful[0] == () and DOUBT_EMPTY in rs.doubtful[1]
    d = framing_gallery(rs)["doubtful"]
    assert d["count"] == 1 and d["n"] == 3 and d["indices"] == [1] and d["before_png"]
    assert _doubtful_line(d).startswith("1 of 3 framings look doubtful")


# faint_ink.py's scene: uneven light, a shadow, paper grain
_FAINT_SCENE = dict(paper=0.75, texture=0.03, light=0.4, vignette=0.3, shadow=0.3)


def _faint_photos(digits: torch.Tensor, ink: float, noise: float, seed: int) -> torch.Tensor:
    """Camera crops with every digit's ink at darkness ``ink`` exactly (the renderer draws ink..1)."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(seed)
        p = {**camera._DEFAULTS, **_FAINT_SCENE, "ink": ink, "noise": noise}
        d = camera._draw(len(digits), g)
        d["ink"].zero_()
        noise_px = torch.randn((len(digits), 1, camera.CANVAS, camera.CANVAS), generator=g)
        return camera._optics(camera._scene(digits, d, p), d, p, noise_px)
    finally:
        torch.set_default_dtype(prev)


def test_faint_noisy_ink_takes_the_fallback(digits):
    # ink 0.25 dark under noise sigma 0.025: the threshold's noise floor swallowed every one of
    # these (framed blank, correlation 0.0 before the fallback); measured after: mean 0.89,
    # lowest 0.73, all 20 by the fallback
    raw = _faint_photos(digits, ink=0.25, noise=0.025, seed=2)
    framed, why = frame_photo(raw)
    c = _corr(framed, frame_mnist(digits))
    assert c.mean() > 0.75 and c.min() > 0.5, c
    assert all(DOUBT_FALLBACK in w for w in why), why  # doubtful: the model sees a guess


def test_blank_paper_stays_blank():
    # the same light, grain and noise with no digit: the fallback must not make one up
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        raw = photograph(torch.zeros(32, 1, 28, 28), torch.Generator().manual_seed(3), framed=False,
                         noise=0.025, **_FAINT_SCENE)
    finally:
        torch.set_default_dtype(prev)
    framed, why = frame_photo(raw)
    assert framed.abs().amax() == 0
    assert all(DOUBT_EMPTY in w and DOUBT_FALLBACK not in w for w in why), why


def test_a_large_photo_frames_like_its_small_copy(digits):
    # a 4000×3000 phone photo (shrunk by 8×8 block means first) and the same photo at 400×300
    from PIL import Image

    digit = Image.fromarray((digits[2, 0].numpy() * 255).astype(np.uint8))
    ink = np.asarray(digit.resize((1680, 1680), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    yy, xx = np.mgrid[0:3000, 0:4000].astype(np.float32)
    page = 0.85 - 0.2 * xx / 4000 - 0.1 * yy / 3000  # light falling off across the page
    page[660:2340, 1160:2840] *= 1 - 0.8 * ink
    page += np.random.default_rng(0).normal(0, 0.02, page.shape).astype(np.float32)
    big = page.clip(0, 1)
    small = np.asarray(Image.fromarray(big).resize((400, 300), Image.Resampling.BOX))
    (a, b), why = frame_real_report([big, small])
    assert why == [(), ()]
    assert _corr(a[None], b[None]).item() > 0.97
    assert _corr(a[None], frame_mnist(digits[2:3]).float()).item() > 0.8  # and it is the 7
