"""Make the shift catalog's images: every shift at its five levels (the default suite's, then the
camera suite's, each with its own suite's levels).

    ROBUSTMNIST_DATA=/path/to/data python docs/gen_catalog.py      # rewrites docs/img/shifts/*.png

Each image is what `robustmnist shifts preview NAME --cols 6` draws (the same preview_rows and
render_grid), at 1 px per MNIST pixel and in greyscale so the committed files stay small; the
docs show them at 2x. Rows are severity 0 (the clean digits) to 5, columns the first test digits
0-5 of MNIST (generated shifts draw their own digits). tests/test_docs.py regenerates them and
fails when a shift's images no longer match, so the catalog page cannot drift from the code.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "img" / "shifts"
COLS = 6
CELL = 28  # one screen pixel per image pixel; the page scales it
SEED = 0


SUITES = ("default", "camera")  # together they hold every registered shift


def render_all(data_root=None, names=None) -> dict:
    """{shift name: greyscale PIL image} for every shift of SUITES (or ``names`` of them)."""
    from robustmnist.data.datasets import load_mnist
    from robustmnist.shifts.preview import preview_rows, render_grid
    from robustmnist.shifts.suite import load_suite

    mnist = load_mnist("test", data_root)
    out = {}
    for suite in map(load_suite, SUITES):
        for name in suite.shift_names:
            if (names is None or name in names) and name not in out:
                rows = preview_rows(name, suite, mnist.images, mnist.labels, n_cols=COLS, seed=SEED)
                out[name] = render_grid(rows, cell=CELL).convert("L")  # the grid is grey already: lossless
    return out


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> int:
    from robustmnist.errors import UserError

    try:
        images = render_all()
    except UserError as exc:  # no MNIST: the catalog shows real test digits, so there is no stand-in
        print(f"gen_catalog: {exc}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in set(p.stem for p in OUT.glob("*.png")) - set(images):
        (OUT / f"{stale}.png").unlink()
    total = 0
    for name, image in images.items():
        data = png_bytes(image)
        (OUT / f"{name}.png").write_bytes(data)
        total += len(data)
    print(f"wrote {len(images)} images to {OUT} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
