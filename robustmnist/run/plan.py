"""Which sets a run scores: the clean digits, the (shift, severity) sets of its suite in suite
order, less those an interrupted run already finished."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.datasets import DigitSet, load_mnist
from ..errors import UserError
from ..results import ShiftRecord
from ..shifts.pipeline import SetRequest
from ..shifts.suite import Suite
from .collector import RunOutput
from .scoring import set_id


def clean_and_source(clean: DigitSet | None, n: int | None, data_root) -> tuple[DigitSet, DigitSet]:
    """(the first ``n`` clean digits, scored; the whole clean set, the source of shifted sets).

    Whole, because nested sets read chunk k's digits by position, whatever n is."""
    source = clean or load_mnist("test", data_root)
    if n is None:
        return source, source
    if n < 1:
        raise UserError(f"`n=` must be at least 1, got {n}")
    return DigitSet(source.images[:n], source.labels[:n], source.name), source


def suite_requests(suite: Suite | None) -> list[SetRequest]:
    """Every (shift, severity) set of the suite, in the order results list them."""
    if suite is None:
        return []
    return [SetRequest(suite.shift(name), sev, suite.params(name, sev))
            for name in suite.shift_names for sev in suite.severities]


@dataclass
class SetPlan:
    """The sets still to score, and the sets every prior output already holds (one record per
    prior each), both in suite order."""

    todo: list[SetRequest] = field(default_factory=list)
    held: list[list[ShiftRecord]] = field(default_factory=list)


def plan_sets(suite: Suite | None, priors: list[RunOutput]) -> SetPlan:
    """Split the suite's sets into those to score and those every prior output already holds."""
    plan = SetPlan()
    for req in suite_requests(suite):
        held = [prior_record(p, req) for p in priors]
        if priors and all(h is not None for h in held):
            plan.held.append(held)
        else:
            plan.todo.append(req)
    return plan


def prior_record(prior: RunOutput, req: SetRequest) -> ShiftRecord | None:
    """The earlier record of this very set (same shift version and level parameters), if any."""
    for r in prior.result.shifts:
        if (r.name, r.severity) == (req.shift.name, req.severity) and r.version == req.shift.version \
                and r.params == req.params and set_id(r.name, r.severity) in prior.predictions:
            return r
    return None
