"""Shift catalog: registry, suite specs, set generation and caching."""

from .registry import FAMILIES, Shift, all_shifts, get_shift, register, resolve_names

__all__ = ["FAMILIES", "Shift", "all_shifts", "get_shift", "register", "resolve_names"]
