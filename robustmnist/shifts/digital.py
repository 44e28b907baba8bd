"""Digital shifts: what codecs, resamplers and image-processing pipelines do to a digit.

jpeg is a batched re-implementation of baseline greyscale JPEG (libjpeg's quality scaling and
its standard luminance table), so it needs no encoder and gives the same bytes on every
machine; tests/test_shifts_digital.py checks it against Pillow's libjpeg. canny_edges is a
batched port of ``skimage.feature.canny`` (MNIST-C's canny_edges is its default output);
see shifts/parts/mnistc-digital.toml.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ._ops import resize_matrix
from .registry import register

# ---------------------------------------------------------------------------------------------
# jpeg

# ITU-T T.81 Annex K.1, the luminance table every libjpeg-based encoder starts from.
_LUMA_QUANT = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float64,
)
_BLOCK = 8


def jpeg_quant_table(quality: int) -> torch.Tensor:
    """8×8 luminance quantisation table for a quality, as libjpeg's jpeg_set_quality builds it
    (integer arithmetic, entries clamped to 1..255 for baseline JPEG)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return torch.clamp(torch.div(_LUMA_QUANT * scale + 50, 100, rounding_mode="floor"), 1, 255)


def _dct_matrix() -> torch.Tensor:
    # Orthonormal DCT-II: identical to JPEG's FDCT, 1/4·C(u)C(v)·ΣΣ f·cos·cos.
    k = torch.arange(_BLOCK, dtype=torch.float64).view(-1, 1)
    n = torch.arange(_BLOCK, dtype=torch.float64).view(1, -1)
    d = torch.cos((2 * n + 1) * k * math.pi / (2 * _BLOCK)) * math.sqrt(2 / _BLOCK)
    d[0] /= math.sqrt(2)
    return d


# The 2-D DCT of a row-major 8×8 block is one 64×64 matrix (D ⊗ D): every block of the batch
# then goes through a single GEMM, far faster than thousands of tiny 8×8 products.
_DCT2 = torch.kron(_dct_matrix(), _dct_matrix())  # float64; cast to the batch where used


def _to_blocks(levels: torch.Tensor) -> torch.Tensor:
    """N×1×H×W -> (N·BH·BW)×64 row-major blocks, padding the partial blocks by repeating the
    last row/column as libjpeg does (28 px = 3½ blocks)."""
    n, _, h, w = levels.shape
    ph, pw = -h % _BLOCK, -w % _BLOCK
    if ph or pw:
        levels = F.pad(levels, (0, pw, 0, ph), mode="replicate")
    bh, bw = (h + ph) // _BLOCK, (w + pw) // _BLOCK
    return levels.view(n, bh, _BLOCK, bw, _BLOCK).transpose(2, 3).reshape(-1, _BLOCK * _BLOCK)


def _from_blocks(blocks: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    bh, bw = -(-h // _BLOCK), -(-w // _BLOCK)
    img = blocks.view(n, bh, bw, _BLOCK, _BLOCK).transpose(2, 3)
    return img.reshape(n, 1, bh * _BLOCK, bw * _BLOCK)[:, :, :h, :w]


def _codec_matrices(quality: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(encode, decode) 64×64 matrices with the quantiser folded in: a row of blocks times
    ``encode`` is DCT/table, ready to round; the rounded row times ``decode`` is the IDCT of
    the dequantised coefficients."""
    table = jpeg_quant_table(quality).to(torch.get_default_dtype()).reshape(-1, 1)
    return (_DCT2.T / table.T).to(like), (_DCT2 * table).to(like)


# libjpeg's IDCT descales by rounding halves up, and halves are common (a DC-only block
# decodes to DC/8); the 1e-3 keeps float error in the GEMM from flipping them.
_HALF_UP = 0.5 + 1e-3


def _codec(blocks: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode rows of 64 level-shifted samples (row-major 8×8 blocks of 8-bit
    levels minus 128, as JPEG codes them); returns level-shifted samples."""
    encode, decode = _codec_matrices(quality, blocks)
    # libjpeg rounds quantised coefficients half away from zero. Exact ties are common (8-bit
    # levels over small integer tables), so they are decided 2^-20 early: float error in the
    # GEMM (a few units in the last place, which differ between CPUs) cannot flip them.
    v = blocks @ encode
    coef = v.abs().add_(0.5 + 2.0**-20).floor_().mul_(v.sign())
    bias = torch.full((1, decode.shape[1]), _HALF_UP, device=blocks.device)
    return torch.addmm(bias, coef, decode).floor_().clamp_(-128.0, 127.0)


def jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode N×1×H×W images in [0, 1] as baseline greyscale JPEG, grid at (0, 0)."""
    n, _, h, w = x.shape
    shifted = torch.round(x.clamp(0.0, 1.0) * 255.0) - 128.0
    return (_from_blocks(_codec(_to_blocks(shifted), quality), n, h, w) + 128.0) / 255.0


@lru_cache(maxsize=8)
def _off_grid_indices(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For each of the 64 grid phases (dy·8 + dx): where each canvas pixel, laid out as rows
    of 64 block pixels, reads the image (edges repeated), and where each image pixel then
    sits in the canvas. Returns (into 64×C, back 64×H·W, blocks per canvas)."""
    bh, bw = -(-(h + _BLOCK - 1) // _BLOCK), -(-(w + _BLOCK - 1) // _BLOCK)
    dy = torch.arange(_BLOCK).repeat_interleave(_BLOCK).view(-1, 1)
    dx = torch.arange(_BLOCK).repeat(_BLOCK).view(-1, 1)
    src_r = (torch.arange(bh * _BLOCK) - dy).clamp(0, h - 1).view(-1, bh, 1, _BLOCK, 1)
    src_c = (torch.arange(bw * _BLOCK) - dx).clamp(0, w - 1).view(-1, 1, bw, 1, _BLOCK)
    into = (src_r * w + src_c).view(_BLOCK * _BLOCK, -1)
    # Canvas pixel (r, c) sits in the block-row layout at (r//8·BW + c//8)·64 + (r%8)·8 + c%8.
    r, c = torch.arange(h) + dy, torch.arange(w) + dx
    at_r = (r // _BLOCK) * (bw * _BLOCK * _BLOCK) + (r % _BLOCK) * _BLOCK
    at_c = (c // _BLOCK) * (_BLOCK * _BLOCK) + c % _BLOCK
    back = (at_r.unsqueeze(2) + at_c.unsqueeze(1)).view(_BLOCK * _BLOCK, -1)
    return into, back, bh * bw


def _jpeg_off_grid(shifted: torch.Tensor, quality: int, g: torch.Generator) -> torch.Tensor:
    """One JPEG generation of N×1×H×W level-shifted samples, the 8×8 grid at a random phase
    per image.

    The digit sits at (dy, dx) inside a canvas whose borders repeat its edge pixels, as if
    it had been cut out of a larger photo after compression. The way into the canvas (laid
    out as rows of 64 block pixels) and the way back are one flat gather each, with indices
    looked up per phase: no padding, cropping or block reshuffling copies.
    """
    n, _, h, w = shifted.shape
    into, back, blocks = (t.to(shifted.device) if torch.is_tensor(t) else t
                          for t in _off_grid_indices(h, w))
    phase = torch.randint(0, _BLOCK * _BLOCK, (n,), generator=g).to(shifted.device)
    canvas = shifted.reshape(n, -1).gather(1, into[phase])
    decoded = _codec(canvas.view(n * blocks, -1), quality).view(n, -1)
    return decoded.gather(1, back[phase]).view(n, 1, h, w)


@register(family="digital",
          description="JPEG compression: 8×8 blocking and ringing, re-saved up to a few times")
def jpeg(x: torch.Tensor, g: torch.Generator, *, quality: int, generations: int = 1,
         random_grid: bool = True) -> torch.Tensor:
    # A single save, even at quality 1, barely moves a 28 px digit's class evidence: the
    # strokes are large next to an 8×8 block. Images that travel (forwarded, re-shared,
    # cropped) are re-saved, each time on a grid that has moved with the crop, and the losses
    # compound: that is what the later levels model. random_grid=False keeps every save on
    # the image's own grid, as one encoder call on the 28×28 image does.
    if not random_grid:
        for _ in range(generations):
            x = jpeg_roundtrip(x, quality)
        return x
    shifted = torch.round(x.clamp(0.0, 1.0) * 255.0) - 128.0
    for _ in range(generations):
        shifted = _jpeg_off_grid(shifted, quality, g)
    return (shifted + 128.0) / 255.0


# ---------------------------------------------------------------------------------------------
# linear filters as matrices
#
# On CPU, conv2d, avg_pool2d and max_pool2d over single-channel 28×28 images cost 10–30× more
# than two small matrix products, so every separable linear filter here is applied as
# ``rows @ x @ cols.T`` with the border rule built into the matrices.


@lru_cache(maxsize=64)
def _filter_matrix(taps: tuple[float, ...], size: int, border: str) -> torch.Tensor:
    """size×size M with (M @ v)[i] = Σ_k taps[k]·v[i + k − r] (correlation, as scipy and
    conv2d define it); ``border`` is 'zeros' or 'nearest' (repeat the edge pixel)."""
    r = (len(taps) - 1) // 2
    m = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        for k, t in enumerate(taps):
            j = i + k - r
            if border == "nearest":
                j = min(max(j, 0), size - 1)
            elif not 0 <= j < size:
                continue
            m[i, j] += t
    return m  # float64 always: it is cached, so it must not depend on the first caller's dtype


def _filter2d(x: torch.Tensor, taps_y: tuple[float, ...], taps_x: tuple[float, ...],
              border: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    rows = _filter_matrix(taps_y, h, border).to(x)  # cached: cast to the batch's dtype here
    cols = _filter_matrix(taps_x, w, border).to(x)
    return rows @ x @ cols.T


# ---------------------------------------------------------------------------------------------
# resampling


def _cell_average_matrices(n: int, size: int, block: float, phase: torch.Tensor) -> torch.Tensor:
    """N×size×size matrices averaging each pixel with the others of its grid cell (1-D)."""
    centres = torch.arange(size, dtype=torch.get_default_dtype(), device=phase.device) + 0.5
    cell = torch.floor((centres.view(1, -1) + phase.view(-1, 1)) / block)  # N×size
    same = (cell.unsqueeze(2) == cell.unsqueeze(1)).to(torch.get_default_dtype())
    return same / same.sum(dim=2, keepdim=True)


@register(family="digital",
          description="pixelation: mean colour of square cells on a grid the digit does not align with")
def pixelate(x: torch.Tensor, g: torch.Generator, *, block: float) -> torch.Tensor:
    # Each image gets its own grid phase: a mosaic filter or a low-res sensor has no reason to
    # line up with MNIST's centring. A cell is the pixels whose centres fall in it, so
    # non-integer widths alternate (2, 3, 2, 3 px for 2.5) as in PIL's BOX resize. A cell's
    # mean is a row mean of column means, so it is two per-image matrix products.
    n, _, h, w = x.shape
    phase = (torch.rand(n, 2, generator=g) * block).to(x.device)
    rows = _cell_average_matrices(n, h, block, phase[:, 0]).unsqueeze(1)
    cols = _cell_average_matrices(n, w, block, phase[:, 1]).unsqueeze(1)
    return rows @ x @ cols.transpose(-1, -2)


@register(family="digital",
          description="low resolution: shrunk with anti-aliasing, then enlarged bilinearly")
def downsample(x: torch.Tensor, g: torch.Generator, *, size: int) -> torch.Tensor:
    del g  # the resampling is fixed; only the size varies by level
    h, w = x.shape[-2:]
    # Shrink then enlarge is one h×h (w×w) matrix per axis: up @ down.
    rows = (resize_matrix(size, h) @ resize_matrix(h, size, antialias=True)).to(x)
    cols = (resize_matrix(size, w) @ resize_matrix(w, size, antialias=True)).to(x)
    return rows @ x @ cols.T


# ---------------------------------------------------------------------------------------------
# binarize


def _sensor_noise(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """N×1×H×W unit-variance noise correlated over about a pixel (a 3×3 box of white noise),
    like a scanner's sensor and optics."""
    white = torch.randn(n, 1, h, w, generator=g)
    box = (1.0, 1.0, 1.0)
    return _filter2d(white, box, box, "zeros") / 3.0


@register(family="digital",
          description="bilevel scan/fax: noisy grey levels thresholded to black and white")
def binarize(x: torch.Tensor, g: torch.Generator, *, threshold: float, noise: float,
             jitter: float = 0.0) -> torch.Tensor:
    # A bilevel scanner thresholds a noisy analogue signal: the noise is what makes real
    # thresholded strokes ragged, broken where ink is thin, and speckled where paper is not
    # clean. Each page gets its own threshold (auto-exposure), jittered about the level's.
    n, _, h, w = x.shape
    t = threshold + jitter * (torch.rand(n, generator=g) * 2.0 - 1.0)
    signal = x + noise * _sensor_noise(n, h, w, g).to(x.device)
    return (signal > t.view(-1, 1, 1, 1).to(x.device)).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# canny
#
# A batched port of skimage.feature.canny (checked against 0.26; the algorithm is unchanged
# since MNIST-C's 2019 release): Gaussian smoothing normalised by the smoothed all-ones mask,
# scipy's Sobel, non-maximum suppression with interpolated neighbours in four sectors,
# hysteresis over 8-connected components. It reproduces skimage's edge maps exactly.


def _gaussian_taps(sigma: float) -> tuple[float, ...]:
    # scipy.ndimage.gaussian_filter's support (truncate 4), which skimage.filters.gaussian uses.
    radius = int(4.0 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return tuple((k / k.sum()).tolist())


_DIFF, _SMOOTH = (-1.0, 0.0, 1.0), (1.0, 2.0, 1.0)


@lru_cache(maxsize=16)
def _canny_gradient_matrices(sigma: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B), (size+2)×size, with d/drow = A @ x @ B.T and d/dcol = B @ x @ A.T of the
    smoothed x, framed by a one-pixel border of zeros (the frame lets neighbours be read at
    fixed flat offsets without padding).

    skimage smooths with zeros outside the image, then divides by the smoothed all-ones
    mask, so border pixels are averages of real pixels only; that mask is an outer product
    of two 1-D sums, so the division folds into the Gaussian matrix (gn below). scipy's
    Sobel ('reflect' border, the same as edge repetition for a one-pixel reach) is also
    separable, so smoothing and Sobel together are one matrix per axis and direction.
    """
    # float64 whatever the caller's default dtype: the cached filter matrices may have been
    # built inside generation (float64) or outside it (float32); callers cast to their input
    gauss = _filter_matrix(_gaussian_taps(sigma), size, "zeros").double()
    gn = gauss / gauss.sum(dim=1, keepdim=True)
    diff, smooth = (F.pad(_filter_matrix(t, size, "nearest").double() @ gn, (0, 0, 1, 1))
                    for t in (_DIFF, _SMOOTH))
    return diff, smooth


def _canny_gradients(x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = x.shape[-2:]
    ah, bh = (m.to(x) for m in _canny_gradient_matrices(float(sigma), h))
    aw, bw = (m.to(x) for m in _canny_gradient_matrices(float(sigma), w))
    return ah @ x @ bw.T, bh @ x @ aw.T


def _non_max_suppression(gy: torch.Tensor, gx: torch.Tensor, mag: torch.Tensor,
                         low: float) -> torch.Tensor:
    """skimage's thinning on framed N×1×(H+2)×(W+2) gradients, for the pixels at or above the
    low threshold (the only ones hysteresis can keep): a pixel survives if neither
    interpolated neighbour along its gradient is larger.

    skimage sorts pixels into four sectors, applied in this order (a later one wins ties):
      0: |gy| ≥ |gx|, signs agree: compares with (↓, ↘) and (↑, ↖)
      1: |gy| ≤ |gx|, signs agree: (→, ↘) and (←, ↖)
      2: |gy| ≤ |gx|, signs differ: (→, ↗) and (←, ↙)
      3: |gy| ≥ |gx|, signs differ: (↑, ↗) and (↓, ↙)
    each pair mixed as diagonal·w + axis·(1 − w), w = min(|gy|, |gx|)/max(|gy|, |gx|). Both
    sides must not exceed the pixel, so the sides can be swapped: sectors 0 and 3 then both
    use ↓ and ↑ on the axis, 1 and 2 use → and ←. Candidates are under half the pixels, so
    they are gathered into a flat list and read their neighbours at flat offsets.
    """
    wp = mag.shape[-1]
    candidate = (mag >= low) & (mag > 0)
    # The frame and the image's own border are out: skimage's eroded mask.
    candidate[..., :2, :] = candidate[..., -2:, :] = False
    candidate[..., :, :2] = candidate[..., :, -2:] = False
    at = candidate.view(-1).nonzero().squeeze(1)
    flat_mag = mag.reshape(-1)
    cy, cx, m = gy.reshape(-1)[at], gx.reshape(-1)[at], flat_mag[at]
    ay, ax = cy.abs(), cx.abs()
    differ = cy * cx <= 0  # signs differ, or a component is zero (then both groups claim it)
    vertical_axis = torch.where(differ, ay >= ax, ay > ax)  # sector 3, or sector 0 not 1
    axis = torch.where(vertical_axis, wp, 1)
    diag = torch.where(differ, torch.where(vertical_axis, wp - 1, 1 - wp), wp + 1)
    weight = torch.minimum(ay, ax) / torch.maximum(ay, ax)
    side_a = torch.lerp(flat_mag[at + axis], flat_mag[at + diag], weight)
    side_b = torch.lerp(flat_mag[at - axis], flat_mag[at - diag], weight)
    keep = torch.zeros_like(candidate)
    keep.view(-1)[at] = (side_a <= m) & (side_b <= m)
    return keep


def _grow(edges: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """One step of hysteresis on framed masks: add the weak pixels 8-connected to an edge."""
    grown = edges.clone()
    inner = grown[..., 1:-1, 1:-1]
    h, w = inner.shape[-2:]
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                inner |= edges[..., dy : dy + h, dx : dx + w]
    return grown & weak


def _hysteresis(strong: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """Weak pixels 8-connected to a strong one, grown until nothing changes: the set skimage
    gets by labelling the weak mask's components. Only images still growing are revisited."""
    edges = strong & weak
    todo = torch.arange(edges.shape[0], device=edges.device)
    while todo.numel():
        current = edges[todo]
        grown = _grow(current, weak[todo])
        changed = (grown != current).flatten(1).any(dim=1)
        edges[todo] = grown
        todo = todo[changed]
    return edges


def canny_edge_map(x: torch.Tensor, sigma: float = 1.0, low: float = 0.1,
                   high: float = 0.2) -> torch.Tensor:
    """N×1×H×W bool edge maps; with the defaults, ``skimage.feature.canny(img)`` batched."""
    gy, gx = _canny_gradients(x, sigma)
    mag = torch.hypot(gy, gx)
    weak = _non_max_suppression(gy, gx, mag, low)
    return _hysteresis(weak & (mag >= high), weak)[..., 1:-1, 1:-1]


@register(family="digital",
          description="edge-detector output: strokes hollowed into their Canny outlines")
def canny_edges(x: torch.Tensor, g: torch.Generator, *, blend: float, sigma: float = 1.0,
                low: float = 0.1, high: float = 0.2) -> torch.Tensor:
    # blend 1 is MNIST-C's canny_edges (pure edges at skimage's defaults); lower levels mix
    # the outline into the digit, as an edge-enhancement filter would.
    del g  # Canny is deterministic
    edges = canny_edge_map(x, sigma, low, high).to(x.dtype)
    return (1.0 - blend) * x + blend * edges
