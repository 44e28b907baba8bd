"""MNIST-style framing, batched: fit the ink into a 20×20 box keeping aspect ratio, then
place it in 28×28 so its centre of mass sits at the image centre.

This is how LeCun et al. built MNIST from NIST; digits that skip it (a font rendered
edge-to-edge, a photo of a digit) are a preprocessing mismatch, not a robustness result
(Stack Overflow 38389785: 99% on MNIST, ~20% on unframed font renderings).
"""

from __future__ import annotations

import torch

# MNIST test digits have their centre of mass at (14.0, 14.0) in pixel-index coordinates
# (measured: mean 13.99 / 14.01, sd 0.29), i.e. at size/2, not at the geometric 13.5.


def ink_boxes(x: torch.Tensor, threshold: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounding boxes (x1, y1, x2, y2, pixel-edge coordinates) of pixels above threshold.

    Returns (boxes N×4, has_ink N bool). Images without ink get a dummy 1-px box.
    """
    n, _, h, w = x.shape
    # a row holds ink where its maximum passes the threshold: two reductions, no N×H×W mask
    rows = x[:, 0].amax(dim=2) > threshold
    cols = x[:, 0].amax(dim=1) > threshold
    has_ink = rows.any(dim=1)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    big = torch.tensor(10**6, device=x.device)
    y1 = torch.where(rows, ar_h, big).amin(dim=1)
    y2 = torch.where(rows, ar_h, -big).amax(dim=1) + 1
    x1 = torch.where(cols, ar_w, big).amin(dim=1)
    x2 = torch.where(cols, ar_w, -big).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.get_default_dtype())
    boxes[~has_ink] = torch.tensor([0.0, 0.0, 1.0, 1.0], device=x.device)
    return boxes, has_ink


def centre_of_mass(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cy, cx) per image in pixel-index coordinates; the centre for empty images."""
    n, _, h, w = x.shape
    m = x[:, 0].clamp_min(0)
    total = m.sum(dim=(1, 2))
    ys = torch.arange(h, dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device)
    safe = total.clamp_min(1e-8)
    cy = (m.sum(dim=2) * ys).sum(dim=1) / safe
    cx = (m.sum(dim=1) * xs).sum(dim=1) / safe
    empty = total <= 1e-8
    cy = torch.where(empty, torch.full_like(cy, (h - 1) / 2), cy)
    cx = torch.where(empty, torch.full_like(cx, (w - 1) / 2), cx)
    return cy, cx


def shift_integer(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate each image by whole pixels (zeros fill in); exact, no interpolation blur."""
    n, c, h, w = x.shape
    # Halves round up, decided 2^-20 early: a symmetric digit's centre of mass sits exactly on
    # a half pixel, and float error (which differs between CPUs) would pick either side.
    dy = torch.floor(dy + (0.5 + 2.0**-20)).long()
    dx = torch.floor(dx + (0.5 + 2.0**-20)).long()
    # rows, then columns: two gathers along one axis each, then the rows and columns that came
    # from outside set to 0 (the same values as one gather by flat index, in half the time)
    ys = torch.arange(h, device=x.device).view(1, h) - dy.view(n, 1)
    xs = torch.arange(w, device=x.device).view(1, w) - dx.view(n, 1)
    out = torch.gather(x, 2, ys.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w))
    out = torch.gather(out, 3, xs.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w))
    out.mul_(((ys >= 0) & (ys < h)).to(x.dtype).view(n, 1, h, 1))
    return out.mul_(((xs >= 0) & (xs < w)).to(x.dtype).view(n, 1, 1, w))


def centre_by_mass(x: torch.Tensor) -> torch.Tensor:
    """Move each image (whole pixels) so its centre of mass lands nearest (h/2, w/2), as MNIST."""
    cy, cx = centre_of_mass(x)
    h, w = x.shape[-2:]
    return shift_integer(x, h / 2 - cy, w / 2 - cx)


def _axis_weights(start: torch.Tensor, length: torch.Tensor, bins: int, ratio: int,
                  size: int) -> torch.Tensor:
    """N×bins×size: row ``b`` sums the bilinear weights, over the axis of an image ``size`` px
    long, of the ``ratio`` samples that roi_align (aligned=True) averages in bin ``b`` of the
    span [start, start + length) (start already moved by roi_align's half pixel).

    The sample positions and their clamps are torchvision's CPU kernel's, in its order of
    operations: a sample more than one pixel outside reads 0, one within a pixel outside reads
    the edge pixel."""
    n = len(start)
    bin_size = (length / bins).view(n, 1, 1)
    ph = torch.arange(bins, dtype=start.dtype, device=start.device).view(1, bins, 1)
    iy = torch.arange(ratio, dtype=start.dtype, device=start.device).view(1, 1, ratio) + 0.5
    y = start.view(n, 1, 1) + ph * bin_size + iy * bin_size / ratio
    inside = ((y >= -1) & (y <= size)).to(start.dtype)
    y = y.clamp_min(0)
    low = y.floor()
    top = low >= size - 1
    low = torch.where(top, torch.full_like(low, size - 1), low)
    y = torch.where(top, low, y)
    ly = y - low
    hy = 1 - ly
    low_i = low.long()
    high_i = torch.where(top, low_i, low_i + 1)
    w = torch.zeros(n, bins, size + 1, dtype=start.dtype, device=start.device)
    w.scatter_add_(2, low_i, hy * inside)
    w.scatter_add_(2, high_i, ly * inside)
    return w[..., :size]


def area_resample(x: torch.Tensor, boxes: torch.Tensor, size: int, sampling_ratio: int,
                  pad: int = 0) -> torch.Tensor:
    """``roi_align(x, boxes, (size, size), sampling_ratio=r, aligned=True)`` of one box per
    image (boxes N×4 as x1, y1, x2, y2), as two batched matrix products.

    roi_align's bilinear samples lie on a grid, and the weight of a source pixel in a sample
    is a row weight times a column weight, so each output is ``A_y @ x @ A_x.T / r²`` with
    A_y, A_x the per-axis sums of the samples' weights: the same values up to float rounding
    (~1e-16 in float64, where sets are generated), ~4× faster on CPU than the op, which runs
    its samples one by one on one thread. Each image depends only on itself and its box.
    ``pad``: resample as if x had that many black pixels on every side (boxes in the padded
    image's coordinates), without making the padded copy: their weights multiply zeros."""
    n, _, h, w = x.shape
    b = boxes.to(x.dtype)
    ay = _axis_weights(b[:, 1] - 0.5, b[:, 3] - b[:, 1], size, sampling_ratio, h + 2 * pad)
    ax = _axis_weights(b[:, 0] - 0.5, b[:, 2] - b[:, 0], size, sampling_ratio, w + 2 * pad)
    ay, ax = ay[..., pad : pad + h], ax[..., pad : pad + w]
    out = torch.bmm(torch.bmm(ay, x[:, 0]), ax.transpose(1, 2))
    return (out / (sampling_ratio * sampling_ratio)).unsqueeze(1)


def frame_mnist(x: torch.Tensor, box: int = 20, size: int = 28, threshold: float = 0.05,
                sampling_ratio: int | None = None) -> torch.Tensor:
    """Batched MNIST framing of white-on-black float images N×1×H×W (any H, W) in [0, 1].

    The ink's bounding box is grown to a square around its middle (so the aspect ratio is
    kept), resampled to box×box with area-averaging (``area_resample``: roi_align's samples,
    averaged per output pixel, act as an anti-aliasing filter when shrinking), pasted in the
    middle of size×size, and moved so the centre of mass is at the centre. ``sampling_ratio``
    fixes the samples per output bin; by default it follows the batch's largest box.
    """
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"frame_mnist expects N×1×H×W, got {tuple(x.shape)}")
    n = x.shape[0]
    if n == 0:
        return x.new_zeros((0, 1, size, size))
    # roi_align's sampling reads 0 more than one pixel outside its input and repeats the edge
    # within one pixel, so one pixel of black around the image makes everything outside black
    # (area_resample's pad, which makes no padded copy).
    pad = 1
    boxes, has_ink = ink_boxes(x, threshold)
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(bw, bh)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + pad
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + pad
    squares = torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)
    # sampling_ratio: enough samples per output bin to average over the source pixels.
    ratio = sampling_ratio or int(max(2, torch.ceil(side.max() / box).item() * 2))
    patch = area_resample(x, squares, box, ratio, pad=pad)
    # Rescale so the brightest pixel keeps the source's peak (area-averaging dims thin strokes).
    src_peak = x.amax(dim=(1, 2, 3)).clamp_min(1e-6)
    patch_peak = patch.amax(dim=(1, 2, 3)).clamp_min(1e-6)
    patch = (patch * (src_peak / patch_peak).view(n, 1, 1, 1)).clamp(0, 1)
    out = x.new_zeros((n, 1, size, size))
    o = (size - box) // 2
    out[:, :, o : o + box, o : o + box] = patch
    out = centre_by_mass(out)
    out[~has_ink] = 0
    return out


# -- real digits: scans, photos, other digit datasets --------------------------------------------

# Larger images are shrunk (antialiased) before framing: 112 px is 5.6 source pixels per pixel
# of the 20-px box, more detail than the box can show, and it bounds roi_align's sampling.
MAX_SIDE = 112
REAL_CHUNK = 2048  # images framed per batch (float64: up to 2048×112×112×8 bytes, ~200 MB)
POLARITIES = ("auto", "white-on-black", "dark-on-light")


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W in [0, 1] -> N×1×H×W: ITU-R 601 luminance for RGB(A), as PIL's convert('L')."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x[:, :3] * w).sum(dim=1, keepdim=True)


def _border(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[:, 0, 0, :], x[:, 0, -1, :], x[:, 0, :, 0], x[:, 0, :, -1]], dim=1)


def detect_dark_on_light(x: torch.Tensor) -> torch.Tensor:
    """True where the ground (the border's median) is brighter than the image's mid-range.

    The mid-range of each image, not a fixed 0.5: a photo of dark digits on a grey meter face
    has a ground near 0.4 and ink near 0.1, and a house-number plate can be either way round.
    """
    flat = x.flatten(1)
    mid = (flat.amin(dim=1) + flat.amax(dim=1)) / 2
    return _border(x).median(dim=1).values > mid


def lift_ink(x: torch.Tensor) -> torch.Tensor:
    """White-on-black with the ground at 0 and the brightest ink at 1 (MNIST's range).

    Real images have grey paper, coloured plates and faint pencil: without this the ink box
    of frame_mnist would be the whole image. An MNIST digit (ground 0, peak 1) is unchanged.
    """
    ground = _border(x).median(dim=1).values.view(-1, 1, 1, 1)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    span = peak - ground
    lifted = ((x - ground) / span.clamp_min(1e-3)).clamp(0, 1)
    return torch.where(span > 1e-3, lifted, torch.zeros_like(x))
