"""The shipped example gate, measured against the pinned reference (whatever its numbers are after
a re-pin), and policy checks that hold for every kind of rule table."""

from __future__ import annotations

import pytest

from robustmnist.errors import UserError
from robustmnist.gate import check, load_policy

from .test_guard import EXAMPLE_POLICY, _reference_result

# A rule the pinned lenet5 passes by more than this gates nothing a real model would do: each
# example rule must fail for a model this much worse than the reference on the rule's own sets.
MAX_MARGIN = 0.15


def _one_rule_policies(policy: dict):
    for key, value in policy.items():
        if isinstance(value, list):
            for rule in value:
                yield f"[[{key}]] {rule.get('name', '')}", {key: [rule]}
        else:
            yield key, {key: value}


def test_every_example_rule_is_within_reach_of_the_reference():
    ref = _reference_result()
    margins = {}
    for label, policy in _one_rule_policies(load_policy(EXAMPLE_POLICY)):
        verdicts = check(ref, policy)
        assert verdicts and all(v.passed for v in verdicts), (label, verdicts)
        # measured above a minimum or below a maximum; an "each" rule is as close as its closest level
        margins[label] = min(abs(v.measured - v.threshold) for v in verdicts)
    loose = {k: round(m, 3) for k, m in margins.items() if m > MAX_MARGIN}
    assert not loose, f"rules the reference passes by more than {MAX_MARGIN:.0%}: {loose} (all: {margins})"


@pytest.mark.parametrize("text, words", [
    ("[[real]]\nmin_accuracy = 1.5", "can never pass"),
    ("[[real]]\nmax_accuracy_drop = 1.0", "can never fail"),
    ("[[attack]]\nmin_accuracy = 0", "can never fail"),
    ("[[attack]]\nmin_accuracy = 'high'", "must be a number"),
    ("shift = 3", "[[shift]] tables"),
    ("real = [1]", "[[real]] tables"),
])
def test_every_rule_table_is_checked_alike(tmp_path, text, words):
    pol = tmp_path / "gate.toml"
    pol.write_text(text + "\n")
    with pytest.raises(UserError) as exc:
        load_policy(pol)
    assert words in str(exc.value) and len(str(exc.value).splitlines()) == 1
