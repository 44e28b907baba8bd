"""Build shifted sets deterministically and cache them content-addressed.

A set is a pure function of (shift, version, severity, params, seed, n, source data): the
seed of its generator is derived from all of them, so the same inputs give byte-identical
uint8 images on any machine, and the cache key is a hash of the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import cache_dir, to_float, to_uint8
from ..fileio import atomic_save_npz, sha256_bytes
from .registry import Shift

# Transforms run in fixed-size chunks with one generator carried across chunks: memory stays
# bounded and the output does not depend on how the caller batches. Changing CHUNK changes
# every set's bytes, so it is part of the cache key.
CHUNK = 2500


@dataclass(frozen=True)
class ShiftSet:
    name: str
    severity: int
    images: np.ndarray  # uint8 N×28×28
    labels: np.ndarray  # int64 N
    sha256: str
    params: dict[str, Any]
    cached: bool = False


def set_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    return sha256_bytes(images.tobytes() + labels.tobytes())


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any JSON-able parts (stable across Python versions and machines)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def generator_for(shift: Shift, severity: int, seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed("robustmnist-set", shift.name, shift.version, severity, seed))
    return g


def make_set(
    shift: Shift,
    severity: int,
    params: dict[str, Any],
    source_images: np.ndarray | None,
    source_labels: np.ndarray | None,
    n: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate (images uint8 N×28×28, labels) on CPU. Transforms take the first n source digits."""
    g = generator_for(shift, severity, seed)
    if shift.kind == "generative":
        x, y = shift.generate(n, g, **params)
        return to_uint8(x), y.cpu().numpy().astype(np.int64)
    assert source_images is not None and source_labels is not None
    imgs = source_images[:n]
    labels = source_labels[:n].astype(np.int64)
    out = np.empty_like(imgs)
    for start in range(0, len(imgs), CHUNK):
        xb = to_float(imgs[start : start + CHUNK])
        yb = torch.from_numpy(labels[start : start + CHUNK])
        out[start : start + CHUNK] = to_uint8(shift.apply(xb, g, y=yb, **params))
    return out, labels


def cache_key(shift: Shift, severity: int, params: dict, seed: int, n: int, source_sha: str) -> str:
    blob = json.dumps(
        {"shift": shift.name, "version": shift.version, "severity": severity, "params": params,
         "seed": seed, "n": n, "source": source_sha, "chunk": CHUNK},
        sort_keys=True, default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def _cache_path(key: str, root: Path | None) -> Path:
    root = root or cache_dir()
    return root / key[:2] / f"{key}.npz"


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
    key = cache_key(shift, severity, params, seed, n, source_sha if shift.kind != "generative" else "")
    path = _cache_path(key, cache_root)
    if use_cache and path.is_file():
        hit = _load_cached(path)
        if hit is not None:
            return ShiftSet(shift.name, severity, hit[0], hit[1], hit[2], params, cached=True)
    images, labels = make_set(shift, severity, params, source_images, source_labels, n, seed)
    digest = set_sha256(images, labels)
    if use_cache:
        try:
            atomic_save_npz(path, images=images, labels=labels, sha256=np.array(digest))
        except OSError as exc:  # a read-only cache must not stop an evaluation
            warnings.warn(f"could not write the set cache at {path}: {exc}", stacklevel=2)
    return ShiftSet(shift.name, severity, images, labels, digest, params, cached=False)
