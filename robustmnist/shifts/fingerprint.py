"""Fingerprints of nested sets, and how two fingerprints of the same recipe compare.

A set's fingerprint is one short sha256 per NEST_CHUNK chunk (images and labels). Since a
set of n images is the first n images of any larger set of the same recipe, two records at
different n are compared on their common prefix: chunk by chunk, as far as both have whole
chunks (a part chunk is only comparable with a part chunk of the same length).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..fileio import sha256_parts

# Part of every set's bytes (and of the cache key): changing it changes every set. 500 is a
# multiple of 10, so a generative chunk holds each digit equally often.
NEST_CHUNK = 500

DIGEST_HEX = 16  # 64 bits per chunk: an integrity check, not a security boundary


def chunk_digests(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """One digest per chunk of NEST_CHUNK images (the last one may be a part chunk)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    return [sha256_parts(images[s : s + NEST_CHUNK], labels[s : s + NEST_CHUNK])[:DIGEST_HEX]
            for s in range(0, len(images), NEST_CHUNK)]


@dataclass(frozen=True)
class PrefixMatch:
    """How two fingerprints of one recipe compare on their common prefix."""

    n: int  # images in the common prefix
    verified: int  # images of it whose chunks were compared
    differing_chunks: list[int] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differing_chunks and self.verified == self.n

    @property
    def differs(self) -> bool:
        return bool(self.differing_chunks)

    def describe(self) -> str:
        if self.differing_chunks:
            ranges = ", ".join(f"{k * NEST_CHUNK}-{(k + 1) * NEST_CHUNK - 1}" for k in self.differing_chunks[:4])
            more = f" and {len(self.differing_chunks) - 4} more" if len(self.differing_chunks) > 4 else ""
            return (f"bytes differ in {len(self.differing_chunks)} of {-(-self.n // NEST_CHUNK)} chunks "
                    f"(images {ranges}{more})")
        if self.verified < self.n:
            return f"first {self.verified} of {self.n} images verified (no fingerprint for the rest)"
        return "identical"


def compare_prefix(a: list[str], n_a: int, b: list[str], n_b: int) -> PrefixMatch:
    """Compare fingerprints ``a`` (of n_a images) and ``b`` (n_b) on their first min(n_a, n_b)."""
    n = min(n_a, n_b)
    whole = n // NEST_CHUNK
    part = n - whole * NEST_CHUNK
    differing = [k for k in range(min(whole, len(a), len(b))) if a[k] != b[k]]
    verified = min(whole, len(a), len(b)) * NEST_CHUNK
    # A part chunk compares only with a part chunk of the same length (the two sets end there).
    if part and n_a == n_b and len(a) > whole and len(b) > whole:
        if a[whole] != b[whole]:
            differing.append(whole)
        verified += part
    return PrefixMatch(n, verified, differing)
