"""Batched tensor operations shared by shift families: blur kernels, per-image filtering,
random local pixel swaps, 3×3 and plus maximum filters and an exact, fast Poisson sampler.

Everything takes float images N×1×H×W and works on the whole batch at once; randomness
always comes from an explicit CPU ``torch.Generator``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# 3×3 and plus maximum filters
# ---------------------------------------------------------------------------------------------
# Shifted views and torch.maximum, not max_pool2d: the same values (a maximum is exact, and
# -inf beyond the border is max_pool2d's padding) at several times the speed of CPU
# max_pool2d on small single-channel images.


def max_plus(x: torch.Tensor) -> torch.Tensor:
    """Maximum over the 5-pixel plus (the pixel and its 4 neighbours): one padding, 4 maxima;
    the same values as max_pool2d over the plus (maxima are exact in any order)."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), value=-math.inf)
    out = torch.maximum(p[..., 1 : h + 1, 0:w], p[..., 1 : h + 1, 2 : w + 2])
    torch.maximum(out, p[..., 0:h, 1 : w + 1], out=out)
    torch.maximum(out, p[..., 2 : h + 2, 1 : w + 1], out=out)
    return torch.maximum(out, x, out=out)


def max3x3(x: torch.Tensor) -> torch.Tensor:
    """Maximum over the 3×3 square: padded once, a column pass then a row pass."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), value=-math.inf)
    cols = torch.maximum(p[..., 0:w], p[..., 1 : w + 1])
    torch.maximum(cols, p[..., 2 : w + 2], out=cols)
    out = torch.maximum(cols[..., 0:h, :], cols[..., 1 : h + 1, :])
    return torch.maximum(out, cols[..., 2 : h + 2, :], out=out)


# ---------------------------------------------------------------------------------------------
# Gaussian blur as matrices
# ---------------------------------------------------------------------------------------------


def blur_matrix(sigma: torch.Tensor | float, size: int, truncate: float = 4.0) -> torch.Tensor:
    """B (N×size×size or 1×size×size) such that ``B @ v`` Gaussian-blurs the columns of v.

    Edges repeat the border pixel (scipy/skimage ``mode='nearest'``, skimage's default, which
    MNIST-C's blurs use). A per-image sigma makes a per-image matrix; sigma 0 is the identity.
    Blurring a 28-px image as two small matmuls costs the same for any sigma, which a
    convolution does not, and lets every image have its own kernel.
    """
    sig = torch.as_tensor(sigma, dtype=torch.get_default_dtype()).cpu().reshape(-1).clamp_min(1e-6)
    radius = max(1, math.ceil(truncate * float(sig.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.get_default_dtype())
    w = torch.exp(-0.5 * (offsets / sig[:, None]) ** 2)
    w = w * (offsets.abs() <= truncate * sig[:, None] + 0.5)  # truncate as scipy does
    w = w / w.sum(dim=1, keepdim=True)
    # onehot[o, i, j] = 1 where row i reads column j at offset o (clamped = nearest edge).
    rows = torch.arange(size)
    cols = (rows[None, :] + offsets.long()[:, None]).clamp(0, size - 1)
    onehot = F.one_hot(cols, size).to(torch.get_default_dtype())  # O×size×size
    return (w @ onehot.reshape(len(offsets), -1)).reshape(-1, size, size)


def separable_blur(x: torch.Tensor, sigma: torch.Tensor | float,
                   truncate: float = 4.0) -> torch.Tensor:
    """Gaussian blur of N×C×H×W images; sigma is one float or one value per image."""
    h, w = x.shape[-2:]
    bh = blur_matrix(sigma, h, truncate).unsqueeze(1).to(device=x.device, dtype=x.dtype)
    bw = bh if w == h else blur_matrix(sigma, w, truncate).unsqueeze(1).to(bh)
    return bh @ x @ bw.transpose(-1, -2)


def edge_filter_matrix(kernels: torch.Tensor, size: int) -> torch.Tensor:
    """M (N×size×size) such that ``M @ v`` correlates the columns of v with kernels[n] (N×K,
    K odd, centre = zero offset), the border pixel repeated beyond the edge."""
    n, k = kernels.shape
    r = k // 2
    idx = (torch.arange(size).view(size, 1) + torch.arange(-r, r + 1).view(1, k)).clamp(0, size - 1)
    m = torch.zeros(n, size, size, dtype=kernels.dtype, device=kernels.device)
    return m.scatter_add_(2, idx.to(kernels.device).expand(n, size, k),
                          kernels.view(n, 1, k).expand(n, size, k))


def separable_filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate image n of N×1×H×W with the separable kernel kernels[n] ⊗ kernels[n] (N×K,
    K odd), edges repeated: as ``M_h @ x @ M_w.T``, the same values (up to float rounding) as
    a 2-D correlation of the edge-padded image, at a fraction of its cost."""
    h, w = x.shape[-2:]
    kernels = kernels.to(x)
    mh = edge_filter_matrix(kernels, h)
    mw = mh if w == h else edge_filter_matrix(kernels, w)
    return torch.bmm(torch.bmm(mh, x[:, 0]), mw.transpose(1, 2)).unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# Resizing as matrices
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def resize_matrix(src: int, dst: int, mode: str = "bilinear", antialias: bool = False) -> torch.Tensor:
    """dst×src matrix R with ``R @ v`` = F.interpolate of the column v (align_corners=False),
    read off by resampling the unit impulses: interpolation is linear, so the matrix holds
    exactly the kernel's own weights, clamps and edge taps. Always float64 (it is cached, so it
    must not depend on the first caller's dtype): cast where used."""
    impulses = torch.eye(src, dtype=torch.float64).view(src, 1, 1, src)
    out = F.interpolate(impulses, size=(1, dst), mode=mode, antialias=antialias, align_corners=False)
    return out.view(src, dst).T.contiguous()


def resize(x: torch.Tensor, h: int, w: int, mode: str = "bicubic",
           cols: tuple[int, int] | None = None) -> torch.Tensor:
    """``F.interpolate(x, (h, w), mode=mode, align_corners=False)`` of N×C×h0×w0 images (up to
    float rounding), or only its output columns [c0, c1): two small matrix products, which
    cost a fraction of the CPU kernel when the input is a coarse grid of random values."""
    c0, c1 = cols or (0, w)
    mh = resize_matrix(x.shape[-2], h, mode).to(x)
    mw = resize_matrix(x.shape[-1], w, mode)[c0:c1].to(x)
    return torch.matmul(torch.matmul(mh, x), mw.transpose(0, 1))


# ---------------------------------------------------------------------------------------------
# Per-image 2-D kernels
# ---------------------------------------------------------------------------------------------

def filter_per_image(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate image n of N×1×H×W with kernels[n] (N×K×K, K odd, centre = zero offset).

    ``out[p] = sum_o kernels[c + o] * x[p + o]``; outside the image counts as black, which is
    right for white-on-black digits. As products of FFTs padded to the full linear size (no
    wrap-around): in float64, which sets are generated in, torch's grouped convolution has
    no fast CPU path and is ~10× slower than this; the FFT costs the same for any K.
    """
    n, c, h, w = x.shape
    k = kernels.shape[-1]
    if c != 1 or kernels.shape != (n, k, k) or k % 2 == 0:
        raise ValueError(f"need x N×1×H×W and kernels N×K×K with odd K, got {tuple(x.shape)} "
                         f"and {tuple(kernels.shape)}")
    size = (h + k - 1, w + k - 1)
    spectrum = torch.fft.rfft2(x[:, 0], s=size) * torch.fft.rfft2(kernels.flip(-2, -1).to(x), s=size)
    r = k // 2
    return torch.fft.irfft2(spectrum, s=size)[:, r : r + h, r : r + w].unsqueeze(1)


def disk_kernels(radius: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased flat disks (the out-of-focus point spread of a round aperture), N×size×size.

    Each pixel's weight is its approximate area coverage ``clamp(r + 0.5 - d, 0, 1)``, so the
    kernel grows smoothly with r and r -> 0 tends to the identity.
    """
    c = size // 2
    ax = torch.arange(size, dtype=torch.get_default_dtype()) - c
    d = torch.sqrt(ax[:, None] ** 2 + ax[None, :] ** 2)
    k = (radius.reshape(-1, 1, 1) + 0.5 - d).clamp(0.0, 1.0)
    return k / k.sum(dim=(1, 2), keepdim=True)


def splat_points(ys: torch.Tensor, xs: torch.Tensor, weights: torch.Tensor,
                 size: int) -> torch.Tensor:
    """Kernels N×size×size made of weighted points at sub-pixel offsets (N×T each), bilinearly.

    Offsets are relative to the kernel centre; a point between pixels spreads over its four
    neighbours, so a line drawn from points is antialiased rather than a staircase.
    """
    c = size // 2
    grid = torch.arange(size, dtype=torch.get_default_dtype()) - c
    hat_y = (1 - (grid.view(1, 1, -1) - ys.unsqueeze(-1)).abs()).clamp_min(0)  # N×T×size
    hat_x = (1 - (grid.view(1, 1, -1) - xs.unsqueeze(-1)).abs()).clamp_min(0)
    return (hat_y * weights.unsqueeze(-1)).transpose(1, 2) @ hat_x


# ---------------------------------------------------------------------------------------------
# Random local pixel swaps
# ---------------------------------------------------------------------------------------------


def random_local_swaps(x: torch.Tensor, g: torch.Generator, max_delta: int, iterations: int,
                       swap_prob: float = 0.5) -> torch.Tensor:
    """ImageNet-C's glass-blur pixel shuffle, as exact permutations done in parallel.

    The reference visits each pixel in a raster-order Python loop and, with probability
    ``swap_prob``, swaps it with the pixel at offset (dy, dx), components drawn from numpy's
    ``randint(-max_delta, max_delta)``: K = (2 max_delta)^2 equally likely offsets, (0, 0)
    included. Here one iteration is K - 1 rounds, one per non-zero offset in random order;
    a round pairs every pixel with its neighbour at that offset (disjoint pairs, random
    phase) and swaps each pair with probability 2 swap_prob / K, independently per pair and
    image. A pixel then takes part in as many swaps of each offset as in the reference, where
    it proposes one and receives about one per iteration; each round is one gather over the
    batch.
    """
    if max_delta < 1 or iterations < 1:
        return x
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w)
    side = 2 * max_delta
    n_offsets = side * side
    pair_prob = min(1.0, 2.0 * swap_prob / n_offsets)
    # Successive uses of an offset step through the phases, so that two iterations never pair
    # the same pixels (which would let a swap simply be undone): less variation between sets.
    first_phase = torch.randint(0, side, (n_offsets,), generator=g).tolist()
    for it in range(iterations):
        for offset in torch.randperm(n_offsets, generator=g).tolist():
            dy, dx = offset // side - max_delta, offset % side - max_delta
            if dy == 0 and dx == 0:
                continue
            phase = (first_phase[offset] + it) % side
            partner, pair_id, n_pairs = _pairing(h, w, dy, dx, phase)
            # One uniform per pair, spread to both of its pixels (float gathers are much
            # faster than bool ones on CPU); the extra slot, for unpaired pixels, never swaps.
            u = torch.rand((n * c, n_pairs + 1), generator=g)
            u[:, n_pairs] = 1.0
            swap = u.index_select(1, pair_id) < pair_prob
            flat = torch.where(swap, flat.index_select(1, partner), flat)
    return flat.reshape(n, c, h, w)


@functools.lru_cache(maxsize=256)
def _pairing(h: int, w: int, dy: int, dx: int,
             phase: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Disjoint pairs (p, p + (dy, dx)) covering an h×w grid: (partner, pair id, pair count).

    Sources are the pixels in the first half of each period of 2|dy| rows (2|dx| columns
    when dy = 0), counted from ``phase``; their partners lie in the second half, so no pixel
    is in two pairs. Unpaired pixels are their own partner and get pair id = count.
    """
    if dy < 0 or (dy == 0 and dx < 0):  # pairs at -d are the pairs at +d seen from the partner
        dy, dx = -dy, -dx
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    along, step = (ys, dy) if dy > 0 else (xs, dx)
    source = ((along - phase) % (2 * step) < step) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
    src = torch.nonzero(source.reshape(-1)).squeeze(1)
    dst = src + dy * w + dx
    partner = torch.arange(h * w)
    partner[src], partner[dst] = dst, src
    pair_id = torch.full((h * w,), len(src))
    pair_id[src] = pair_id[dst] = torch.arange(len(src))
    return partner, pair_id, len(src)


# ---------------------------------------------------------------------------------------------
# Poisson sampling
# ---------------------------------------------------------------------------------------------

# Guide-table bins per possible count: a CDF step then falls in about one bin in this many, so
# almost every pixel is answered by a single table lookup.
_GUIDE_BINS = 64


def poisson_from_levels(levels: torch.Tensor, rates: torch.Tensor, g: torch.Generator,
                        max_count: int) -> torch.Tensor:
    """Poisson counts, capped at ``max_count``, for pixels whose rate is ``rates[levels]``.

    8-bit images have at most 256 distinct intensities, hence 256 distinct photon rates.
    The inverse CDF of each rate is tabulated once, and one uniform draw per pixel is mapped
    through a guide table (Chen & Asau 1974): ``_GUIDE_BINS`` bins per count, each storing
    its answer, or a flag where a CDF step falls inside it; only those few pixels search
    further. Exact (up to float32 draws), several times faster than ``torch.poisson`` on
    CPU. Counts above ``max_count`` are reported as ``max_count``: a sensor's full well.
    """
    rates = rates.to(torch.float64).reshape(-1, 1)
    k = torch.arange(max_count + 1, dtype=torch.float64)
    log_pmf = k * torch.log(rates) - rates - torch.lgamma(k + 1)
    log_pmf = torch.where(rates == 0, torch.where(k == 0, 0.0, -math.inf), log_pmf)  # 0·log 0
    cdf = torch.exp(log_pmf).cumsum(dim=1)
    cdf[:, -1] = 1.0  # the capped tail
    cdf = cdf.to(torch.float32)
    n_rates, width = cdf.shape
    bins = _GUIDE_BINS * width
    edges = torch.arange(bins + 1, dtype=torch.get_default_dtype()) / bins
    # Count at each bin's lower and upper edge; they differ where a CDF step is inside.
    at = torch.searchsorted(cdf, edges.expand(n_rates, bins + 1).contiguous(), right=True)
    at = at.clamp_max(max_count)
    guide = torch.where(at[:, 1:] == at[:, :-1], at[:, :-1], -1 - at[:, :-1]).to(torch.float32)

    # Float32 index arithmetic: exact (indices < 2^24) and half the memory traffic of int64.
    u = torch.rand(levels.shape, generator=g).reshape(-1)
    lv = levels.reshape(-1).to(torch.float32)
    count = guide.reshape(-1).take((lv * bins + (u * bins).floor_().clamp_max_(bins - 1)).long())
    todo = torch.nonzero(count < 0).squeeze(1)
    count[todo] = -1 - count[todo]
    flat_cdf = cdf.reshape(-1)
    while todo.numel():
        step = u[todo] >= flat_cdf[(lv[todo] * width + count[todo]).long()]
        todo = todo[step]
        count[todo] += 1
    return count.reshape(levels.shape)


def as_levels(x: torch.Tensor, depth: int = 255) -> torch.Tensor | None:
    """The integer levels (as floats) of an image lying exactly on the 1/depth grid, else None."""
    levels = torch.round(x * depth)
    return levels if torch.equal(levels / depth, x) else None
