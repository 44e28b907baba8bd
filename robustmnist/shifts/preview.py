"""Preview grids: rows are severities 0 (clean) to 5, columns the same test digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import atomic_write_bytes
from .sets import make_set
from .suite import Suite

CELL = 56  # 28 px shown at 2× so strokes are visible
LABEL_W = 40


def preview_rows(name: str, suite: Suite, images: np.ndarray, labels: np.ndarray,
                 n_cols: int = 12, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """[(row label, uint8 n_cols×28×28)] for severities 0..levels of one shift."""
    shift = suite.shift(name)
    if shift.kind == "generative":
        rows = []
        for s in range(1, suite.levels + 1):
            x, _ = make_set(shift, s, suite.params(name, s), None, None, n_cols, seed)
            rows.append((f"s{s}", x))
        return rows
    picked = _one_of_each_class(labels, n_cols)
    src, lab = images[picked], labels[picked]
    rows = [("s0", src)]
    for s in range(1, suite.levels + 1):
        x, _ = make_set(shift, s, suite.params(name, s), src, lab, len(src), seed)
        rows.append((f"s{s}", x))
    return rows


def _one_of_each_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices cycling through classes 0-9 (first occurrences), so every digit shows."""
    order: list[int] = []
    seen: dict[int, list[int]] = {k: list(np.flatnonzero(labels == k)[:n]) for k in range(10)}
    i = 0
    while len(order) < min(n, len(labels)) and any(seen.values()):
        k = i % 10
        if seen.get(k):
            order.append(int(seen[k].pop(0)))
        i += 1
    return np.array(order, dtype=np.int64)


def render_grid(rows: list[tuple[str, np.ndarray]], title: str = "", cell: int = CELL) -> Image.Image:
    """Rows of tiles, each 28 px image shown at ``cell`` px (nearest neighbour), labelled on the left."""
    n_cols = max(len(r[1]) for r in rows)
    top = 18 if title else 0
    w = LABEL_W + n_cols * (cell + 2)
    h = top + len(rows) * (cell + 2)
    canvas = Image.new("RGB", (w, h), (245, 245, 245))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 3), title, fill=(20, 20, 20))
    for r, (label, imgs) in enumerate(rows):
        y = top + r * (cell + 2)
        draw.text((4, y + cell // 2 - 6), label, fill=(20, 20, 20))
        for c, img in enumerate(imgs):
            tile = Image.fromarray(img).resize((cell, cell), Image.Resampling.NEAREST)
            canvas.paste(tile.convert("RGB"), (LABEL_W + c * (cell + 2), y))
    return canvas


def save_preview(names: list[str], suite: Suite, images: np.ndarray, labels: np.ndarray,
                 out: str | Path, n_cols: int = 12, seed: int = 0) -> Path:
    """One grid per shift, stacked vertically into one PNG."""
    import io

    grids = [render_grid(preview_rows(n, suite, images, labels, n_cols, seed),
                         title=f"{n} ({suite.shift(n).family})") for n in names]
    w = max(g.width for g in grids)
    h = sum(g.height + 6 for g in grids)
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    y = 0
    for g in grids:
        sheet.paste(g, (0, y))
        y += g.height + 6
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    return out
