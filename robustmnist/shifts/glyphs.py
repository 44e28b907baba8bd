"""The pinned font faces and their glyph bank: the manifest (``fonts/manifest.toml``), our own
outline rasteriser and the cached bank of every (face, digit) glyph that the print families
(fonts, print_scan, dot_matrix, euro's printed digits, camera_print) draw from.

Why our own rasteriser instead of PIL/FreeType: the set must be byte-identical on any
machine, and FreeType's output varies with its version (bundled differently in every Pillow
wheel) and its hinting. Filling the flattened outline with a non-zero-winding scanline in
numpy depends on nothing but the font file, which ``fonts/manifest.toml`` pins by sha256.
"""

from __future__ import annotations

import functools
import logging
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..assets import fonts_dir
from ..data.datasets import cache_dir
from ..errors import UserError
from ..fileio import atomic_save_npz, sha256_bytes, sha256_file

CATEGORIES = ("sans", "serif", "slab", "mono", "ocr", "display", "segment", "handwriting")
FACE_SETS = ("regular", "upright", "all")
# Evaluation sets draw only "eval" faces and --augment only "train" faces (whole families on one
# side, pinned in fonts/manifest.toml), so a model trained on print still meets unseen designs.
SPLITS = ("eval", "train", "all")
DIGITS = "0123456789"

CANVAS = 48  # hi-res glyph canvas, px
GLYPH_BOX = 32  # the glyph's larger side in the canvas
SUPERSAMPLE = 8  # coverage is counted on an 8×8 grid of samples per canvas pixel
HIRES_PER_PX = GLYPH_BOX / 20  # canvas px per pixel of the framed 28×28 digit (20 px box)
CURVE_STEPS = 12  # line segments per Bézier piece; < 0.02 canvas px from the true curve
RASTER_VERSION = 2  # bump when rasterise() changes its output


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Face:
    file: str
    family: str
    style: str
    weight: str  # thin, light, regular, medium, semibold, bold, black
    italic: bool
    category: str
    package: str
    license: str
    sha256: str
    split: str = "eval"  # "eval" or "train" (see SPLITS)
    tags: tuple[str, ...] = ()  # condensed, rounded, stencil, typewriter, signage, ...

    @property
    def is_regular(self) -> bool:
        return self.weight in ("regular", "medium") and not self.italic


def manifest_path(root: Path | None = None) -> Path:
    return (root or fonts_dir()) / "manifest.toml"


@functools.lru_cache(maxsize=4)
def _load_manifest(path: str) -> tuple[Face, ...]:
    spec = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    keys = Face.__dataclass_fields__
    return tuple(Face(**{k: (tuple(v) if k == "tags" else v) for k, v in entry.items()
                         if k in keys}) for entry in spec["font"])


def load_manifest(root: Path | None = None) -> tuple[Face, ...]:
    """Every pinned face, in manifest order (the order glyph-bank indices refer to)."""
    return _load_manifest(str(manifest_path(root)))


def select_faces(faces: tuple[Face, ...], category: str = "all", which: str = "all",
                 split: str = "eval") -> list[int]:
    """Indices of the faces in ``category`` (or "all") that belong to the face set ``which``:
    "regular" (upright book/medium weight), "upright" (any weight, no italics) or "all", and to
    the ``split`` ("eval" faces for evaluation sets, "train" faces for augmentation, or "all")."""
    if category != "all" and category not in CATEGORIES:
        raise UserError(f"unknown font category '{category}'. Use all or {', '.join(CATEGORIES)}")
    if which not in FACE_SETS:
        raise UserError(f"unknown face set '{which}'. Use {', '.join(FACE_SETS)}")
    if split not in SPLITS:
        raise UserError(f"unknown font split '{split}'. Use {', '.join(SPLITS)}")
    keep = []
    for i, f in enumerate(faces):
        if category != "all" and f.category != category:
            continue
        if split != "all" and f.split != split:
            continue
        if which == "regular" and not f.is_regular:
            continue
        if which == "upright" and f.italic:
            continue
        keep.append(i)
    if not keep:
        raise UserError(f"no pinned font is in category '{category}' with face set '{which}' "
                        f"and split '{split}'")
    return keep


# --------------------------------------------------------------------------- rasteriser

_T = np.linspace(0, 1, CURVE_STEPS + 1)[1:, None]


# Bernstein weights: flattened points of a Bézier piece = weights @ control points.
_QUAD = np.hstack([(1 - _T) ** 2, 2 * (1 - _T) * _T, _T**2])


_CUBIC = np.hstack([(1 - _T) ** 3, 3 * (1 - _T) ** 2 * _T, 3 * (1 - _T) * _T**2, _T**3])


def _flatten_contours(font, char: str) -> list[np.ndarray]:
    """The glyph of ``char`` as closed polygons in font units (y up), Béziers flattened."""
    from fontTools.pens.basePen import BasePen

    class _Flatten(BasePen):
        def __init__(self, glyph_set):
            super().__init__(glyph_set)
            self.contours: list[list[np.ndarray]] = []  # pieces of points, joined at the end
            self.last = np.zeros(2)

        def _moveTo(self, p):
            self.last = np.asarray(p, dtype=np.float64)
            self.contours.append([self.last[None]])

        def _lineTo(self, p):
            self.last = np.asarray(p, dtype=np.float64)
            self.contours[-1].append(self.last[None])

        def _curve(self, weights, *ctrl):
            pts = weights @ np.vstack([self.last, np.asarray(ctrl, dtype=np.float64)])
            self.contours[-1].append(pts)
            self.last = pts[-1]

        def _qCurveToOne(self, p1, p2):
            self._curve(_QUAD, p1, p2)

        def _curveToOne(self, p1, p2, p3):
            self._curve(_CUBIC, p1, p2, p3)

    cmap = font.getBestCmap() or {}
    name = cmap.get(ord(char))
    if name is None:
        return []
    glyph_set = font.getGlyphSet()
    pen = _Flatten(glyph_set)
    glyph_set[name].draw(pen)  # components are decomposed by BasePen.addComponent
    polys = [np.concatenate(c) for c in pen.contours]
    return [p for p in polys if len(p) >= 3]


def rasterise(contours: list[np.ndarray], canvas: int = CANVAS, box: int = GLYPH_BOX,
              ss: int = SUPERSAMPLE) -> np.ndarray:
    """Coverage (uint8 0..ss², canvas×canvas) of polygons filled with the non-zero winding
    rule (TrueType's and CFF's), scaled so the larger bbox side is ``box`` px, centred.

    Scanline: every sample row finds where each edge crosses it, adds the edge's direction
    (+1 up, -1 down) at the first sample right of the crossing, and a cumulative sum along
    the row gives the winding number of every sample. Vectorised over rows and edges.
    """
    out = np.zeros((canvas, canvas), dtype=np.uint8)
    if not contours:
        return out
    pts = np.concatenate(contours)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float((hi - lo).max())
    if extent <= 0:
        return out
    scale = box / extent
    centre = (lo + hi) / 2
    edges = []
    for c in contours:
        p = np.empty_like(c)
        p[:, 0] = (c[:, 0] - centre[0]) * scale + canvas / 2
        p[:, 1] = (centre[1] - c[:, 1]) * scale + canvas / 2  # font y is up, image y is down
        edges.append(np.concatenate([p, np.roll(p, -1, axis=0)], axis=1))  # closes the contour
    e = np.concatenate(edges)
    e = e[e[:, 1] != e[:, 3]]  # horizontal edges never cross a sample row
    x0, y0, x1, y1 = e.T
    n = canvas * ss
    # Sample row r (centre (r + 0.5)/ss) crosses an edge when ymin <= centre < ymax (half-open,
    # so a vertex shared by two edges counts once): rows lo..hi-1 of that edge.
    lo = np.clip(np.ceil(np.minimum(y0, y1) * ss - 0.5), 0, n).astype(np.int64)
    hi = np.clip(np.ceil(np.maximum(y0, y1) * ss - 0.5), 0, n).astype(np.int64)
    count = hi - lo
    e_idx = np.repeat(np.arange(len(e)), count)
    r_idx = lo[e_idx] + np.arange(len(e_idx)) - np.repeat(np.cumsum(count) - count, count)
    t = ((r_idx + 0.5) / ss - y0[e_idx]) / (y1[e_idx] - y0[e_idx])
    xc = x0[e_idx] + t * (x1[e_idx] - x0[e_idx])
    col = np.clip(np.floor(xc * ss - 0.5).astype(np.int64) + 1, 0, n)
    direction = np.where(y1[e_idx] > y0[e_idx], 1, -1)
    acc = np.bincount(r_idx * (n + 1) + col, weights=direction, minlength=n * (n + 1))
    acc = acc.astype(np.int32).reshape(n, n + 1)[:, :n]
    inside = np.cumsum(acc, axis=1) != 0
    # Count the ss×ss samples of every pixel (two 1-axis sums: far faster than one 2-axis).
    rows_summed = inside.view(np.uint8).reshape(canvas, ss, n).sum(axis=1, dtype=np.uint8)
    return rows_summed.reshape(canvas, canvas, ss).sum(axis=2, dtype=np.uint8)


def render_face(path: Path) -> np.ndarray:
    """uint8 10×CANVAS×CANVAS coverage counts (0..16) of the digits 0-9 of one font file."""
    from fontTools.ttLib import TTFont

    # fontTools warns about harmless oddities of old fonts (a 1904 'created' date, unused
    # glyphs with negative advances); they say nothing about the digits, so keep them quiet.
    log = logging.getLogger("fontTools")
    level = log.level
    log.setLevel(logging.ERROR)
    font = TTFont(str(path), lazy=True)
    try:
        return np.stack([rasterise(_flatten_contours(font, ch)) for ch in DIGITS])
    finally:
        font.close()
        log.setLevel(level)


def _render_bank(root: Path, faces: tuple[Face, ...]) -> np.ndarray:
    bank = np.empty((len(faces), 10, CANVAS, CANVAS), dtype=np.uint8)
    for i, face in enumerate(faces):
        path = root / face.file
        if not path.is_file():
            raise UserError(f"pinned font {path} is missing; reinstall robustmnist")
        if sha256_file(path) != face.sha256:
            raise UserError(f"pinned font {path} does not match the sha256 in its manifest; "
                            "font sets would not be reproducible. Restore the file.")
        bank[i] = render_face(path)
    return bank


def _bank_cache_path(root: Path) -> Path:
    """Rendering takes seconds; the bank is cached beside the sets, keyed by everything that
    decides its bytes (the manifest pins every font file's sha256)."""
    key = sha256_bytes(manifest_path(root).read_bytes() + repr(
        (RASTER_VERSION, CANVAS, GLYPH_BOX, SUPERSAMPLE, CURVE_STEPS, DIGITS)).encode())
    return cache_dir() / "glyphs" / f"{key[:32]}.npz"


@functools.lru_cache(maxsize=4)
def _glyph_bank(root_str: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(root_str)
    faces = load_manifest(root)
    shape = (len(faces), 10, CANVAS, CANVAS)
    path = _bank_cache_path(root)
    bank = None
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                bank, digest = z["bank"], str(z["sha256"])
            if bank.shape != shape or sha256_bytes(bank.tobytes()) != digest:
                bank = None
        except Exception:  # noqa: BLE001 - an unreadable or damaged cache is re-rendered
            bank = None
    if bank is None:
        bank = _render_bank(root, faces)
        try:
            atomic_save_npz(path, bank=bank, sha256=np.array(sha256_bytes(bank.tobytes())))
        except OSError:
            pass  # a read-only cache only costs the rendering time next run
    glyphs = torch.from_numpy(bank).to(dtype).div_(SUPERSAMPLE**2)
    widths = stroke_width(glyphs.view(-1, 1, CANVAS, CANVAS)).view(len(faces), 10)
    return glyphs, widths


@functools.lru_cache(maxsize=4)
def _ink_span(root_str: str) -> tuple[int, int]:
    """Rows and columns [lo, hi) of the canvas holding the ink of any glyph of the bank."""
    ink = _glyph_bank(root_str, torch.float32)[0] > 0
    rows, cols = ink.any(dim=3).any(dim=(0, 1)), ink.any(dim=2).any(dim=(0, 1))
    lines = (rows | cols).nonzero().squeeze(1)
    return (int(lines.min()), int(lines.max()) + 1) if len(lines) else (0, 0)


def glyph_bank(root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(glyphs float F×10×CANVAS×CANVAS in [0, 1], stroke widths F×10 in canvas px), cached
    per process; rendering all faces takes a few seconds once."""
    return _glyph_bank(str(root or fonts_dir()), torch.get_default_dtype())


# --------------------------------------------------------------------------- measurements

def stroke_width(x: torch.Tensor) -> torch.Tensor:
    """Mean pen width (px) of the ink in each N×1×H×W image, from its area and outline.

    Model the ink as a pen stroke of length L and width w with round ends (a capsule): area
    A = Lw + πw²/4 and outline P = 2L + πw, so w = (P/2 - sqrt(P²/4 - πA)) / (π/2). A is the
    summed intensity and P the summed gradient magnitude (the coarea formula: for a shape
    anti-aliased to [0, 1], the integral of |∇x| is its boundary length), so it needs no
    thresholds or skeletons and works on whole batches. Within ~0.3 px for anti-aliased pens
    2-6 px wide at any angle; thinner pens read up to ~0.7 px too wide, because a sampled
    sub-2-px stroke never reaches full intensity, so its outline sums short.
    """
    v = F.pad(x[:, 0], (1, 1, 1, 1))
    # The gradient at every pixel corner from its 2×2 block: both components are taken at the
    # same point, so |∇x| is right for edges at any angle (plain forward differences mix two
    # points and misjudge diagonal outlines by up to ~20%).
    a, b, c, d = v[:, :-1, :-1], v[:, :-1, 1:], v[:, 1:, :-1], v[:, 1:, 1:]
    gx = (b - a + d - c) / 2
    gy = (c - a + d - b) / 2
    half = torch.sqrt(gx * gx + gy * gy).sum(dim=(1, 2)) / 2
    area = x[:, 0].sum(dim=(1, 2))
    # A disc has half² = πA exactly; rounding can push it below: then it is a dot of P/π.
    root = torch.sqrt((half * half - math.pi * area).clamp_min(0))
    return (half - root) / (math.pi / 2)
