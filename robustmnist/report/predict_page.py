"""``predict --out page.html``: one self-contained page with each photo, the 28×28 the model saw
and its answer. Paths and messages are escaped; images are inline PNG data URIs."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}"
    "table{border-collapse:collapse}"
    "td,th{padding:6px 10px;border-bottom:1px solid #ddd;vertical-align:middle;text-align:left}"
    ".digit{font-size:28px;font-weight:700}.doubt{color:#a15c00}.err{color:#b00020}"
    ".mono{font-family:ui-monospace,monospace}"
    "img.framed{image-rendering:pixelated;width:84px;height:84px;background:#000}"
    "img.photo{max-width:192px;max-height:192px}"
)


def _uri(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def predict_page(predictions: Sequence, model_name: str, convention: str) -> str:
    e = html.escape
    rows = []
    for p in predictions:
        name = e(p.path)
        if p.error:
            rows.append(f'<tr><td class="mono">{name}</td><td colspan="4" class="err">{e(p.error)}</td></tr>')
            continue
        top = " · ".join(f"{d}: {v:.1%}" for d, v in p.top3)
        doubt = (f'<div class="doubt">doubtful framing: {e(", ".join(p.doubtful))}</div>'
                 if p.doubtful else "")
        rows.append(f'<tr><td class="mono">{name}</td><td><img class="photo" src="{_uri(p.thumbnail)}" '
                    f'alt="{name}"></td><td><img class="framed" src="{_uri(p.framed)}" '
                    f'alt="{name}, framed 28×28"></td><td class="digit">{p.prediction}</td>'
                    f"<td>{e(top)}{doubt}</td></tr>")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>robustmnist predict: "
            f"{e(model_name)}</title><style>{_CSS}</style></head><body>"
            f"<h1>robustmnist predict</h1><p>model <span class=\"mono\">{e(model_name)}</span> · "
            f"convention <span class=\"mono\">{e(convention)}</span> · {len(predictions)} image(s). "
            "Each photo was photo-framed (background and polarity, adaptive threshold, the digit's "
            "connected components, 20&nbsp;px box, centre of mass) into the 28×28 the model saw.</p>"
            "<table><thead><tr><th>image</th><th>photo</th><th>framed</th><th>digit</th>"
            f"<th>top 3</th></tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>\n")
