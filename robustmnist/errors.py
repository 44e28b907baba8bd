"""The exceptions a user can cause; the CLI turns them into one line on stderr.

Messages name the parameter a user passed, written `name=` (or `name=value`) between
backticks. Python shows them as ``name=``/``name=value`` (the keyword the caller wrote); the CLI
shows the matching flag (``--name``/``--name value``), mapped in one place (cli/flags.py).
"""

import re

PARAM = re.compile(r"`([a-z_][a-z0-9_]*)=([^`]*)`")


def plain(text: str) -> str:
    """A marked message as Python shows it: `n=` -> n=, `preprocess="x"` -> preprocess="x"."""
    return PARAM.sub(lambda m: f"{m.group(1)}={m.group(2)}", text)


class _Marked:
    @property
    def raw(self) -> str:
        """The message with its parameter marks, for a front end to spell its own way."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return plain(self.raw)


class UserError(_Marked, Exception):
    """Bad input the user can fix (a missing file, an unknown name, an unreadable model).

    The message is shown as-is, so it must say what was wrong and what to do.
    """

    exit_code = 2


class MarkedWarning(_Marked, UserWarning):
    """A warning whose text names parameters: Python shows ``name=``, the CLI the flag."""


class RunInterrupted(_Marked, KeyboardInterrupt):
    """Ctrl-C after partial results were saved: the message says where, and how to finish them."""
