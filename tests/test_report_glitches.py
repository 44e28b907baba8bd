"""Report glitches of issue 25 item 8: the header's n and why, the confusion corner's glyph,
the real digits' before/after labels, FPR95 said once, and what the mCE reference is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from robustmnist.report import render_reports

from .helpers import untrained_checkpoint
from .report_factory import make_result
from .test_report import CHROMIUM, Chromium


def _subtitle(html: str) -> str:
    return re.search(r"</h1>\s*<p>(.*?)</p>", html, re.S).group(1)


def _section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}">')
    return html[start:html.index("</section>", start)]


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


def _result_with_framing():
    """A result with one real set whose framing and doubtful-framing strips are drawn digits."""
    from robustmnist.results import RealRecord

    from .report_factory import _strip_png, corrupt, draw_digits

    r = make_result("lenet5", n_shifts=1)
    digits = draw_digits()
    before, after = _strip_png(corrupt(digits, "blur", 5)), _strip_png(digits)
    c = r.clean
    r.real = [RealRecord(n=c.n, accuracy=c.accuracy, accuracy_ci=c.accuracy_ci, error=c.error,
                         per_class_accuracy=c.per_class_accuracy, per_class_n=c.per_class_n, confusion=c.confusion,
                         ece=c.ece, nll=c.nll, brier=c.brier, mean_confidence=c.mean_confidence, name="digits",
                         source="scikit-learn digits",
                         framing={"before_png": before, "after_png": after, "labels": list(range(10)),
                                  "doubtful": {"count": 3, "n": c.n, "reasons": {"touches border": 3},
                                               "before_png": before, "after_png": after}})]
    return r


def test_real_framing_labels_sit_with_their_strips(tmp_path):
    html = render_reports([_result_with_framing()], tmp_path, {"html"})["html"].read_text(encoding="utf-8")
    real = _section(html, "real")
    pairs = re.findall(r"<figure><figcaption>([^<]+)</figcaption><img ", real)
    assert pairs == ["as read", "framed"] * 2  # framing, then the doubtful framings
    assert 'class="labels"' not in real


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed")
@pytest.mark.parametrize("width", [1280, 390])
def test_real_framing_labels_sit_over_their_strips_in_chromium(tmp_path, width):
    pytest.importorskip("websocket", reason="pip install websocket-client")
    page = render_reports([_result_with_framing()], tmp_path, {"html"})["html"]
    geometry = """[...document.querySelectorAll('#real .framing')].map(f => [...f.querySelectorAll('figure')]
        .map(fig => { const c = fig.querySelector('figcaption').getBoundingClientRect(),
                            i = fig.querySelector('img').getBoundingClientRect();
                      return {text: fig.querySelector('figcaption').textContent, cl: c.left, cb: c.bottom,
                              il: i.left, it: i.top, ib: i.bottom, iw: i.width}; }))"""
    with Chromium() as c:
        c.open_page(page, width=width, mobile=width < 600)
        strips = c.evaluate(geometry)
    assert len(strips) == 2
    for before, after in strips:
        assert (before["text"], after["text"]) == ("as read", "framed")
        for f in (before, after):  # each caption right over its own image, flush left
            assert f["cb"] <= f["it"] + 1 and abs(f["cl"] - f["il"]) < 1 and f["iw"] > 100
        # before over after, the same width: digit k sits over digit k
        assert before["ib"] <= after["it"] and abs(before["il"] - after["il"]) < 1
        assert abs(before["iw"] - after["iw"]) < 1


def test_ood_section_explains_fpr95_once(tmp_path):
    from robustmnist.metrics.ood import CONVENTION
    from robustmnist.run.collector import CONVENTIONS

    r = make_result("lenet5", n_shifts=1)  # two OOD sets
    for o in r.ood:
        o.convention = CONVENTION  # what a run records: per set, and result-wide in other words
    r.conventions["fpr95"] = CONVENTIONS["fpr95"]
    other = make_result("other", n_shifts=1, seed=1)
    for o in other.ood:
        o.convention = CONVENTION
    for results in ([r], [r, other]):
        html = render_reports(results, tmp_path / str(len(results)), {"html"})["html"].read_text(encoding="utf-8")
        ood = _section(html, "ood")
        assert ood.count("95% of MNIST test") == 1, ood[:800]
    r.ood[0].convention = r.ood[1].convention = ""  # records made before they carried it: the fallback
    ood = _section(render_reports([r], tmp_path / "old", {"html"})["html"].read_text(encoding="utf-8"), "ood")
    assert ood.count("95% of MNIST test") == 1


# -- what mCE is against, wherever mCE is shown ----------------------------------------------------

def _with_pinned_reference(r):
    """``r`` with its mCE taken against the pinned reference, as eval's finish does."""
    from robustmnist.metrics.reference import load_reference, reference_info

    ref = load_reference()
    r.summary["reference"] = reference_info(ref, r.clean.n)
    r.model.metadata = {"training": {"config": {"arch": "lenet5", "epochs": 1, "lr": 0.001, "batch_size": 64,
                                                "optimizer": "adam", "schedule": "constant", "seed": 0}}}
    return r, ref


def test_pinned_reference_says_what_it_is():
    from robustmnist.metrics.reference import load_reference, reference_info

    ref = load_reference()
    info = reference_info(ref)
    assert info["pinned"] and info["arch"] == "lenet5" and info["clean_accuracy"] == 1 - ref.clean_error
    assert info["recipe"].startswith("6 epochs, adam onecycle lr 0.003, batch 128") and "seed 0" in info["recipe"]


def test_mce_note_says_why_another_lenet5_differs():
    from robustmnist.metrics.corruption import mce_note

    r, ref = _with_pinned_reference(make_result("lenet5", n_shifts=1))
    note = mce_note(r.summary["reference"], r.model, r.clean.accuracy)
    assert "robustmnist's reference lenet5, one fixed model (6 epochs, adam onecycle lr 0.003" in note
    assert f"clean {1 - ref.clean_error:.2%}" in note
    assert "This lenet5 is another training run (1 epoch, adam constant lr 0.001, batch 64, seed 0; " \
           f"clean {r.clean.accuracy:.2%})" in note
    r.model.arch = "mlp-784-50-50-10"
    assert "another training run" not in mce_note(r.summary["reference"], r.model, r.clean.accuracy)
    r.model.sha256 = ref.sha256
    assert "the reference itself" in mce_note(r.summary["reference"], r.model, r.clean.accuracy)
    assert "A lenet5 trained differently makes other errors" in mce_note(r.summary["reference"])
    # results from before the reference said what it is: still the one line, without the details
    old = mce_note({"name": "lenet5", "sha256": ref.sha256, "source": "lenet5-default.json"})
    assert old.startswith("mCE = errors on the shifted sets ÷ those of robustmnist's reference lenet5")


def test_mce_note_in_terminal_html_and_markdown(tmp_path, capsys):
    from robustmnist.cli.eval_cmd import print_summary

    r, _ = _with_pinned_reference(make_result("lenet5", n_shifts=2))
    print_summary(r, {})
    terminal = " ".join(capsys.readouterr().out.split())  # rich wraps the line to the terminal
    assert "reference lenet5, one fixed model" in terminal and "This lenet5 is another training run" in terminal
    single = render_reports([r], tmp_path / "one", {"html", "md"})
    html = _section(single["html"].read_text(encoding="utf-8"), "summary")
    assert "This lenet5 is another training run" in html and "robustmnist&#39;s reference lenet5" in html
    assert "This lenet5 is another training run" in single["md"].read_text(encoding="utf-8")
    other = make_result("<b>net</b>", n_shifts=2, seed=1)
    other.summary["reference"] = r.summary["reference"]
    both = render_reports([r, other], tmp_path / "two", {"html", "md"})
    html = _section(both["html"].read_text(encoding="utf-8"), "summary")
    assert html.count("A lenet5 trained differently makes other errors") == 1  # once per reference
    assert "A lenet5 trained differently" in both["md"].read_text(encoding="utf-8")


def test_mce_note_in_the_leaderboard():
    from robustmnist.metrics.leaderboard import LeaderRow
    from robustmnist.metrics.reference import load_reference, reference_info
    from robustmnist.report.leaderboard import leaderboard_html, leaderboard_md

    info = reference_info(load_reference())
    row = LeaderRow(rank=1, name="lenet5", clean_accuracy=0.97, clean_ci=(0.96, 0.98), mean_shifted_accuracy=0.8,
                    mce=1.17, relative_mce=1.2, worst="fonts s5", worst_accuracy=0.6, ood_auroc=None,
                    sha256="ab" * 32)
    for text in (leaderboard_html([row], "default", 1000, 0, info), leaderboard_md([row], info)):
        assert "one fixed model (6 epochs" in text and "A lenet5 trained differently" in text
