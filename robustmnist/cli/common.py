"""Helpers shared by the command modules: consoles, progress bars, option parsing."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import UserError

STARTED = time.monotonic()  # about when the command started: the time budget counts from here
# Results and diagnoses go to stdout (so `robustmnist doctor m.pt > diag.txt` keeps them);
# progress bars, file lists and warnings go to stderr.
console = Console(stderr=True)
out = Console()


def warn(text: str) -> None:
    console.print(f"[yellow]robustmnist: warning:[/] {text}", highlight=False, markup=True)


def progress(transient: bool = False, quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=transient,
        disable=quiet,
    )


def parse_int_list(text: str | None, what: str) -> list[int] | None:
    if text is None or text == "":
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"{what} must be a comma list of whole numbers, got '{text}'") from None


def parse_name_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]
