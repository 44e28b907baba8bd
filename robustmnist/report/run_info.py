"""How a run was made, in words for report headers: forward path, n and why, partial or not."""

from __future__ import annotations

from ..results import Result


def forward_path(r: Result) -> str:
    fp = (r.execution or {}).get("forward_path") or {}
    if not fp.get("name"):
        return "—"
    text = str(fp["name"])
    rate, eager = fp.get("images_per_s"), (fp.get("rates") or {}).get("eager")
    if rate:
        text += f", {rate:,} images/s on the probe"
        if eager and fp["name"] != "eager":
            text += f" ({rate / eager:.1f}x eager)"
    return text


def images_per_set(r: Result) -> str:
    ex = r.execution or {}
    n = (r.suite or {}).get("n") or ex.get("n")
    if not n:
        return "—"
    text = f"{n:,}"
    reason, budget = ex.get("n_reason"), ex.get("budget_s")
    if reason == "budget" and budget:
        text += f" (chosen to fit a {_dur(budget)} budget; the full {ex.get('n_full', 10_000):,} " \
                f"were estimated at ~{_dur(ex.get('full_estimated_s') or 0)})"
    elif reason:
        text += f" ({reason})"
    return text


def partial_note(r: Result) -> str | None:
    """A warning for a report built from an interrupted run, else None."""
    if not r.partial:
        return None
    want = (r.execution or {}).get("sets") or len((r.suite or {}).get("shifts") or []) * \
        len((r.suite or {}).get("severities") or [])
    have = len(r.shifts)
    of = f" of {want}" if want else ""
    return (f"Partial results: the run was interrupted after {have}{of} shifted sets; means and "
            "rankings cover only those. `robustmnist eval ... --resume` finishes it.")


def _dur(seconds: float) -> str:
    from ..run.budget import duration

    return duration(float(seconds))
