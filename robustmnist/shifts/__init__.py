"""Shift catalog: registry, suite specs, set generation and caching.

The package is also callable: ``robustmnist.shifts()`` lists the registered shifts (the Python
API's ``shifts``), as the name cannot be both a subpackage and a function otherwise.
"""

import sys
import types

from .registry import FAMILIES, Shift, all_shifts, get_shift, register, resolve_names, set_builtin_loader

__all__ = ["FAMILIES", "Shift", "all_shifts", "get_shift", "register", "resolve_names"]


def _register_builtin_shifts() -> None:
    # Importing a family module runs its @register decorators; listed one per line, as timm's
    # models/__init__.py does, so a missing module fails here instead of losing its shifts. Run on
    # the registry's first need, not at import: the families need torch, and `shifts list`, suite
    # loading and name checks work from catalog.json without it. Listing order is free: the
    # registry sorts by FAMILIES, then name.
    from . import (  # noqa: F401
        blur,
        border,
        camera,  # photos of digits on paper, framed by data.photo
        digital,
        euro,
        fonts,
        geometric,
        noise,
        photometric,
        print_scan,  # the fonts family's print_scan and dot_matrix
        smear,
        stroke,
    )


set_builtin_loader(_register_builtin_shifts)


class _CallableCatalog(types.ModuleType):
    def __call__(self, family: str | None = None) -> list[Shift]:
        from ..api import shifts

        return shifts(family)


sys.modules[__name__].__class__ = _CallableCatalog
