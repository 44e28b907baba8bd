"""Shift catalog: registry, suite specs, set generation and caching.

The package is also callable: ``robustmnist.shifts()`` lists the registered shifts (the Python
API's ``shifts``), as the name cannot be both a subpackage and a function otherwise.
"""

import sys
import types

from .registry import FAMILIES, Shift, all_shifts, get_shift, register, resolve_names

__all__ = ["FAMILIES", "Shift", "all_shifts", "get_shift", "register", "resolve_names"]


class _CallableCatalog(types.ModuleType):
    def __call__(self, family: str | None = None) -> list[Shift]:
        from ..api import shifts

        return shifts(family)


sys.modules[__name__].__class__ = _CallableCatalog
