"""The docs site and the README: the catalog images match the code, every page is in the nav,
the README stays a newcomer's page."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _gen_catalog():
    spec = importlib.util.spec_from_file_location("gen_catalog", DOCS / "gen_catalog.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_shift_has_a_catalog_image_and_no_other():
    # every registered shift (the catalog page lists them all), camera's as well as default's
    names = {s["name"] for s in json.loads((ROOT / "robustmnist" / "shifts" / "catalog.json").read_text())["shifts"]}
    images = {p.stem for p in (DOCS / "img" / "shifts").glob("*.png")}
    assert images == names, (sorted(names - images), sorted(images - names))


@pytest.mark.mirror
@pytest.mark.slow  # ~40 s with a cold glyph cache (the fonts shifts), a few seconds warm
def test_catalog_images_show_what_shifts_preview_makes_today(mirror_root):
    # tiles only (x >= LABEL_W): the row labels are text, whose pixels depend on Pillow's font
    from PIL import Image

    from robustmnist.shifts.preview import LABEL_W

    stale = []
    for name, made in _gen_catalog().render_all(mirror_root).items():
        committed = Image.open(DOCS / "img" / "shifts" / f"{name}.png")
        a, b = np.asarray(made)[:, LABEL_W:], np.asarray(committed.convert("L"))[:, LABEL_W:]
        if a.shape != b.shape or not np.array_equal(a, b):
            stale.append(name)
    assert not stale, f"catalog images out of date: {stale}; run python docs/gen_catalog.py"


def test_every_docs_page_is_in_the_nav():
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == nav, (sorted(pages - nav), sorted(nav - pages))


def test_readme_is_a_newcomers_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    # the first two commands set everything up on a fresh machine: the demo, then the tests
    assert "robustmnist demo" in blocks[0] and "pytest" in blocks[1]
    assert "reports/demo/screenshot.png" in text and "mkdocs serve" in text
    assert "download.pytorch.org/whl/cpu" in text
    for link in re.findall(r"\]\(((?:docs/)[^)#]+)", text):  # the README's links into the docs resolve
        assert (ROOT / link).is_file(), link


def test_ci_runs_the_readme_test_command_and_builds_the_docs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-m pytest -q" in ci and "mkdocs build --strict" in ci
