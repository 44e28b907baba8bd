"""The time budget: n per set from the measured throughput, and the line that says so."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustmnist.errors import UserError
from robustmnist.models.fastpath import PathChoice
from robustmnist.models.load import LoadedModel
from robustmnist.models.preprocess import Preprocess
from robustmnist.run import budget
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits


def test_parse_budget():
    assert budget.parse_budget(None) is None
    assert budget.parse_budget("2m") == 120
    assert budget.parse_budget("90s") == 90
    assert budget.parse_budget("45") == 45
    assert budget.parse_budget("1.5h") == 5400
    assert budget.parse_budget("none") == math.inf
    for bad in ("soon", "-3m", "0", "2 weeks"):
        with pytest.raises(UserError, match="budget= must be"):
            budget.parse_budget(bad)


def _probed(rate: float, device: str = "cpu") -> LoadedModel:
    """A model whose forward path was already probed at ``rate`` images/s (no probe runs)."""
    m = LoadedModel(lambda x: torch.zeros(len(x), 10), Preprocess(), "m.pt", "", "test",
                    device=torch.device(device))
    m.forward_path = PathChoice("onnxruntime", rate, {"eager": rate / 4, "onnxruntime": rate})
    return m


@pytest.fixture(scope="module")
def clean10k():
    images, labels = synthetic_digits(10_000, seed=5)
    return images, labels


@pytest.fixture
def idle_machine(monkeypatch):
    # the plan scales tabled generation costs by how busy the CPU is right now; pin that here
    monkeypatch.setattr(budget, "machine_factor", lambda *a, **k: 1.0)


def _plan(rate, clean10k, **kw):
    images, labels = clean10k
    kw.setdefault("use_cache", False)
    return budget.plan_run([_probed(rate, kw.pop("device", "cpu"))], load_suite("default"),
                           clean_images=images, clean_labels=labels, **kw)[1]


def test_a_fast_model_gets_the_full_sets(clean10k, idle_machine):
    plan = _plan(1e9, clean10k, budget=1e6)
    assert plan.n == 10_000 and plan.reason == "fits the budget"


def test_a_slow_model_gets_the_largest_nested_n_that_fits(clean10k, idle_machine):
    plan = _plan(20_000, clean10k, budget=120)
    chunk = budget.nest_chunk()
    assert plan.reason == "budget" and plan.n % chunk == 0 and chunk <= plan.n < 10_000
    assert plan.estimated_s <= 120 < plan.full_s
    costs = budget.set_costs(load_suite("default"), plan.n + chunk, 0, use_cache=False)
    assert budget.estimate_seconds(plan.n + chunk, [20_000], costs, 0, plan.machine_factor) > 120
    line = plan.line()
    assert line.startswith("~20k images/s on cpu (onnxruntime, 4.0x eager): ")
    assert f"{plan.n:,} images per set" in line and "the full 10,000 would take ~" in line
    assert line.endswith("--n 10000 or a GPU")
    d = plan.to_dict()
    assert d["n"] == plan.n and d["n_reason"] == "budget" and d["budget_s"] == 120 and d["line"] == line


def test_a_hopeless_budget_still_runs_the_smallest_n_and_says_so(clean10k, idle_machine):
    plan = _plan(50, clean10k, budget=10)
    assert plan.n == budget.nest_chunk() and "the fewest allowed" in plan.line()


def test_n_and_gpus_override_the_budget(clean10k, idle_machine):
    assert (_plan(50, clean10k, n=2000).n, _plan(50, clean10k, n=2000).reason) == (2000, "--n")
    gpu = _plan(50, clean10k, device="cuda")
    assert gpu.n == 10_000 and gpu.reason == "gpu" and gpu.to_dict()["budget_s"] is None
    assert _plan(50, clean10k, device="cuda", budget=10).reason == "budget"  # explicit: applies anywhere
    assert _plan(50, clean10k, budget=math.inf).reason == "no budget"


def test_the_estimate_grows_with_n_and_counts_cached_sets_as_reads():
    suite = load_suite("quick")
    cold = budget.set_costs(suite, 1000, 0, use_cache=False)
    warm = [budget.SetCost(c.name, c.generate_s_per_10k, True) for c in cold]
    est = [budget.estimate_seconds(k, [5000], cold) for k in (500, 1000, 5000)]
    assert est == sorted(est) and len(set(est)) == 3
    assert budget.estimate_seconds(5000, [5000], warm) < est[-1]
    # two models score every set: the scoring part doubles
    one = budget.estimate_seconds(5000, [5000], warm) - budget.REPORT_S
    two = budget.estimate_seconds(5000, [5000, 5000], warm) - budget.REPORT_S
    assert two > 1.9 * (5000 * (1 + len(warm)) / 5000)
    assert two > one


def test_the_half_width_is_the_worst_case_wilson_width():
    assert budget.half_width_pt(1000) == pytest.approx(3.1, abs=0.01)
    assert budget.half_width_pt(10_000) == pytest.approx(0.98, abs=0.01)


def test_machine_factor_is_positive_and_bounded():
    images, labels = synthetic_digits(1000)
    f = budget.machine_factor(load_suite("quick"), images, labels.astype(np.int64))
    assert 0.25 <= f <= 50


def test_a_set_already_in_the_cache_counts_as_cached():
    from robustmnist.shifts.registry import get_shift
    from robustmnist.shifts.sets import get_set, set_sha256

    images, labels = synthetic_digits(500, seed=2)
    suite = load_suite("quick").restrict(["gaussian_noise", "rotate"], [3])
    before = budget.set_costs(suite, 500, 0, images, labels)
    assert [c.cached for c in before] == [False, False]
    get_set(get_shift("rotate"), 3, suite.params("rotate", 3), images, labels, 500, 0,
            source_sha=set_sha256(images, labels))
    after = budget.set_costs(suite, 500, 0, images, labels)
    assert [(c.name, c.cached) for c in after] == [("gaussian_noise", False), ("rotate", True)]


def test_every_shipped_shift_has_a_measured_generation_cost():
    # a shift missing from the table would be costed at the median: print_scan (65 s per
    # ladder at 10,000) once was, and the no-flags run overshot its budget
    from robustmnist.shifts.suite import available_suites

    table = budget.generation_costs()
    for name in available_suites():
        suite = load_suite(name)
        missing = [s for s in suite.shift_names if s not in table]
        assert not missing, f"{name}: no generation cost for {missing}: re-run benchmarks/shifts.py"
    assert all(len(levels) == 5 and all(s > 0 for s in levels) for levels in table.values())
    assert budget.generate_s_per_10k("print_scan", 5) > 10 * budget.generate_s_per_10k("invert", 5)
