"""Rewrite ``catalog.json`` from the live registry (after adding a shift or bumping a version)::

    python -m robustmnist.shifts.make_catalog
"""

from __future__ import annotations

from ..fileio import atomic_write_text
from .catalog import CATALOG_FILE, catalog_text, info_of
from .registry import all_shifts


def live_catalog_text() -> str:
    return catalog_text({name: info_of(s) for name, s in all_shifts().items()})


if __name__ == "__main__":
    atomic_write_text(CATALOG_FILE, live_catalog_text())
    print(f"wrote {CATALOG_FILE}")
