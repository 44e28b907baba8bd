"""Printed-font digits: the pinned font collection and the ``fonts*`` generative shifts."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import torch

from robustmnist.assets import fonts_dir
from robustmnist.data.datasets import to_uint8
from robustmnist.data.framing import centre_of_mass, frame_mnist, ink_boxes
from robustmnist.errors import UserError
from robustmnist.fileio import sha256_file
from robustmnist.shifts import fonts as F
from robustmnist.shifts import glyphs as G
from robustmnist.shifts._draw import segments_distance, stroke_from_distance
from robustmnist.shifts.registry import get_shift
from robustmnist.shifts.suite import load_suite

ROOT = fonts_dir()
SUITE = ROOT.parent / "shifts" / "parts" / "fonts.toml"
REDISTRIBUTABLE = {"OFL-1.0", "OFL-1.1", "Apache-2.0", "Bitstream-Vera", "MIT AND Bitstream-Vera",
                   "GPL-3.0-or-later WITH Font-exception-2.0", "public-domain", "MIT",
                   "BSD-3-Clause", "BSD-3-Clause AND OFL-1.1", "CC0-1.0", "MIT OR OFL-1.1",
                   "GPL-2.0-or-later WITH Font-exception-2.0", "GPL-3.0-only WITH Font-exception-2.0",
                   "GPL-2.0-or-later WITH Font-exception-2.0 OR OFL-1.1", "GPL-2.0-or-later",
                   "GPL-3.0", "LGPL-2.0-or-later", "ParaType-Free-Font-License"}
NAMES = ["fonts", "fonts_sans", "fonts_serif", "fonts_mono", "fonts_ocr", "fonts_display",
         "fonts_segment", "fonts_handwriting"]
SIZE_BUDGET = 25_000_000  # bytes for fonts/ (fonts/collect_fonts.py states why)


def _gen(n=200, seed=0, **params):
    g = torch.Generator().manual_seed(seed)
    return F.generate_fonts(n, g, **params)


@pytest.fixture(scope="module")
def framed_bank():
    glyphs, _ = G.glyph_bank()
    nf = glyphs.shape[0]
    return frame_mnist(glyphs.reshape(-1, 1, G.CANVAS, G.CANVAS)).reshape(nf, 10, 1, 28, 28)


def test_manifest_pins_every_file_with_a_redistributable_licence():
    spec = tomllib.loads((ROOT / "manifest.toml").read_text(encoding="utf-8"))
    entries = spec["font"]
    assert len(entries) >= 200 and len({e["family"] for e in entries}) >= 150
    files = {e["file"] for e in entries}
    assert len(files) == len(entries), "a font file is listed twice"
    for e in entries:
        path = ROOT / e["file"]
        assert sha256_file(path) == e["sha256"], f"{e['file']} differs from its pinned sha256"
        assert e["license"] in REDISTRIBUTABLE, e
        assert (ROOT / e["license_file"]).is_file(), e["license_file"]
        assert e["category"] in G.CATEGORIES
        assert e["package"] and e["package_version"]
    # Every font file shipped is in the manifest (nothing unpinned sneaks into a set).
    shipped = {p.name for p in ROOT.iterdir() if p.suffix.lower() in {".ttf", ".otf"}}
    assert shipped == files
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert total < SIZE_BUDGET
    faces = G.load_manifest()
    for cat in G.CATEGORIES:
        assert G.select_faces(faces, cat, "regular"), f"no regular face in {cat}"
        assert len(G.select_faces(faces, cat, "all")) >= 5


def test_every_face_renders_all_ten_digits_mnist_framed(framed_bank):
    faces = G.load_manifest()
    x = framed_bank.reshape(-1, 1, 28, 28)
    where = [f"{faces[i // 10].file} digit {i % 10}" for i in range(len(x))]
    mass = x.sum(dim=(1, 2, 3))
    assert (mass > 20).all(), [w for w, m in zip(where, mass, strict=True) if m <= 20]
    boxes, _ = ink_boxes(x)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (torch.maximum(w, h) <= 20).all()
    assert (torch.maximum(w, h) >= 19).all()  # fitted to the box, not shrunk
    cy, cx = centre_of_mass(x)
    off = torch.maximum((cy - 14).abs(), (cx - 14).abs())
    assert (off <= 1.0).all(), [w for w, o in zip(where, off, strict=True) if o > 1]


def test_digits_of_one_face_differ_from_each_other(framed_bank):
    # A font whose digits map to one fallback glyph (a box, a blank) would render ten equal
    # images; a real face's ten digits are pairwise clearly different. Seven-segment digits
    # may differ by one segment (8 and 9, 8 and 0), so those faces get a lower bar.
    x = framed_bank[:, :, 0]
    diff = (x.unsqueeze(1) - x.unsqueeze(2)).abs().sum(dim=(-1, -2))  # F×10×10
    least = (diff + torch.eye(10) * 1e9).flatten(1).amin(dim=1)
    segment = torch.tensor([f.category == "segment" for f in G.load_manifest()])
    assert least[~segment].min() > 15
    assert least[segment].min() > 8


def test_rasteriser_fills_with_the_nonzero_rule():
    outer = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], dtype=float)  # counter-clockwise
    hole = outer[::-1] * 0.5 + 25  # reversed winding: a counter
    same = outer * 0.5 + 25  # same winding: overlap, still filled (non-zero, not even-odd)
    ring = G.rasterise([outer, hole], canvas=48, box=32, ss=8) / 64
    solid = G.rasterise([outer, same], canvas=48, box=32, ss=8) / 64
    assert ring[24, 24] == 0 and ring[10, 10] == 1 and ring[24, 10] == 1
    assert solid[24, 24] == 1
    # Area is exact up to the sampling grid: 32² outer minus 16² hole.
    assert abs(ring.sum() - (32**2 - 16**2)) < 1e-6
    assert abs(solid.sum() - 32**2) < 1e-6


@pytest.mark.parametrize("angle", [0.0, 0.4, 0.785, 1.3, 2.0])
def test_stroke_width_estimates_drawn_pens_at_any_angle(angle):
    widths = torch.tensor([2.0, 2.5, 3.0, 3.5, 4.0])
    n = len(widths)
    a = torch.full((n,), angle)
    c = torch.full((n, 2), 14.3)
    d = torch.stack([torch.cos(a), torch.sin(a)], 1) * 7
    x = stroke_from_distance(segments_distance(c - d, c + d, 28, 28), widths).unsqueeze(1)
    est = G.stroke_width(x)
    assert torch.allclose(est, widths, atol=0.35), est


def test_generation_is_deterministic_balanced_and_chunk_independent(monkeypatch):
    params = load_suite(str(SUITE)).params("fonts", 5)
    x1, y1 = _gen(150, seed=7, **params)
    x2, y2 = _gen(150, seed=7, **params)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.bincount(y1, minlength=10).tolist() == [15] * 10
    x3, _ = _gen(150, seed=8, **params)
    assert not torch.equal(x1, x3)
    monkeypatch.setattr(F, "CHUNK", 40)
    x4, _ = _gen(150, seed=7, **params)
    assert np.array_equal(to_uint8(x1), to_uint8(x4))


def test_clean_level_is_exactly_the_category_glyphs_framed(framed_bank):
    # Clean regular upright print (no defect, as the ladder's defects start from): each digit must
    # be one of the framed glyphs of a regular face of the requested category, with its label.
    faces = G.load_manifest()
    params = {"category": "ocr", "faces": "regular"}
    x, y = get_shift("fonts_ocr").generate(100, torch.Generator().manual_seed(0), **params)
    ocr = G.select_faces(faces, "ocr", "regular")
    assert all(faces[i].category == "ocr" and faces[i].is_regular for i in ocr)
    bank = to_uint8(framed_bank[ocr].reshape(-1, 1, 28, 28)).reshape(len(ocr), 10, 28, 28)
    got = to_uint8(x)
    for img, label in zip(got, y.tolist(), strict=True):
        assert any(np.array_equal(img, bank[f, label]) for f in range(len(ocr)))


def test_clean_print_looks_like_mnist_ink(mnist_test):
    from robustmnist.data.datasets import to_float

    x, _ = _gen(300, seed=1, category="all", faces="regular")
    m = to_float(mnist_test.images[:1000])
    # MNIST: peak ~1.0, mean of bright pixels ~0.88, median pen ~2.3 px.
    assert x.amax(dim=(1, 2, 3)).min() > 0.95
    assert abs(x[x > 0.5].mean() - m[m > 0.5].mean()) < 0.04
    assert abs(G.stroke_width(x).median() - G.stroke_width(m).median()) < 0.5


def test_severity_ladder_moves_away_from_clean_print():
    suite = load_suite(str(SUITE))
    clean, _ = _gen(200, seed=3, **suite.params("fonts", 1))
    dist = []
    for s in range(2, 6):
        x, _ = _gen(200, seed=3, **suite.params("fonts", s))
        dist.append((x - clean).abs().mean().item())
    assert dist == sorted(dist), dist
    assert dist[0] > 0.005


def test_weight_change_thickens_and_thins_strokes():
    glyphs, _ = G.glyph_bank()
    x = glyphs[:8, 4].unsqueeze(1)  # regular faces first: the 4s
    w0 = G.stroke_width(x)
    assert (G.stroke_width(F.change_weight(x, torch.full((8,), 1.0))) > w0 + 1).all()
    assert (G.stroke_width(F.change_weight(x, torch.full((8,), -0.5))) < w0).all()


def test_registry_and_suite_part():
    suite = load_suite(str(SUITE))
    for name in NAMES:
        shift = get_shift(name)
        assert shift.family == "fonts" and shift.kind == "generative"
        assert len(suite.shift_params[name]) == 5
    assert suite.params("fonts_serif", 3)["category"] == "serif"


def test_bad_parameters_fail_with_a_message():
    with pytest.raises(UserError, match="category"):
        _gen(10, category="gothic")
    with pytest.raises(UserError, match="face set"):
        _gen(10, faces="bolder")
    with pytest.raises(UserError, match="sharpness"):
        _gen(10, sharpness=1.0)


def test_fast_dilation_matches_max_pool():
    # A speed-up that must not change a byte of any set (the pinned mCE reference holds the
    # sets' digests): shifted-view maxima vs max_pool2d, on ink (>= 0) and on the negated ink
    # that thinning dilates.
    import torch.nn.functional as F

    from robustmnist.shifts.fonts import _dilate

    g = torch.Generator().manual_seed(0)
    for x in (torch.rand(6, 1, 19, 23, generator=g), -torch.rand(6, 1, 19, 23, generator=g)):
        assert torch.equal(_dilate(x, 2), F.max_pool2d(x, 3, stride=1, padding=1))
        plus = torch.maximum(F.max_pool2d(x, (3, 1), stride=1, padding=(1, 0)),
                             F.max_pool2d(x, (1, 3), stride=1, padding=(0, 1)))
        assert torch.equal(_dilate(x, 1), plus)


@pytest.mark.parametrize("ratio", [2, 4, 7])
def test_area_resample_is_roi_align(ratio):
    # frame_mnist's resampling as two matrix products must give torchvision's roi_align
    # (aligned=True) up to float rounding, boxes reaching past the edges included: the pinned
    # sets were made with roi_align, and 1e-13 is far below a quantisation step (1/255).
    from torchvision.ops import roi_align

    from robustmnist.data.framing import area_resample

    g = torch.Generator().manual_seed(ratio)
    n = 300
    x = torch.rand(n, 1, 40, 36, generator=g, dtype=torch.float64)
    lo = torch.rand(n, 2, generator=g, dtype=torch.float64) * 44 - 4  # some boxes start outside
    side = 1 + torch.rand(n, 1, generator=g, dtype=torch.float64) * 40
    boxes = torch.cat([lo, lo + side], dim=1)
    rois = torch.cat([torch.arange(n, dtype=torch.float64).view(-1, 1), boxes], dim=1)
    ref = roi_align(x, rois, output_size=(20, 20), spatial_scale=1.0, sampling_ratio=ratio, aligned=True)
    ours = area_resample(x, boxes, 20, ratio)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-13
    # each image depends on itself only: a part of the batch gives the same bytes
    assert torch.equal(area_resample(x[7:19], boxes[7:19], 20, ratio), ours[7:19])


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resize_as_matrices_is_interpolate(mode):
    # the coarse random fields of the print shifts go through resize(): it must give what
    # F.interpolate gives (the pinned sets were made with it), also for a window of columns
    import torch.nn.functional as tF

    from robustmnist.shifts._ops import resize

    g = torch.Generator().manual_seed(1)
    for size_in, size_out in (((4, 4), (28, 28)), ((4, 9), (64, 144)), ((3, 5), (22, 47)), ((24, 24), (48, 48))):
        x = torch.rand(20, 1, *size_in, generator=g, dtype=torch.float64)
        ref = tF.interpolate(x, size=size_out, mode=mode, align_corners=False)
        assert (resize(x, *size_out, mode) - ref).abs().max() < 1e-14
        part = resize(x, *size_out, mode, cols=(3, size_out[1] - 2))
        assert (part - ref[..., 3 : size_out[1] - 2]).abs().max() < 1e-14
