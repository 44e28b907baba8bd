"""Build shifted sets deterministically and cache them content-addressed.

A set is a pure function of (shift, version, severity, params, seed, n, source data), so the
same inputs give byte-identical uint8 images on any machine, and the cache key is a hash of
the same inputs.

Sets are nested: a set is made of chunks of ``NEST_CHUNK`` images, chunk k drawn from its own
generator seeded by (recipe, k) and, for transforms, from source digits [500k, 500k+500).
Whole chunks are generated and then cut, so the first n images of a set are the same whatever
n is: ``--n 1000`` is a prefix of ``--n 10000``, and a result at any n can be compared with
the first n images of a larger one (the pinned mCE reference among them).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.datasets import cache_dir, to_float
from ..errors import UserError
from ..fileio import atomic_save_npz, sha256_parts
from .fingerprint import NEST_CHUNK
from .registry import Shift

# Float64 while a set is generated. torch's CPU kernels differ by the instruction set they
# run on (ATEN_CPU_CAPABILITY, or another machine): vectorised exp/sin/cos, fused multiply-add
# in addcmul and interpolation, the summation order of reductions, MKL's GEMM kernels, and
# randn's AVX2 path. Those differences are a few units in the last place: in float32 (6e-8)
# they decide a pixel or a threshold that sits near a quantisation boundary, thousands of
# times per suite; in float64 (1e-16) about once in 1e13 pixels. Factories inside the shifts
# follow the default dtype, so one switch covers them.
GENERATION_DTYPE = torch.float64
# Exact halfway values are common (the mean of two 8-bit levels is often k + 1/2, in 1/255
# units); float error decides which side of the halfway point they land. Rounding up from a
# point 2^-20 below it (floor(v + 0.5 + 2^-20)) decides them all the same way, and a computed
# value lands within 1e-13 of that point about as rarely as anywhere else.
_HALF_UP = 0.5 + 2.0**-20


@dataclass(frozen=True)
class ShiftSet:
    name: str
    severity: int
    images: np.ndarray  # uint8 N×28×28
    labels: np.ndarray  # int64 N
    sha256: str
    params: dict[str, Any]
    cached: bool = False
    chunks: list[str] | None = None  # fingerprint.chunk_digests, when the maker computed them


def set_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    return sha256_parts(images, labels)


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any JSON-able parts (stable across Python versions and machines)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def chunk_generator(shift: Shift, severity: int, params: dict[str, Any], seed: int,
                    chunk: int) -> torch.Generator:
    """The generator of chunk ``chunk`` of a set: from the recipe and the chunk index only."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed("robustmnist-set", shift.name, shift.version, severity, params, seed,
                              NEST_CHUNK, chunk))
    return g


def n_chunks(n: int) -> int:
    return -(-n // NEST_CHUNK)


@contextmanager
def generation_precision():
    """Float64 as torch's default dtype inside (restored after): see GENERATION_DTYPE."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(GENERATION_DTYPE)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def quantise(x: torch.Tensor) -> np.ndarray:
    """Float N×1×28×28 in [0, 1] (float64) -> uint8 N×28×28, halfway values rounded up."""
    y = x.to(torch.float64).clamp(0, 1)
    return y.mul_(255.0).add_(_HALF_UP).floor_().to(torch.uint8)[:, 0].cpu().numpy()


def make_chunk(
    shift: Shift,
    severity: int,
    params: dict[str, Any],
    source_images: np.ndarray | None,
    source_labels: np.ndarray | None,
    seed: int,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ``chunk`` of a set, whole: NEST_CHUNK images (fewer only where the source ends)."""
    g = chunk_generator(shift, severity, params, seed, chunk)
    with generation_precision():
        if shift.kind == "generative":
            x, y = shift.generate(NEST_CHUNK, g, **params)
            return quantise(x), y.cpu().numpy().astype(np.int64)
        assert source_images is not None and source_labels is not None
        sl = slice(chunk * NEST_CHUNK, (chunk + 1) * NEST_CHUNK)
        labels = source_labels[sl].astype(np.int64)
        xb = to_float(source_images[sl]).to(GENERATION_DTYPE)
        return quantise(shift.apply(xb, g, y=torch.from_numpy(labels), **params)), labels


def make_set(
    shift: Shift,
    severity: int,
    params: dict[str, Any],
    source_images: np.ndarray | None,
    source_labels: np.ndarray | None,
    n: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate (images uint8 N×28×28, labels) on CPU: whole chunks, cut to the first n.

    Transforms read source digits by position (chunk k: [500k, 500k+500)), so pass the whole
    source, not its first n: a chunk then holds the same digits whatever n is."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if shift.kind != "generative":
        assert source_images is not None and source_labels is not None
        if n > len(source_images):
            raise UserError(f"asked for {n} images of '{shift.name}' but the source has only "
                            f"{len(source_images)} digits; use a smaller `n=`")
    images = np.empty((n, 28, 28), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for k in range(n_chunks(n)):
        x, y = make_chunk(shift, severity, params, source_images, source_labels, seed, k)
        start = k * NEST_CHUNK
        stop = min(n, start + len(x))
        images[start:stop] = x[: stop - start]
        labels[start:stop] = y[: stop - start]
    return images, labels


def cache_key(shift: Shift, severity: int, params: dict, seed: int, n: int, source_sha: str) -> str:
    blob = json.dumps(
        {"shift": shift.name, "version": shift.version, "severity": severity, "params": params,
         "seed": seed, "n": n, "source": source_sha, "nest_chunk": NEST_CHUNK},
        sort_keys=True, default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def _cache_path(key: str, root: Path | None) -> Path:
    root = root or cache_dir()
    return root / key[:2] / f"{key}.npz"


def set_cache_path(shift: Shift, severity: int, params: dict, seed: int, n: int, source_sha: str,
                   cache_root: Path | None = None) -> Path:
    """Where the cache keeps this set (``source_sha`` of the transform's source digits; ignored
    for generative shifts, which read none)."""
    key = cache_key(shift, severity, params, seed, n, source_sha if shift.kind != "generative" else "")
    return _cache_path(key, cache_root)


def _load_cached(path: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels, stored = z["images"], z["labels"], str(z["sha256"])
    except Exception:  # noqa: BLE001 - any unreadable cache file is regenerated
        warnings.warn(f"cached set {path} is unreadable; regenerating it", stacklevel=3)
        return None
    if set_sha256(images, labels) != stored:
        warnings.warn(f"cached set {path} failed its sha256 check; regenerating it", stacklevel=3)
        return None
    return images, labels, stored


def get_set(
    shift: Shift,
    severity: int,
    params: dict[str, Any],
    source_images: np.ndarray | None,
    source_labels: np.ndarray | None,
    n: int,
    seed: int,
    source_sha: str = "",
    use_cache: bool = True,
    cache_root: Path | None = None,
) -> ShiftSet:
    """The shifted set, from the cache when a verified copy exists, else generated (and cached)."""
    path = set_cache_path(shift, severity, params, seed, n, source_sha, cache_root)
    if use_cache and path.is_file():
        hit = _load_cached(path)
        if hit is not None:
            return ShiftSet(shift.name, severity, hit[0], hit[1], hit[2], params, cached=True)
    images, labels = make_set(shift, severity, params, source_images, source_labels, n, seed)
    return store_set(shift, severity, params, images, labels, seed, n, source_sha, use_cache, cache_root)


def store_set(shift: Shift, severity: int, params: dict[str, Any], images: np.ndarray, labels: np.ndarray,
              seed: int, n: int, source_sha: str, use_cache: bool = True,
              cache_root: Path | None = None, chunks: list[str] | None = None) -> ShiftSet:
    """A freshly generated set as a ShiftSet, written to the cache (when ``use_cache``)."""
    digest = set_sha256(images, labels)
    if use_cache:
        path = set_cache_path(shift, severity, params, seed, n, source_sha, cache_root)
        try:
            atomic_save_npz(path, images=images, labels=labels, sha256=np.array(digest))
        except OSError as exc:  # a read-only cache must not stop an evaluation
            warnings.warn(f"could not write the set cache at {path}: {exc}", stacklevel=3)
    return ShiftSet(shift.name, severity, images, labels, digest, params, cached=False, chunks=chunks)
