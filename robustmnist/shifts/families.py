"""Imports every family module so their shifts register. Add new families here."""

from importlib import import_module

_MODULES = (
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
)

for _name in _MODULES:
    try:
        import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as exc:  # a family still being written
        if exc.name != f"{__package__}.{_name}":
            raise
