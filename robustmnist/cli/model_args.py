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
