"""results.schema.json, the JSON Schema of results.json, and the check every reader runs first.

Reports, compare, gate and resume read a results.json into dataclasses whose fields have
defaults; without a check, a file missing ``shifts`` rendered "0 shifts" beside its stale
headline numbers. Validating against the shipped schema refuses such a file with one line that
names the field. The verdict is the one other tools get from the shipped file with
``jsonschema`` (``schema()``); the loader only checks an inlined copy of it, for speed, and
tests/test_results_schema.py checks that both agree.
"""

from __future__ import annotations

import functools
import json
import reprlib
from collections.abc import Iterable
from importlib import resources
from typing import Any

from .errors import UserError

SCHEMA_FILE = "results.schema.json"

# a wrong value may be a whole record with its thumbnails: the message shows its start only
# (attributes, not keywords: Repr takes keywords from Python 3.12 on)
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 2, 3, 4, 40, 40


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json, as shipped in the package."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@functools.cache
def _validator():
    # imported here, not at the top: commands that never read a results file skip the import,
    # and a full-suite file (hundreds of records) is checked by one validator built once
    from jsonschema import Draft202012Validator

    s = schema()
    return Draft202012Validator(inlined(s, s.get("$defs", {})))


def inlined(node: Any, defs: dict, seen: tuple[str, ...] = ()) -> Any:
    """``node`` with each "#/$defs/x" reference replaced by x itself: the same schema (a $ref
    beside other keywords applies like allOf), but jsonschema looks a $ref up on every value it
    checks, which more than doubles the time on a full suite. A recursive reference stays."""
    if isinstance(node, list):
        return [inlined(x, defs, seen) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: inlined(v, defs, seen) for k, v in node.items() if k != "$ref"}
    ref = node.get("$ref")
    if ref is None:
        return out
    name = ref.removeprefix("#/$defs/")
    if name == ref or name not in defs or ref in seen:
        return {**out, "$ref": ref}
    target = inlined(defs[name], defs, (*seen, ref))
    return {**target, **out} if out.keys() <= {"description", "title"} else {"allOf": [target], **out}


def problem(d: Any) -> str | None:
    """What is wrong with ``d`` as a results.json, in one line; None when it is valid."""
    from jsonschema.exceptions import best_match

    # best_match prefers the shallowest error: a missing top-level field before anything inside it
    error = best_match(_validator().iter_errors(d))
    return None if error is None else _describe(error)


def check(d: Any, source: str = "results") -> None:
    """Raise a UserError naming the field when ``d`` is not a valid results.json."""
    what = problem(d)
    if what is not None:
        raise UserError(f"{source} is not a robustmnist result: {what}")


def field_path(parts: Iterable[str | int]) -> str:
    """['shifts', 3, 'accuracy'] -> 'shifts[3].accuracy'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _describe(error) -> str:
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"'{missing}' is missing (field: {field_path([*error.absolute_path, missing])})"
    if error.validator == "const":  # jsonschema says "1 was expected" of a "1": say what it got
        message = f"expected {error.validator_value!r}, got {_SHORT.repr(error.instance)}"
    else:
        message = error.message
    whole = repr(error.instance)
    if len(whole) > 80:  # jsonschema's messages quote the instance in full
        message = message.replace(whole, _SHORT.repr(error.instance))
    message = " ".join(message.split())  # one line, whatever a key or value held
    where = field_path(error.absolute_path)
    return f"field {where}: {message}" if where else message
