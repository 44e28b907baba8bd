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
from .flags import to_flags

STARTED = time.monotonic()  # about when the command started: the time budget counts from here
# Results and diagnoses go to stdout (so `robustmnist doctor m.pt > diag.txt` keeps them);
# progress bars, file lists and warnings go to stderr.
console = Console(stderr=True)
out = Console()


def warn(text: str) -> None:
    console.print(f"[yellow]robustmnist: warning:[/] {to_flags(text)}", highlight=False, markup=True)


def say(text: str) -> None:
    """A line of the run (its plan, an attack's ETA) on stderr, as the terminal spells it."""
    console.print(to_flags(text), markup=False, highlight=False)


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


class RunProgress:
    """The progress callback of a run (run.scoring.ProgressFn) as a bar, started when the run
    says its total (after its plan line), so nothing flashes when a run stops early."""

    def __init__(self, quiet: bool = False, counted: tuple[str, ...] = ("score", "attack")):
        self.bar = progress(quiet=quiet)
        self.counted = counted
        self.task = None

    def __enter__(self) -> RunProgress:
        return self

    def __call__(self, kind: str, k: int, status: str) -> None:
        if kind == "total":
            self.bar.start()
            self.task = self.bar.add_task("scoring", total=k, status="")
            return
        if self.task is None:
            return
        fields = {"status": status} if status else {}
        self.bar.update(self.task, advance=k if kind in self.counted else 0, **fields)

    def __exit__(self, *exc) -> None:
        self.bar.stop()


def print_listed_sets(listed: list[dict], between: str) -> None:
    """Sets two results do not share byte for byte: said out loud, never dropped silently."""
    if not listed:
        return
    left_out = [d for d in listed if not d["kept"]]
    console.print(f"[yellow]{len(left_out)} set(s) left out and {len(listed) - len(left_out)} kept with a "
                  f"caveat when comparing {between}:[/]")
    for d in listed[:12]:
        console.print(f"  {d['set']:22s} {'kept' if d['kept'] else 'left out'}: {d['reason']}")
    if len(listed) > 12:
        console.print(f"  ... and {len(listed) - 12} more (see results.json summary.reference_sets)")
