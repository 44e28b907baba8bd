"""The command line. Only this package knows about flags; each command lives in its own module
with a ``register(app)`` function, so commands stay small and independent.

Errors a user can cause (``UserError``) print as one line on stderr with exit code 2.
"""

from __future__ import annotations

import sys
import warnings
from importlib import import_module

import typer

from ..errors import UserError
from .flags import to_flags

app = typer.Typer(
    name="robustmnist",
    help="How will this digit classifier behave on digits that don't look like MNIST?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines register(app); listed here, so a missing one fails loudly.
_COMMANDS = ("eval_cmd", "shifts_cmd", "report_cmd", "train_cmd", "demo_cmd", "doctor_cmd",
             "bench_cmd", "predict_cmd")

for _name in _COMMANDS:
    import_module(f"{__name__}.{_name}").register(app)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # a warning a user sees is a note about their input, not a pointer into our source
    text = message.raw if hasattr(message, "raw") else str(message)  # marked: spell the flags
    print(f"robustmnist: warning: {to_flags(text)}", file=sys.stderr)


def main() -> None:
    warnings.showwarning = _one_line_warning
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting with it.
        rc = app(standalone_mode=False)
    except UserError as exc:
        print(f"robustmnist: error: {to_flags(exc.raw)}", file=sys.stderr)
        sys.exit(exc.exit_code)

    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("robustmnist: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("robustmnist: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # usage errors (bad flags) arrive here in standalone_mode=False
        # typer ≥0.2x vendors click (typer._click) while older ones use click itself: both
        # usage-error classes have show() and exit_code, so duck-type instead of importing either.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(2)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)
