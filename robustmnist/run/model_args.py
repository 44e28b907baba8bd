"""Model arguments of ``bench``: paths, quoted globs (``'sweep/*.pt'``) and ``@list.txt`` files.

A sweep is hundreds of checkpoints: shells cap the length of a command line, and a list file
can be versioned beside the sweep. Globs are expanded here too, so a quoted pattern works on
shells that do not expand it (and on Windows).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import UserError
from .trained_on_spec import split_trained_on

_GLOB_CHARS = frozenset("*?[")


def expand_model_args(args: list[str | os.PathLike]) -> list[Path]:
    """Paths in order, each listed once; ``@FILE`` reads one path or glob per line."""
    out: list[Path] = []
    for arg in map(str, args):
        if arg.startswith("@"):
            out += _read_list(Path(arg[1:]).expanduser())
        else:
            out += _expand(arg, None)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:  # a glob and an explicit path naming one file: score it once
            seen.add(key)
            unique.append(p)
    if not unique:
        raise UserError("no model files given")
    return unique


def _expand(arg: str, base: Path | None) -> list[Path]:
    path = Path(arg).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.exists() or not _GLOB_CHARS & set(arg):
        return [path]
    hits = sorted(Path(h) for h in glob.glob(str(path), recursive=True))
    files = [h for h in hits if h.is_file()]
    if not files:
        raise UserError(f"no model files match '{arg}'")
    return files


def _read_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"model list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read model list {path}: {exc}") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            # relative to the list, not the shell: a sweep's list travels with its folder
            out += _expand(line, path.parent)
    if not out:
        raise UserError(f"model list {path} names no model files (one path or glob per line)")
    return out


def model_specs(models: list[str], address: str | None, default_spec: str | None = None,
                default_trained_on: str | None = None) -> list[tuple[Path, str | None, str | None]]:
    """Expand globs and @lists (a ``::SPEC`` applies to every file its pattern names); check the
    Ray address and every declared trained-on name before any model is loaded. Each model comes
    back as (path, convention spec, shifts/families it was trained on)."""
    from .seen import resolve

    if address is not None:
        from .ray import is_address  # says what to install when Ray is missing

        if not is_address(address):
            raise UserError(f"`ray=` takes auto, local, HOST:PORT or ray://HOST:PORT, got '{address}'")
    specs: list[tuple[Path, str | None, str | None]] = []
    seen: set[Path] = set()
    for arg in map(str, models):
        pattern, spec, trained_on = split_model_spec(arg, default_spec, default_trained_on)
        if trained_on:
            resolve(None, trained_on)  # unknown names fail with the list of known ones
        for path in expand_model_args([pattern]):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                specs.append((path, spec, trained_on))
    return specs


def split_model_spec(arg: str, default: str | None, default_trained_on: str | None = None
                     ) -> tuple[str, str | None, str | None]:
    """``net.pt::range=norm`` -> (net.pt, "range=norm", --trained-on); without ``::`` the
    --preprocess value; a ``trained-on=`` item in SPEC replaces --trained-on (trained_on_spec.py)."""
    path, sep, spec = arg.partition("::")
    if sep and not spec.strip():
        raise UserError(f"'{arg}': write MODEL::SPEC, e.g. {path}::range=norm")
    if not sep:
        return path, default or None, default_trained_on or None
    convention, trained_on = split_trained_on(arg, spec.strip())
    return (path, (convention if convention is not None else default) or None,
            default_trained_on if trained_on is None else (trained_on or None))


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    outn = []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            nm = f"{nm}-{seen[nm]}"
        else:
            seen[nm] = 1
        outn.append(nm)
    return outn


