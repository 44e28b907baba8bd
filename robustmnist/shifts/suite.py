"""Suite specs: which shifts, which severity levels, and the parameters of each level.

A spec is a TOML file in ``shifts/`` (default.toml, quick.toml, mnist-c.toml) or any path::

    name = "default"
    description = "..."
    levels = 5                      # how many severity levels each shift defines
    # severities = [3]              # optional: run only these levels
    # inherit = "default"           # optional: take the [shifts.*] tables from another suite
    # select = ["rotate", "noise"]  # optional: only these shifts or families (default: all listed)
    # include = ["parts/noise.toml"]  # optional: the [shifts.*] tables of these files (relative
    #                                 # to this one), in this order, before this file's own

    [shifts.gaussian_noise]
    sigma = [0.04, 0.08, 0.12, 0.18, 0.26]   # one value per level
    [shifts.gaussian_noise.const]             # optional: the same value at every level
    clip = true

Every key directly under ``[shifts.NAME]`` must be a list with one entry per level, so a
reader sees the whole ladder in one line; values that do not change live under ``.const``.
default.toml and mnist-c.toml hold no tables of their own: they include one part per family
from ``shifts/parts/``, so each ladder is written once (and a part loads on its own, for a
family's tests and benchmarks). A shift defined twice among a spec and its includes is an error.
A table with ``type = "albumentations"`` or ``"torchvision"`` declares a new shift from a
library transform (see custom.py); ``Suite.shift(name)`` finds both kinds.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets import shifts_dir
from ..errors import UserError
from .catalog import ShiftInfo
from .registry import Shift, get_shift, resolve_names, shift_infos


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    levels: int
    severities: tuple[int, ...]
    shift_params: dict[str, list[dict[str, Any]]] = field(repr=False)  # name -> one dict per level
    source: str = ""
    custom: dict[str, Shift] = field(default_factory=dict, repr=False)  # declared in the spec

    def shift(self, name: str) -> Shift:
        return self.custom[name] if name in self.custom else get_shift(name)

    @property
    def shift_names(self) -> list[str]:
        return list(self.shift_params)

    def params(self, name: str, severity: int) -> dict[str, Any]:
        if name not in self.shift_params:
            raise UserError(
                f"shift '{name}' is not in suite '{self.name}'. "
                f"It has: {', '.join(self.shift_params)}"
            )
        check_severity(severity, self.levels)
        return dict(self.shift_params[name][severity - 1])

    def restrict(self, names: list[str] | None = None, severities: list[int] | None = None) -> Suite:
        """The same suite limited to some shifts and/or levels (CLI --shift / --severity)."""
        params = self.shift_params
        if names is not None:
            missing = [n for n in names if n not in params]
            if missing:
                raise UserError(
                    f"shift(s) {', '.join(missing)} not defined in suite '{self.name}'. "
                    f"It defines: {', '.join(params)}"
                )
            params = {n: params[n] for n in names}
        sev = self.severities
        if severities is not None:
            for s in severities:
                check_severity(s, self.levels)
            sev = tuple(severities)
        return Suite(self.name, self.description, self.levels, sev, params, self.source, self.custom)


def check_severity(severity: int, levels: int = 5) -> None:
    if not isinstance(severity, int) or not 1 <= severity <= levels:
        raise UserError(
            f"severity {severity!r} is out of range: this suite has levels "
            f"{', '.join(str(i) for i in range(1, levels + 1))}"
        )


def available_suites() -> list[str]:
    return sorted(p.stem for p in shifts_dir().glob("*.toml"))


def _spec_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return p
    candidate = shifts_dir() / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    raise UserError(
        f"unknown suite '{name_or_path}'. Known suites: {', '.join(available_suites())} "
        "(or give the path of a .toml spec)"
    )


def _parse_levels(name: str, table: dict[str, Any], levels: int, where: str) -> list[dict]:
    const = table.get("const", {})
    per_level: list[dict[str, Any]] = [dict(const) for _ in range(levels)]
    for key, value in table.items():
        if key == "const":
            continue
        if not isinstance(value, list) or len(value) != levels:
            raise UserError(
                f"{where}: [shifts.{name}] {key} must be a list of {levels} values "
                f"(one per severity level); put constants under [shifts.{name}.const]"
            )
        for i, v in enumerate(value):
            per_level[i][key] = v
    return per_level


def _level_keys(table: dict[str, Any]) -> list[str]:
    const = table.get("const", {})
    return [k for k in table if k != "const"] + (list(const) if isinstance(const, dict) else [])


def _check_keys(shift: ShiftInfo, keys: list[str], path: Path) -> None:
    """Unknown level keys fail here, naming shift, key and file, not as a TypeError later. The
    keys a shift takes are its function's signature (``catalog.info_of``)."""
    for key in keys:
        if not shift.accepts(key):
            raise UserError(f"{path}: shift '{shift.name}' has no parameter '{key}'; "
                            f"it takes: {', '.join(shift.params) or 'none'}")


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"suite spec {path} is not valid TOML: {exc}") from None


def _shift_tables(spec: dict[str, Any], path: Path, levels: int) -> dict[str, tuple[Any, Path]]:
    """The [shifts.*] tables of the spec's includes, in the listed order, then its own; each with
    the file it is written in, which error messages name."""
    include = spec.get("include", [])
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        raise UserError(f"{path}: include must be a list of spec files (paths relative to {path.parent})")
    sources: list[tuple[Path, dict[str, Any]]] = []
    for rel in include:
        part = path.parent / rel
        if not part.is_file():
            raise UserError(f"{path}: included file '{rel}' not found in {path.parent}")
        sources.append((part, _read_spec(part)))
        if int(sources[-1][1].get("levels", levels)) != levels:
            raise UserError(f"{part}: levels = {sources[-1][1]['levels']}, but {path}, which includes it, "
                            f"has {levels} levels")
    sources.append((path, spec))
    tables: dict[str, tuple[Any, Path]] = {}
    for src, part_spec in sources:
        for name, table in part_spec.get("shifts", {}).items():
            if name in tables:
                raise UserError(f"{src}: [shifts.{name}] is already defined in {tables[name][1]}; "
                                "define each shift once")
            tables[name] = (table, src)
    return tables


def _shift_metadata(tables: dict[str, Any]) -> dict[str, ShiftInfo]:
    """The catalogue (a suite loads without importing torch), or the live registry when the spec
    names a shift or key the catalogue lacks: a catalogue behind the code costs start-up time,
    never a wrong error."""
    known = shift_infos()
    for name, table in tables.items():
        if not isinstance(table, dict) or "type" in table:
            continue
        if name not in known or not all(known[name].accepts(k) for k in _level_keys(table)):
            return shift_infos(live=True)
    return known


def load_suite(name_or_path: str = "default") -> Suite:
    path = _spec_path(name_or_path)
    spec = _read_spec(path)
    levels = int(spec.get("levels", 5))
    custom: dict[str, Shift] = {}
    if "inherit" in spec:
        parent = load_suite(spec["inherit"])
        params = dict(parent.shift_params)
        levels = parent.levels
        custom = dict(parent.custom)
    else:
        params = {}
    sourced = _shift_tables(spec, path, levels)
    known = _shift_metadata({name: table for name, (table, _) in sourced.items()})
    for name, (table, src) in sourced.items():
        if isinstance(table, dict) and "type" in table:  # a library transform (custom.py)
            from .custom import custom_shift, finish_levels

            if name in known:
                raise UserError(f"{src}: [shifts.{name}] declares a {table['type']} shift under the name of "
                                "a built-in shift; choose another name")
            custom[name], levels_table = custom_shift(name, table, str(src))
            params[name] = _parse_levels(name, levels_table, levels, str(src))
            finish_levels(custom[name], params[name], table, str(src))
            continue
        if name not in known:
            raise UserError(f"{src}: unknown shift '{name}'. Known: {', '.join(known)} "
                            "(or declare one with type = \"albumentations\" or \"torchvision\")")
        if isinstance(table, dict):
            _check_keys(known[name], _level_keys(table), src)
        params[name] = _parse_levels(name, table, levels, str(src))
    if isinstance(spec.get("select"), list):
        select = [s for s in spec["select"] if s not in custom]
        wanted = resolve_names(select) + [s for s in spec["select"] if s in custom]
        params = {n: params[n] for n in wanted if n in params}
    severities = tuple(spec.get("severities", range(1, levels + 1)))
    for s in severities:
        check_severity(s, levels)
    return Suite(
        name=spec.get("name", path.stem),
        description=spec.get("description", ""),
        levels=levels,
        severities=severities,
        shift_params=params,
        source=str(path),
        custom=custom,
    )
