"""The shipped text files: what a merge or an edit can leave behind unnoticed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT = (".py", ".md", ".toml", ".json", ".html", ".j2", ".txt", ".cfg", ".yml", ".yaml", "")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.splitlines() if Path(p).suffix in TEXT and (ROOT / p).is_file()]


def test_no_merge_conflict_markers_in_shipped_text():
    # a README once shipped a whole "<<<<<<< HEAD ... >>>>>>> main" block: markdown renders it
    bad = []
    for path in _tracked():
        if path.stat().st_size > 2_000_000:
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "<<<<<<<":
                bad.append(f"{path.relative_to(ROOT)}:{i}")
    assert not bad, bad
