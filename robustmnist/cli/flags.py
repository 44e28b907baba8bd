"""The one place parameter names become command-line flags.

The core names what a caller passed as `name=` marks in its messages (errors.py); a terminal
user reads the flag instead: `n=` -> --n, `attack_n=` -> --attack-n, `device=cpu` -> --device cpu,
`force=True` -> --force, `use_cache=False` -> --no-cache.
"""

from __future__ import annotations

from ..errors import PARAM

# Parameters whose flag is not simply "--" + the name with dashes.
SPECIAL = {
    "formats": "--format",
    "fmt": "--format",  # export_sets (shifts export)
    "models": "MODEL",
    "model": "MODEL",
    # AdversarialTraining's fields: train's only eps/steps flags (attacks take --attack-severity)
    "eps": "--adversarial-eps",
    "steps": "--adversarial-steps",
}
# Booleans whose only flag turns them off: `use_cache=False` (or `use_cache=`) is --no-cache;
# messages mark them only that way.
NEGATED = {"use_cache": "--no-cache"}
QUOTES = "'\""  # a Python string value (`device="cpu"`) is a bare word on the command line


def flag(name: str) -> str:
    return NEGATED.get(name) or SPECIAL.get(name, "--" + name.replace("_", "-"))


def to_flags(text: str) -> str:
    """A marked message as the terminal shows it: `name=` names the flag, `name=True` is the
    switch itself, `name=False` its --no- form, any other value follows the flag."""
    def one(m) -> str:
        name, raw = m.group(1), m.group(2).strip()
        if raw in ("", "True", "False"):
            if raw == "False" and name not in NEGATED:
                return "--no-" + name.replace("_", "-")
            return flag(name)
        return f"{flag(name)} {raw.strip(QUOTES)}"
    return PARAM.sub(one, text)
