"""The report's sections, in page order: the one list the page, its navigation and the tests
read.

Each section is a module here with ``build(models, layout)``, returning what its template
partial, ``templates/sections/<module>.html.j2``, lays out as ``data``. The page wraps each
partial in ``<section id=...>`` with its heading. To add a section: write the module and the
partial, then add one line below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..view import Layout, Model
from . import (
    adversarial,
    calibration,
    confusion,
    deployment,
    galleries,
    ood,
    overview,
    per_class,
    real,
    reproducibility,
    summary,
)


@dataclass(frozen=True)
class Section:
    id: str  # the HTML anchor
    heading: str
    build: Callable[[Sequence[Model], Layout], object]

    @property
    def template(self) -> str:
        # named after the build's module, so the code and its partial cannot drift apart
        return f"sections/{self.build.__module__.rsplit('.', 1)[-1]}.html.j2"


SECTIONS = (
    Section("summary", "Summary", summary.build),
    Section("real", "Real digits", real.build),
    Section("overview", "Robustness overview", overview.build),
    Section("per-class", "Per-class degradation", per_class.build),
    Section("confusion", "Confusion matrices", confusion.build),
    Section("calibration", "Calibration", calibration.build),
    Section("deployment", "Does it know when it is wrong?", deployment.build),
    Section("ood", "Out-of-distribution detection", ood.build),
    Section("adversarial", "Adversarial robustness", adversarial.build),
    Section("galleries", "Galleries", galleries.build),
    Section("reproducibility", "Model and reproducibility", reproducibility.build),
)
