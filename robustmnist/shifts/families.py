"""Imports every family module so their shifts register (one module per name in FAMILIES)."""

from importlib import import_module

from .registry import FAMILIES

for _name in FAMILIES:
    import_module(f"{__package__}.{_name}")
# Families spread over more than one module: their other modules.
import_module(f"{__package__}.print_scan")  # fonts: print_scan, dot_matrix
