"""Report glitches of issue 25 item 8: the header's n and why, the confusion corner's glyph,
the real digits' before/after labels, FPR95 said once, and what the mCE reference is."""

from __future__ import annotations

import re

from robustmnist.report import render_reports

from .helpers import untrained_checkpoint
from .report_factory import make_result


def _subtitle(html: str) -> str:
    return re.search(r"</h1>\s*<p>(.*?)</p>", html, re.S).group(1)


def test_header_says_why_n_or_nothing(tmp_path):
    r = make_result("lenet5", n_shifts=1)
    r.execution = {"n": 10000, "forward_path": {"name": "eager"}}  # no plan recorded: no n_reason
    head = _subtitle(render_reports([r], tmp_path / "a", {"html"})["html"].read_text(encoding="utf-8"))
    assert "10,000 images per set" in head and "(?)" not in head and "per set (" not in head
    r.execution["n_reason"] = "fits the budget"
    head = _subtitle(render_reports([r], tmp_path / "b", {"html"})["html"].read_text(encoding="utf-8"))
    assert "10,000 images per set (fits the budget)" in head


def test_demo_path_records_why_n(tmp_path, tiny_data_root):
    """The demo scores through api.bench, then renders the comparison: both headers say why n."""
    from robustmnist.api import bench

    models = [untrained_checkpoint(tmp_path / "a.pt"), untrained_checkpoint(tmp_path / "b.pt", "mlp-784-50-50-10")]
    res = bench(models, shift="rotate", severity=[1], n=40, data_root=tiny_data_root, force=True,
                out=tmp_path / "out", formats="json,html", log=None, warn=None)
    assert all(r.execution.get("n_reason") == "--n" for r in res.results)
    written = render_reports(res.results, tmp_path / "out", {"html"})
    for page in [written["html"], tmp_path / "out" / "a" / "report.html"]:
        assert "40 images per set (--n)" in _subtitle(page.read_text(encoding="utf-8"))


def test_confusion_corner_uses_glyphs_every_font_has(tmp_path):
    html = render_reports([make_result("lenet5", n_shifts=1)], tmp_path, {"html"})["html"].read_text(encoding="utf-8")
    corners = re.findall(r'<th class="corner"[^>]*>(.*?)</th>', html)
    assert corners and all("pred" in c and "true" in c for c in corners)
    # U+FF3C (fullwidth backslash) drew a box in Chromium: no CJK or fullwidth forms anywhere
    assert not re.search("[\u3000-\u9fff\uff00-\uffef]", html)
