"""Print as it reaches a classifier: print_scan (page artefacts, small scans, cell crops) and
dot-matrix digits."""

from __future__ import annotations

import numpy as np
import torch

from robustmnist.assets import shifts_dir
from robustmnist.data.datasets import to_uint8
from robustmnist.data.framing import ink_boxes
from robustmnist.shifts import print_scan as P
from robustmnist.shifts.registry import all_shifts, get_shift
from robustmnist.shifts.suite import load_suite

PART = load_suite(str(shifts_dir() / "parts" / "fonts.toml"))


def _gen(name: str, n: int, seed: int = 0, **params):
    return get_shift(name).generate(n, torch.Generator().manual_seed(seed), **params)


def test_registered_in_the_fonts_family_with_five_levels():
    for name in ("print_scan", "dot_matrix", "fonts_display", "fonts_segment"):
        s = all_shifts()[name]
        assert s.family == "fonts" and s.kind == "generative"
        assert len(PART.shift_params[name]) == 5


def test_print_scan_is_deterministic_balanced_and_chunk_independent(monkeypatch):
    params = PART.params("print_scan", 5)
    x1, y1 = _gen("print_scan", 60, seed=4, **params)
    x2, y2 = _gen("print_scan", 60, seed=4, **params)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (60, 1, 28, 28) and 0 <= x1.min() and x1.max() <= 1
    assert torch.bincount(y1, minlength=10).tolist() == [6] * 10
    monkeypatch.setattr(P, "CHUNK", 7)
    x3, _ = _gen("print_scan", 60, seed=4, **params)
    assert np.array_equal(to_uint8(x1), to_uint8(x3))


def test_clean_cell_is_one_framed_digit_and_clutter_fills_the_frame():
    clean, _ = _gen("print_scan", 40, **PART.params("print_scan", 1))
    boxes, has_ink = ink_boxes(clean)
    assert has_ink.all()
    # A clean cell is the digit framed like MNIST: ink within the 20×20 box, centred.
    assert ((boxes[:, 3] - boxes[:, 1]) <= 21).all()
    assert (clean.amax(dim=(1, 2, 3)) > 0.9).all()
    # Cell lines on every side (box = 1): the framed ink reaches across the whole 20-px box in
    # both directions, because the lines are framed with the digit.
    boxed, _ = _gen("print_scan", 40, px=12, box=1.0, margin=0.3)
    b, _ = ink_boxes(boxed)
    assert ((b[:, 2] - b[:, 0]) >= 19).float().mean() > 0.9
    assert ((b[:, 3] - b[:, 1]) >= 19).float().mean() > 0.9


def test_grey_ink_and_glare_lower_the_ink_level():
    full, _ = _gen("print_scan", 40, contrast=1.0)
    grey, _ = _gen("print_scan", 40, contrast=0.4, glare=0.4)
    assert grey.amax(dim=(1, 2, 3)).mean() < full.amax(dim=(1, 2, 3)).mean() - 0.2


def test_dot_matrix_draws_the_rom_patterns():
    x, y = _gen("dot_matrix", 20, **PART.params("dot_matrix", 1))
    assert x.shape == (20, 1, 28, 28) and torch.bincount(y, minlength=10).tolist() == [2] * 10
    # Before framing, every dot centre is lit exactly where the 5×7 pattern has a dot.
    bits = P.DOT_PATTERNS
    canvas = P.dot_canvas(bits, torch.full((10, 7, 5), 0.4 * P._PITCH),
                          torch.zeros(10, 1, 1, dtype=torch.bool), torch.zeros(10))
    centres = canvas[:, 0, P._PITCH + P._PITCH // 2 :: P._PITCH, P._PITCH + P._PITCH // 2 :: P._PITCH]
    assert torch.equal(centres[:, :7, :5] > 0.5, bits.bool())
    assert canvas[:, :, : P._PITCH].max() == 0  # the margin stays dark


def test_dot_dropout_removes_dots():
    full, _ = _gen("dot_matrix", 50, dot=0.4)
    holes, _ = _gen("dot_matrix", 50, dot=0.4, dropout=0.3)
    assert holes.sum() < 0.85 * full.sum()


def test_severity_ladders_move_away_from_clean():
    for name in ("print_scan", "dot_matrix"):
        clean, _ = _gen(name, 100, seed=2, **PART.params(name, 1))
        dist = [(_gen(name, 100, seed=2, **PART.params(name, s))[0] - clean).abs().mean().item()
                for s in range(2, 6)]
        assert dist[-1] > dist[0] > 0.005, (name, dist)


def test_the_cell_window_gives_the_bytes_of_the_whole_strip(monkeypatch):
    # print_scan works on the columns a crop can see; widened to the whole strip it must give
    # the same set (float64, as sets are made), at px with short and long resampling periods.
    # Only the scanner blur's FFT sees another width: its rounding differs by ~1e-16.
    from robustmnist.shifts.sets import generation_precision, quantise

    cases = [dict(px=px, margin=0.25, neighbours=0.7, underline=0.5, box=0.6, spread=0.9,
                  toner=0.4, glare=0.3, blur=0.65, miscrop=1.5, faces="all") for px in (10, 11, 16)]
    with generation_precision():
        windowed = [_gen("print_scan", 30, seed=3, **c)[0] for c in cases]
        monkeypatch.setattr(P, "_window", lambda *a: (0, P.STRIP_W, 0, P.STRIP_W))
        whole = [_gen("print_scan", 30, seed=3, **c)[0] for c in cases]
    for c, a, b in zip(cases, windowed, whole, strict=True):
        assert (a - b).abs().max() < 1e-12, c["px"]
        assert np.array_equal(quantise(a), quantise(b)), c["px"]


def test_dot_canvas_runs_match_a_test_at_every_sample():
    from robustmnist.shifts.sets import generation_precision

    with generation_precision():  # float64, as sets are made
        _dot_canvas_matches_a_test_at_every_sample()


def _dot_canvas_matches_a_test_at_every_sample():
    g = torch.Generator().manual_seed(5)
    n, p, ss = 40, P._PITCH, 2
    bits = (torch.rand(n, 7, 5, generator=g) < 0.7).float()
    r = p * (0.2 + 0.4 * torch.rand(n, 7, 5, generator=g))
    square = (torch.rand(n, generator=g) < 0.5).view(-1, 1, 1)
    slant = 0.3 * torch.rand(n, generator=g)
    ys = (torch.arange(9 * p * ss) + 0.5) / ss - p
    xs = (torch.arange(7 * p * ss) + 0.5) / ss - p
    xsl = xs.view(1, 1, -1) + slant.view(-1, 1, 1) * (7 * p / 2 - ys.view(1, -1, 1))
    row = (ys / p).floor().long().view(1, -1, 1).expand_as(xsl)
    col = (xsl / p).floor().long()
    inside = (row >= 0) & (row < 7) & (col >= 0) & (col < 5)
    ri, ci, k = row.clamp(0, 6), col.clamp(0, 4), torch.arange(n).view(-1, 1, 1)
    dy, dx = ys.view(1, -1, 1) - (ri + 0.5) * p, xsl - (ci + 0.5) * p
    dist = torch.where(square, torch.maximum(dy.abs(), dx.abs()), torch.sqrt(dy * dy + dx * dx))
    ink = ((dist < r[k, ri, ci]) & inside & (bits[k, ri, ci] > 0)).float()
    expected = torch.nn.functional.avg_pool2d(ink.unsqueeze(1), ss)
    assert torch.equal(P.dot_canvas(bits, r, square, slant), expected.float())
