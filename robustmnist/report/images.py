"""Gallery images: encode the base64 PNGs of results.json, validate them, stack severity strips.

The engine stores, per record, a 28-px-high strip of the same ten test digits; stacking the
clean strip over severities 1–5 gives one small grid per shift (shown upscaled with
pixelated rendering, so the PNG stays at 1× and the report stays small).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MISSING = 40  # grey level for a severity whose strip is absent


def png_b64(img: np.ndarray) -> str:
    """A uint8 image as base64 PNG text (the run layer's galleries and OOD strips)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(b64: str | None) -> bytes | None:
    """The PNG bytes, or None when the field is empty or is not a base64 PNG (a hand-edited
    or truncated results.json must not break the report, nor inject markup)."""
    if not b64 or not isinstance(b64, str):
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw.startswith(_PNG_MAGIC) else None


def png_data_uri(b64: str | None) -> str | None:
    raw = decode_png(b64)
    return None if raw is None else "data:image/png;base64," + base64.b64encode(raw).decode()


def _gray(raw: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im.convert("L"))
    except (OSError, ValueError):
        return None


def stack_strips(strips: Sequence[str | None]) -> str | None:
    """One PNG data URI: the given strips one under another (missing ones as a grey band)."""
    arrays = [None if (raw := decode_png(s)) is None else _gray(raw) for s in strips]
    present = [a for a in arrays if a is not None]
    if not present:
        return None
    h = max(a.shape[0] for a in present)
    w = max(a.shape[1] for a in present)
    rows = []
    for a in arrays:
        band = np.full((h, w), _MISSING, dtype=np.uint8)
        if a is not None:
            band[: a.shape[0], : a.shape[1]] = a
        rows.append(band)
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(buf, format="PNG", compress_level=9)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
