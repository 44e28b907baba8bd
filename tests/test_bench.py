"""Benchmarking: McNemar, mCE as ImageNet-C defines it, the gate, and one generation per set."""

from __future__ import annotations

import numpy as np
import pytest

from robustmnist.errors import UserError
from robustmnist.gate import check, load_policy
from robustmnist.metrics import corruption as corruption_mod
from robustmnist.metrics import paired as paired_mod
from robustmnist.metrics import reference as reference_mod
from robustmnist.results import Environment, ModelInfo, Result, SetMetrics, ShiftRecord

from .conftest import synthetic_digits


def test_mcnemar_hand_worked_table():
    # discordant pairs b=10 (A right, B wrong), c=2: P[Binom(12, ½) ≤ 2] = (1 + 12 + 66) / 4096
    assert paired_mod.mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096)
    assert paired_mod.mcnemar_exact(2, 10) == paired_mod.mcnemar_exact(10, 2)
    assert paired_mod.mcnemar_exact(5, 5) == 1.0 and paired_mod.mcnemar_exact(0, 0) == 1.0
    # scipy agrees
    from scipy.stats import binomtest

    assert paired_mod.mcnemar_exact(37, 21) == pytest.approx(binomtest(21, 58, 0.5).pvalue)


def _metrics(acc: float, n: int = 100) -> dict:
    return dict(n=n, accuracy=acc, accuracy_ci=[acc - 0.01, acc + 0.01], error=1 - acc,
                per_class_accuracy=[acc] * 10, per_class_n=[n // 10] * 10, confusion=[[0] * 10] * 10,
                ece=0.02, nll=0.1, brier=0.05, mean_confidence=acc)


def make_result(name: str, clean: float, shifts: dict[tuple[str, int], float], ood_auroc=None) -> Result:
    from robustmnist.results import OODRecord

    recs = [ShiftRecord(**_metrics(a), name=s, family="noise" if "noise" in s else "geometric", severity=v,
                        sha256=f"{s}{v}") for (s, v), a in shifts.items()]
    ood = []
    if ood_auroc is not None:
        ood = [OODRecord("fashion", 100, {"msp": {"auroc": ood_auroc, "fpr95": 0.3, "aupr_in": 0.9,
                                                  "aupr_out": 0.9}}, 0.7, 0.2, 0.05, [10] * 10)]
    from robustmnist.run.collector import summarise

    r = Result(ModelInfo(f"{name}.pt", name * 8, "checkpoint", "range=0-1", name=name),
               Environment("3.11", "2", "cpu"), SetMetrics(**_metrics(clean)), suite={"n": 100},
               shifts=recs, ood=ood)
    r.summary = summarise(clean, recs, ood)
    return r


def test_mce_matches_imagenet_c_definition(tmp_path):
    ref = make_result("ref", 0.9, {("rotate", 1): 0.8, ("rotate", 2): 0.6, ("gaussian_noise", 1): 0.7})
    f = make_result("f", 0.95, {("rotate", 1): 0.9, ("rotate", 2): 0.8, ("gaussian_noise", 1): 0.85})
    path = tmp_path / "ref.json"
    ref.save(path)
    ce = corruption_mod.corruption_errors(f, reference_mod.load_reference(path))
    # CE_rotate = (0.1 + 0.2) / (0.2 + 0.4); CE_noise = 0.15 / 0.3
    assert ce["ce"]["rotate"] == pytest.approx(0.3 / 0.6)
    assert ce["ce"]["gaussian_noise"] == pytest.approx(0.5)
    assert ce["mce"] == pytest.approx((0.5 + 0.5) / 2)
    # relative: ((0.1-0.05) + (0.2-0.05)) / ((0.2-0.1) + (0.4-0.1))
    assert ce["relative_ce"]["rotate"] == pytest.approx(0.2 / 0.4)
    assert ce["reference"]["name"] == "ref"
    # a set scored on other images (different sha256) does not count
    f.shifts[0].sha256 = "other"
    ref = reference_mod.load_reference(path)
    assert corruption_mod.corruption_errors(f, ref)["ce"]["rotate"] == pytest.approx(0.2 / 0.4)


POLICY = """
min_clean_accuracy = 0.9
max_clean_ece = 0.05
max_accuracy_drop = 0.5
min_ood_auroc = 0.8
[[shift]]
name = "noise"
min_accuracy = 0.7
[[shift]]
name = "rotate"
severities = [1]
min_accuracy = 0.85
aggregate = "each"
"""


def test_gate_pass_and_fail(tmp_path):
    pol = tmp_path / "gate.toml"
    pol.write_text(POLICY)
    good = make_result("good", 0.97, {("rotate", 1): 0.9, ("gaussian_noise", 1): 0.8}, ood_auroc=0.95)
    bad = make_result("bad", 0.97, {("rotate", 1): 0.8, ("gaussian_noise", 1): 0.4}, ood_auroc=0.6)
    assert all(r.passed for r in check(good, load_policy(pol)))
    failed = {r.rule for r in check(bad, load_policy(pol)) if not r.passed}
    assert failed == {"noise mean accuracy ≥", "rotate s1 accuracy ≥", "OOD fashion AUROC (msp) ≥",
                      "largest accuracy drop ≤"}


@pytest.mark.parametrize("text, message", [
    ("min_clean_acuracy = 0.9", "unknown key"),
    ("min_clean_accuracy = 'high'", "must be a number"),
    ("[[shift]]\nmin_accuracy = 0.5", "needs a name"),
    ("[[shift]]\nname='fonts'\nmin_accuracy=0.5\naggregate='median'", "aggregate"),
    ("min_clean_accuracy = ", "not valid TOML"),
])
def test_bad_policies(tmp_path, text, message):
    pol = tmp_path / "gate.toml"
    pol.write_text(text)
    with pytest.raises(UserError, match=message):
        load_policy(pol)


def test_gate_cli_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from robustmnist.cli import app

    pol = tmp_path / "gate.toml"
    pol.write_text(POLICY)
    good = make_result("good", 0.97, {("rotate", 1): 0.9, ("gaussian_noise", 1): 0.8}, ood_auroc=0.95)
    bad = make_result("bad", 0.5, {("rotate", 1): 0.9, ("gaussian_noise", 1): 0.8}, ood_auroc=0.95)
    good.save(tmp_path / "good.json")
    bad.save(tmp_path / "bad.json")
    runner = CliRunner()
    assert runner.invoke(app, ["gate", str(tmp_path / "good.json"), "--policy", str(pol)]).exit_code == 0
    r = runner.invoke(app, ["gate", str(tmp_path / "bad.json"), "--policy", str(pol)])
    assert r.exit_code == 1 and "FAIL" in r.output
    (tmp_path / "broken.toml").write_text("wobble = 1")
    r = runner.invoke(app, ["gate", str(tmp_path / "good.json"), "--policy", str(tmp_path / "broken.toml")])
    assert r.exit_code != 0 and isinstance(r.exception, UserError)


def test_bench_generates_each_set_once(monkeypatch):
    import robustmnist.shifts.pipeline as pipeline
    import robustmnist.shifts.sets as sets
    from robustmnist.data.datasets import DigitSet
    from robustmnist.models.load import LoadedModel
    from robustmnist.models.preprocess import Preprocess
    from robustmnist.models.zoo import build
    from robustmnist.run.collect import evaluate_many
    from robustmnist.shifts.suite import load_suite

    calls = []
    real = sets.store_set
    # every freshly generated set is stored once by the process that scores it, whether it was
    # made here (get_set) or by pipeline workers
    for module in (sets, pipeline):
        monkeypatch.setattr(module, "store_set", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    images, labels = synthetic_digits(1200)
    models = [LoadedModel(build(a).eval(), Preprocess(), a, "", "test")
              for a in ("lenet5", "mlp-784-50-50-10", "cnn-small")]
    suite = load_suite("default").restrict(["rotate", "gaussian_noise"], [1, 4])
    runs = evaluate_many(models, suite, clean=DigitSet(images, labels, "t"), use_cache=False)
    assert len(calls) == 4  # 2 shifts × 2 severities, whatever the number of models
    assert [len(r.result.shifts) for r in runs] == [4, 4, 4]
    assert len({r.result.shifts[0].sha256 for r in runs}) == 1


def test_compare_pairs_predictions(tmp_path):
    a = make_result("a", 0.9, {("rotate", 1): 0.8})
    b = make_result("b", 0.9, {("rotate", 1): 0.8})
    labels = np.arange(100) % 10
    pa = {"clean": labels.copy(), "labels": labels, "rotate@1": labels.copy()}
    pb = {"clean": labels.copy(), "labels": labels, "rotate@1": (labels + 1) % 10}
    pb["rotate@1"][:50] = labels[:50]
    rows = paired_mod.compare(a, pa, b, pb)
    rot = next(r for r in rows if r.set_id == "rotate@1")
    assert (rot.b, rot.c) == (50, 0) and rot.p_value < 1e-10 and rot.diff == pytest.approx(-0.5)
    assert paired_mod.family_winners(rows) == {"geometric": "A"}


@pytest.mark.mirror
@pytest.mark.parametrize("shift,severity", [("gaussian_noise", 3), ("rotate", 5), ("euro_one", 4), ("fonts", 3),
                                            ("coffee_stain", 3)])
def test_pinned_reference_matches_the_sets_generated_today(mnist_test, shift, severity):
    # mCE compares errors only on byte-identical sets. A shift retuned without re-pinning the
    # reference (benchmarks/make_reference.py) would drop out of every mCE (listed, not silently).
    # Nested sets: the first 1,000 images are the pinned set's first two chunks.
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.fingerprint import chunk_digests
    from robustmnist.shifts.sets import make_set
    from robustmnist.shifts.suite import load_suite

    ref = reference_mod.load_reference()
    suite = load_suite("default")
    assert ref.name and len(ref.sets) == len(suite.shift_names) * 5
    rs = ref.sets[(shift, severity)]
    assert rs.version == get_shift(shift).version and rs.params == suite.params(shift, severity), (
        "the pinned reference is of another shift version or ladder: re-pin it (benchmarks/make_reference.py)")
    assert rs.n == 10_000 and len(rs.chunks) == 20 and len(rs.correct) == 10_000
    images, labels = make_set(get_shift(shift), severity, suite.params(shift, severity),
                              mnist_test.images, mnist_test.labels, 1000, seed=0)
    assert chunk_digests(images, labels) == list(rs.chunks[:2])
    assert 0.0 < rs.error_at(1000) < 0.9 and rs.error_at(10_000) == pytest.approx(rs.error)
    assert len(ref.clean_correct) == 10_000 and ref.clean_error_at(10_000) == pytest.approx(ref.clean_error)
