"""The one place parameter names become command-line flags.

The core names what a caller passed as `name=` marks in its messages (errors.py); a terminal
user reads the flag instead: `n=` -> --n, `attack_n=` -> --attack-n, `device=cpu` -> --device cpu,
`force=True` -> --force.
"""

from __future__ import annotations

from ..errors import PARAM

# Parameters whose flag is not simply "--" + the name with dashes.
SPECIAL = {
    "clean_only": "--clean-only",
    "use_cache": "--no-cache",  # use_cache=False
    "formats": "--format",
    "ray": "--ray",
    "models": "MODEL",
    "model": "MODEL",
}
TRUE_WORDS = ("True", "true", "")


def flag(name: str) -> str:
    return SPECIAL.get(name, "--" + name.replace("_", "-"))


def to_flags(text: str) -> str:
    """A marked message as the terminal shows it."""
    def one(m) -> str:
        name, value = m.group(1), m.group(2).strip().strip("'\"")
        if name == "use_cache":
            return flag(name)
        if m.group(2) in TRUE_WORDS:
            return flag(name)
        return f"{flag(name)} {value}"
    return PARAM.sub(one, text)
