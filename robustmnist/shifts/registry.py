"""Registry of shifts: name -> (family, description, version, kind, function).

A shift function is pure and batched. Three kinds exist:

- ``transform``:  ``fn(x, g, **params) -> x``            x: float32 N×1×28×28 in [0, 1]
- ``labelled``:   ``fn(x, y, g, **params) -> x``         edits depend on the digit's label (euro)
- ``generative``: ``fn(n, g, **params) -> (x, y)``       makes new digits (fonts)

``params`` are the keyword arguments of one severity level; they come from the suite
specs in ``shifts/*.toml`` (see ``suite.py``), never from constants inside the function,
so the same ``rotate`` serves our 5-level ladder and MNIST-C's single fixed level.
All randomness comes from ``g`` (a CPU ``torch.Generator``) so a set is reproducible.
Sets are generated in float64 (``sets.generation_precision``): a function computes in its
input's dtype, and tensors it makes itself follow ``torch.get_default_dtype()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import UserError
from .catalog import ShiftInfo, info_of, load_catalog

if TYPE_CHECKING:  # the registry itself stays torch-free: `shifts list` and suite loading need no torch
    import torch

Kind = Literal["transform", "labelled", "generative"]

FAMILIES = (
    "noise",
    "blur",
    "smear",
    "border",
    "geometric",
    "photometric",
    "digital",
    "stroke",
    "fonts",
    "euro",
    "camera",
)


@dataclass(frozen=True)
class Shift:
    name: str
    family: str
    description: str
    version: int
    kind: Kind
    fn: Callable

    def apply(self, x: torch.Tensor, g: torch.Generator, y: torch.Tensor | None = None, **params):
        """Apply a transform/labelled shift to a float batch; returns a clamped float batch."""
        if self.kind == "transform":
            out = self.fn(x, g, **params)
        elif self.kind == "labelled":
            if y is None:
                raise ValueError(f"shift '{self.name}' needs the digits' labels")
            out = self.fn(x, y, g, **params)
        else:
            raise TypeError(f"shift '{self.name}' is generative; call generate()")
        return out.clamp_(0.0, 1.0)

    def generate(self, n: int, g: torch.Generator, **params):
        if self.kind != "generative":
            raise TypeError(f"shift '{self.name}' transforms existing digits; call apply()")
        x, y = self.fn(n, g, **params)
        return x.clamp_(0.0, 1.0), y


_REGISTRY: dict[str, Shift] = {}
# The registry imports no family module (they import it): the package's __init__ hands it the
# function that imports them all, and the registry calls it the first time it needs every shift.
_register_builtins: Callable[[], None] | None = None
_LOADED = False  # whether the family modules ran (every built-in shift is in _REGISTRY)


# Every shift is at least version 2: nested, CPU-independent sets (shifts/sets.py) changed the
# bytes of every set at once. A shift whose own bytes change later passes version=3 and so on.
BASE_VERSION = 2


def register(name: str | None = None, *, family: str, description: str, version: int = BASE_VERSION,
             kind: Kind = "transform"):
    """Decorator: ``@register(family="noise", description="...")`` registers the function under its
    own name, so name and code cannot drift; factories making functions pass ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def deco(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"shift {key!r} registered twice")
        _REGISTRY[key] = Shift(key, family, description, version, kind, fn)
        return fn

    return deco


def set_builtin_loader(load: Callable[[], None]) -> None:
    """Called once by ``robustmnist.shifts``: ``load`` imports every family module."""
    global _register_builtins
    _register_builtins = load


def _load_builtins() -> None:
    global _LOADED
    if not _LOADED and _register_builtins is not None:
        _register_builtins()
        _LOADED = True


def _registry_order(items: dict) -> dict:
    return dict(sorted(items.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))


def all_shifts() -> dict[str, Shift]:
    _load_builtins()
    return _registry_order(_REGISTRY)


def shift_infos(live: bool = False) -> dict[str, ShiftInfo]:
    """Every shift's metadata (registry order) without loading the family modules (torch) when
    they have not run yet: the committed catalogue plus any shift registered since. ``live``:
    from the registry itself, for a name or key the catalogue does not know (it may lag the code)."""
    if live:
        _load_builtins()
    if _LOADED:
        return {name: info_of(s) for name, s in all_shifts().items()}
    return _registry_order(load_catalog() | {name: info_of(s) for name, s in _REGISTRY.items()})


def get_shift(name: str) -> Shift:
    shifts = all_shifts()
    if name not in shifts:
        raise UserError(f"unknown shift '{name}'. Known shifts: {', '.join(shifts)}")
    return shifts[name]


def resolve_names(spec: str | list[str]) -> list[str]:
    """Expand a comma list of shift and family names into shift names (registry order)."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    shifts = shift_infos()
    if any(item not in shifts and item not in FAMILIES for item in items):
        shifts = shift_infos(live=True)
    out: list[str] = []
    for item in items:
        if item in shifts:
            picked = [item]
        elif item in FAMILIES:
            picked = [n for n, s in shifts.items() if s.family == item]
        else:
            raise UserError(
                f"unknown shift or family '{item}'. Families: {', '.join(FAMILIES)}. "
                f"Shifts: {', '.join(shifts)}"
            )
        out.extend(n for n in picked if n not in out)
    return out
