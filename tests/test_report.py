"""Reports: HTML sections and safety, rebuild determinism, Markdown and CSV shapes, the CLI,
and (marked ``browser``) the page as headless Chromium sees it with networking off."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_factory import make_result  # noqa: E402

from robustmnist.errors import UserError  # noqa: E402
from robustmnist.report import render_reports  # noqa: E402
from robustmnist.report.sections import SECTIONS  # noqa: E402
from robustmnist.results import Result  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
XSS = "<script>alert(1)</script>"
HEADINGS = [s.heading for s in SECTIONS]


# ---- fixtures: a small suite (one shift per family, 5 severities, 2 OOD sets) -----------------

@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Result, Path]:
    r = make_result("lenet5", n_shifts=10)
    path = tmp_path_factory.mktemp("results") / "results.json"
    r.save(path)
    return Result.load(path), path


@pytest.fixture(scope="module")
def single(small, tmp_path_factory) -> dict[str, Path]:
    return render_reports([small[0]], tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def compare(small, tmp_path_factory) -> dict[str, Path]:
    # a hostile name: markup must print as text, $…$ must not be parsed as maths by matplotlib
    other = make_result(f"$x$ {XSS}", n_shifts=6, seed=1, strength=0.6)
    return render_reports([small[0], other], tmp_path_factory.mktemp("compare"))


class _Outline(HTMLParser):
    """h2 texts, img srcs, every src/href value, and whether any <script> tag exists."""

    def __init__(self):
        super().__init__()
        self.h2: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href", "srcset", "action", "data"):
            if key in a:
                self.links.append(a[key] or "")

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def outline(path: Path) -> _Outline:
    p = _Outline()
    p.feed(path.read_text(encoding="utf-8"))
    return p


# ---- HTML ----------------------------------------------------------------------------------

def test_writes_all_formats_atomically(single):
    assert set(single) == {"html", "md", "csv"}
    assert [p.name for p in single.values()] == ["report.html", "report.md", "results.csv"]
    assert not list(single["html"].parent.glob(".*.tmp"))


@pytest.mark.parametrize("which", ["single", "compare"])
def test_sections_in_order_and_self_contained(which, request):
    html = request.getfixturevalue(which)["html"]
    o = outline(html)
    assert [h.strip() for h in o.h2] == HEADINGS
    assert o.scripts == 0
    # nothing to fetch: every src/href is an in-page anchor or a data URI
    assert o.links and all(v.startswith(("#", "data:image/")) for v in o.links), \
        [v[:60] for v in o.links if not v.startswith(("#", "data:image/"))]
    assert len(o.imgs) > 20
    text = html.read_text(encoding="utf-8")
    assert "default-src 'none'" in text
    assert "@import" not in text and "url(" not in text.replace("data:", "")


def test_model_name_is_text_not_markup(compare):
    html = compare["html"].read_text(encoding="utf-8")
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = compare["md"].read_text(encoding="utf-8")
    assert XSS not in md


def test_names_override_and_dedupe(small, tmp_path):
    r = small[0]
    out = render_reports([r, r], tmp_path, {"md"}, names=["net", "net"])
    assert "net vs net (2)" in out["md"].read_text(encoding="utf-8")
    with pytest.raises(UserError, match="names"):
        render_reports([r], tmp_path, {"md"}, names=["a", "b"])


def test_rebuild_from_json_is_byte_identical(small, single, tmp_path):
    again = render_reports([Result.load(small[1])], tmp_path)
    for fmt in ("html", "md", "csv"):
        assert again[fmt].read_bytes() == single[fmt].read_bytes(), fmt


def test_sections_without_data_say_so(tmp_path):
    r = make_result("bare", n_shifts=1, with_ood=False, with_mce=False)
    r.shifts = []
    r.summary = {}
    out = render_reports([r], tmp_path, {"html"})
    o = outline(out["html"])
    assert [h.strip() for h in o.h2] == HEADINGS
    text = out["html"].read_text(encoding="utf-8")
    assert "no out-of-distribution sets" in text
    assert "no shifts" in text


def test_broken_gallery_png_is_skipped_not_injected(tmp_path):
    r = make_result("x", n_shifts=1, with_ood=False)
    r.shifts[0].gallery["misclassified"][0]["png"] = '"><img src=x onerror=alert(1)>'
    r.shifts[1].gallery["samples_png"] = "bm90IGEgcG5n"  # base64 of "not a png"
    out = render_reports([r], tmp_path, {"html"})
    text = out["html"].read_text(encoding="utf-8")
    assert "onerror" not in text
    assert all(src.startswith("data:image/") for src in outline(out["html"]).imgs)


def test_every_section_has_one_partial_and_every_partial_a_section():
    templates = Path(__file__).parents[1] / "robustmnist" / "report" / "templates"
    partials = {f"sections/{p.name}" for p in (templates / "sections").glob("*.html.j2")}
    assert sorted(s.template for s in SECTIONS) == sorted(partials)
    assert len({s.id for s in SECTIONS}) == len(SECTIONS)


def test_unknown_format_is_a_user_error(small, tmp_path):
    with pytest.raises(UserError, match="pdf"):
        render_reports([small[0]], tmp_path, {"html", "pdf"})


# ---- Markdown and CSV ------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["single", "compare"])
def test_markdown_is_short_and_has_the_top_tables(which, request):
    md = request.getfixturevalue(which)["md"].read_text(encoding="utf-8")
    lines = md.splitlines()
    assert len(lines) < 60
    assert lines[0].startswith("## robustmnist report")
    assert "| model |" in md and "Per family" in md and "Out-of-distribution" in md
    # every table row has the same number of cells as its header
    for block in re.split(r"\n\n", md):
        rows = [ln for ln in block.splitlines() if ln.startswith("|")]
        if rows:
            widths = {len(re.findall(r"(?<!\\)\|", ln)) for ln in rows}
            assert len(widths) == 1, block


def test_csv_is_tidy(compare, small):
    rows = list(csv.DictReader(io.StringIO(compare["csv"].read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["model", "set", "kind", "family", "severity", "class", "n",
                             "correct", "accuracy", "n_predicted"]
    r = small[0]
    mine = [x for x in rows if x["model"] == "lenet5"]
    assert len(mine) == 11 * (1 + len(r.shifts) + len(r.ood))
    assert {x["class"] for x in mine} == {str(k) for k in range(10)} | {"all"}
    assert {x["kind"] for x in rows} == {"clean", "shift", "ood"}
    assert {x["model"] for x in rows} == {"lenet5", f"$x$ {XSS}"}
    s = r.shifts[3]
    got = {x["class"]: x for x in mine if x["set"] == s.name and x["severity"] == str(s.severity)}
    assert float(got["all"]["accuracy"]) == pytest.approx(s.accuracy, abs=1e-6)
    assert int(got["all"]["n"]) == s.n
    for k in range(10):
        assert float(got[str(k)]["accuracy"]) == pytest.approx(s.per_class_accuracy[k], abs=1e-6)
    ood = [x for x in mine if x["kind"] == "ood" and x["class"] != "all"]
    assert all(x["accuracy"] == "" and x["n_predicted"] != "" for x in ood)


# ---- CLI -------------------------------------------------------------------------------------

def _report_cli(*args: str) -> tuple[int, str]:
    """The report command alone on a fresh app: no other command module (nor torch) imported."""
    import typer

    from robustmnist.cli import report_cmd

    app = typer.Typer()
    app.callback()(lambda: None)  # keep "report" a subcommand
    report_cmd.register(app)
    try:
        app(list(args), standalone_mode=False)
    except UserError as exc:
        return exc.exit_code, str(exc)
    return 0, ""


def test_cli_report_writes_requested_formats(small, tmp_path):
    code, err = _report_cli("report", str(small[1]), "--out", str(tmp_path), "--format", "md,csv")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "results.csv"]


@pytest.mark.parametrize("content", [None, "{not json", "[]", '{"schema_version": 1}'])
def test_cli_bad_results_file_is_a_one_line_user_error(content, tmp_path):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    code, msg = _report_cli("report", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and msg and "\n" not in msg
    assert not (tmp_path / "o").exists()


def test_cli_main_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from robustmnist.cli import main

    monkeypatch.setattr(sys, "argv", ["robustmnist", "report", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("robustmnist: error:") and err.count("\n") == 1, err


# ---- the page in a real browser ------------------------------------------------------------

class Chromium:
    """Headless Chromium driven over the DevTools protocol with websocket-client.

    Why not playwright: it needs its own browser download (impossible offline) and a Node
    driver; CDP over one websocket is all these checks need."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--remote-debugging-port=0"]

    def __enter__(self) -> Chromium:
        import websocket

        self.tmp = tempfile.mkdtemp(prefix="rm-chromium-")
        self.proc = subprocess.Popen([CHROMIUM, *self.FLAGS, f"--user-data-dir={self.tmp}",
                                      "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.tmp) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(100):
            targets = json.load(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10))
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.events: list[dict] = []
        self._id = 0
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def send(self, method: str, params: dict | None = None) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expr: str):
        res = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                             "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def open_page(self, path: str | Path, width: int = 1280, mobile: bool = False) -> dict:
        """Load a file with networking off; returns console errors and requests that left it."""
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                        "downloadThroughput": -1,
                                                        "uploadThroughput": -1})
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": mobile})
        url = Path(path).resolve().as_uri()
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        errors, requests = [], []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(str(p.get("args")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text"))
            elif m == "Network.requestWillBeSent":
                u = p["request"]["url"]
                if u != url and not u.startswith("data:"):
                    requests.append(u)
        return {"errors": errors, "requests": requests}


browser = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed")


@pytest.mark.browser
@browser
def test_report_in_headless_chromium(single, compare):
    pytest.importorskip("websocket", reason="pip install websocket-client")
    check = """(async () => {
        const imgs = [...document.images];
        await Promise.all(imgs.map(i => i.decode().catch(() => null)));
        return {n: imgs.length, broken: imgs.filter(i => !(i.naturalWidth > 0)).map(i => i.alt),
                h2: [...document.querySelectorAll('h2')].map(h => h.textContent.trim()),
                overflow: document.documentElement.scrollWidth - window.innerWidth};
    })()"""
    with Chromium() as c:
        for html, width in ((single["html"], 1280), (single["html"], 390), (compare["html"], 390)):
            page = c.open_page(html, width=width, mobile=width < 600)
            assert page["errors"] == [], page["errors"]
            assert page["requests"] == [], page["requests"]
            got = c.evaluate(check)
            assert got["n"] > 20 and got["broken"] == [], got["broken"][:5]
            assert got["h2"] == HEADINGS
            # responsive: the page itself never scrolls sideways (wide tables scroll in place)
            assert got["overflow"] <= 0, (html.parent.name, width, got["overflow"])
        assert c.evaluate("document.body.innerText.includes('<script>alert(1)</script>')")
        assert c.evaluate("document.querySelectorAll('script').length") == 0
