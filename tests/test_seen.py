"""Seen vs unseen: augmentation recorded in checkpoints, seen shifts kept out of every headline."""

from __future__ import annotations

import pytest
import torch

from robustmnist.errors import UserError
from robustmnist.gate import check
from robustmnist.metrics import corruption as corruption_mod
from robustmnist.metrics import leaderboard as leaderboard_mod
from robustmnist.metrics import reference as reference_mod
from robustmnist.results import Environment, ModelInfo, Result, SetMetrics, ShiftRecord
from robustmnist.run.collector import summarise
from robustmnist.run.seen import SeenInTraining, resolve
from robustmnist.shifts.glyphs import load_manifest, select_faces
from robustmnist.shifts.registry import get_shift
from robustmnist.train.augment import plan_augmentation, training_params


def _m(acc: float) -> dict:
    return dict(n=100, accuracy=acc, accuracy_ci=[acc - 0.01, acc + 0.01], error=1 - acc,
                per_class_accuracy=[acc] * 10, per_class_n=[10] * 10, confusion=[[0] * 10] * 10,
                ece=0.02, nll=0.1, brier=0.05, mean_confidence=acc)


def _result(name: str, recs: dict[tuple[str, str, int], float], seen: tuple[str, ...] = ()) -> Result:
    s = SeenInTraining(seen, (), "checkpoint") if seen else None
    records = [ShiftRecord(**_m(a), name=n, family=f, severity=v, sha256=f"{n}{v}",
                           seen=f in seen) for (n, f, v), a in recs.items()]
    r = Result(ModelInfo(f"{name}.pt", name * 8, "checkpoint", "range=0-1", name=name),
               Environment("3.11", "2", "cpu"), SetMetrics(**_m(0.99)), suite={"n": 100},
               shifts=records)
    r.summary = summarise(0.99, records, [], seen=s)
    return r


RECS = {("fonts", "fonts", 1): 0.99, ("fonts", "fonts", 2): 0.97,
        ("gaussian_noise", "noise", 1): 0.90, ("rotate", "geometric", 1): 0.60}


def test_headline_numbers_leave_seen_families_out():
    r = _result("aug", RECS, seen=("fonts",))
    s = r.summary
    assert s["mean_shifted_accuracy"] == pytest.approx((0.90 + 0.60) / 2)
    assert s["worst_shift"]["name"] == "rotate"
    assert s["seen_in_training"]["families"] == ["fonts"]
    assert s["seen_in_training"]["n_sets"] == 2
    assert s["seen_in_training"]["mean_accuracy"] == pytest.approx(0.98)
    assert set(s["per_family"]) == {"fonts", "noise", "geometric"}  # the breakdown keeps all
    plain = _result("plain", RECS)
    assert "seen_in_training" not in plain.summary
    assert plain.summary["mean_shifted_accuracy"] == pytest.approx((0.99 + 0.97 + 0.9 + 0.6) / 4)
    # the worst shift is never a seen one, even when it is the lowest
    low = _result("aug", {**RECS, ("fonts", "fonts", 3): 0.1}, seen=("fonts",))
    assert low.summary["worst_shift"]["name"] == "rotate"


def test_mce_is_over_unseen_shifts_and_seen_ce_is_apart(tmp_path):
    ref = _result("ref", {k: v - 0.1 for k, v in RECS.items()})
    ref.save(tmp_path / "ref.json")
    r = _result("aug", RECS, seen=("fonts",))
    ce = corruption_mod.corruption_errors(r, reference_mod.load_reference(tmp_path / "ref.json"))
    assert set(ce["ce"]) == {"gaussian_noise", "rotate"}
    assert set(ce["ce_seen"]) == {"fonts"}
    assert ce["mce"] == pytest.approx((0.10 / 0.20 + 0.40 / 0.50) / 2)


def test_leaderboard_ranks_on_families_no_model_saw():
    # the augmented model is best on fonts (which it was taught) but worse elsewhere
    aug = _result("aug", {**RECS, ("fonts", "fonts", 1): 1.0, ("fonts", "fonts", 2): 1.0,
                          ("gaussian_noise", "noise", 1): 0.80}, seen=("fonts",))
    plain = _result("plain", {**RECS, ("fonts", "fonts", 1): 0.5, ("fonts", "fonts", 2): 0.5})
    ref = reference_mod.reference_from_result(plain)
    rows = leaderboard_mod.leaderboard([aug, plain], ref)
    assert [r.name for r in rows] == ["plain", "aug"]
    assert rows[1].seen == "fonts" and rows[0].seen == ""
    assert rows[0].mean_shifted_accuracy == pytest.approx((0.90 + 0.60) / 2)


def test_gate_leaves_seen_out_unless_a_rule_opts_in():
    r = _result("aug", {**RECS, ("fonts", "fonts", 3): 0.2}, seen=("fonts",))
    drop = check(r, {"max_accuracy_drop": 0.5})[0]
    assert drop.passed and drop.detail == "rotate s1"
    assert not check(r, {"max_accuracy_drop": 0.5, "include_seen": True})[0].passed
    with pytest.raises(UserError, match="saw in training.*include_seen = true"):
        check(r, {"shift": [{"name": "fonts", "min_accuracy": 0.5}]})
    opted = check(r, {"shift": [{"name": "fonts", "min_accuracy": 0.5, "include_seen": True}]})
    assert opted[0].measured == pytest.approx((0.99 + 0.97 + 0.2) / 3)


def test_resolve_reads_checkpoints_and_trained_on():
    meta = {"training": {"augment": {"shifts": ["gaussian_noise"], "families": ["noise"]}}}
    s = resolve(meta)
    assert s.families == ("noise",) and s.source == "checkpoint" and s.covers("noise")
    # older checkpoints recorded only shift names: families are looked up
    old = resolve({"training": {"config": {"augment": ["rotate", "fonts_sans"]}}})
    assert set(old.families) == {"geometric", "fonts"}
    both = resolve(meta, "fonts,blur")
    assert set(both.families) == {"noise", "fonts", "blur"}
    assert both.source == "checkpoint + --trained-on"
    assert not resolve({}) and resolve({}).to_dict()["families"] == []
    with pytest.raises(UserError, match="unknown shift or family 'fontz'"):
        resolve(None, "fontz")


def test_font_faces_are_split_by_family_and_pinned():
    faces = load_manifest()
    ev = select_faces(faces, "all", "all", "eval")
    tr = select_faces(faces, "all", "all", "train")
    assert ev and tr and not set(ev) & set(tr)
    assert len(ev) + len(tr) == len(faces)
    assert not {faces[i].family for i in ev} & {faces[i].family for i in tr}
    for category in {f.category for f in faces}:  # both sides cover every category
        for split in ("eval", "train"):
            assert select_faces(faces, category, "regular", split)
    with pytest.raises(UserError, match="unknown font split"):
        select_faces(faces, "all", "all", "test")


def test_augmentation_draws_training_faces_only():
    fonts, noise = get_shift("fonts"), get_shift("gaussian_noise")
    assert training_params(fonts, {"faces": "all"}) == {"faces": "all", "split": "train"}
    assert training_params(noise, {"sigma": 0.1}) == {"sigma": 0.1}
    plan = plan_augmentation("fonts,gaussian_noise")
    assert plan.families == ["noise", "fonts"]
    # a training-faces set and an evaluation-faces set of the same seed share no image
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    xe, _ = fonts.generate(50, g1, faces="regular")
    xt, _ = fonts.generate(50, g2, faces="regular", split="train")
    assert not torch.equal(xe, xt)


def test_evaluate_marks_the_checkpoints_augmentation_seen_end_to_end():
    # A model whose checkpoint says it was trained with --augment fonts: eval marks fonts seen
    # and keeps it out of the headline; --trained-on adds a family for any model.
    from robustmnist.data.datasets import DigitSet
    from robustmnist.models.load import LoadedModel
    from robustmnist.models.preprocess import Preprocess
    from robustmnist.models.zoo import build
    from robustmnist.run.collect import evaluate
    from robustmnist.shifts.suite import load_suite

    from .conftest import synthetic_digits

    images, labels = synthetic_digits(60)
    torch.manual_seed(0)
    meta = {"training": {"augment": {"shifts": ["fonts"], "families": ["fonts"]}}}
    model = LoadedModel(build("lenet5").eval(), Preprocess(), "aug.pt", "0" * 64, "checkpoint",
                        metadata=meta)
    suite = load_suite("default").restrict(["fonts", "gaussian_noise", "rotate"], [1])
    clean = DigitSet(images, labels, "tiny")
    r = evaluate(model, suite, n=60, clean=clean, use_cache=False).result
    seen = {x.name: x.seen for x in r.shifts}
    assert seen == {"fonts": True, "gaussian_noise": False, "rotate": False}
    unseen = [x.accuracy for x in r.shifts if not x.seen]
    assert r.summary["mean_shifted_accuracy"] == pytest.approx(sum(unseen) / 2)
    assert r.summary["seen_in_training"]["source"] == "checkpoint"
    assert r.summary["worst_shift"]["name"] != "fonts"
    again = evaluate(model, suite, n=60, clean=clean, use_cache=False, trained_on="noise").result
    assert {x.name for x in again.shifts if x.seen} == {"fonts", "gaussian_noise"}
    assert again.summary["seen_in_training"]["source"] == "checkpoint + --trained-on"
    assert again.summary["mean_shifted_accuracy"] == pytest.approx(
        next(x.accuracy for x in again.shifts if x.name == "rotate"))
    # results.json keeps the marks
    from robustmnist.results import Result as R

    assert [x.seen for x in R.from_dict(again.to_dict()).shifts] == [x.seen for x in again.shifts]


def test_report_cards_show_seen_families_apart():
    from robustmnist.report.sections.summary import compare_rows, summary_cards
    from robustmnist.report.view import make_layout, make_models

    aug, plain = _result("aug", RECS, seen=("fonts",)), _result("plain", RECS)
    models = make_models([aug, plain])
    layout = make_layout(models)
    cards = {c.label: c for c in summary_cards(models[0], layout)}
    assert cards["Mean shifted accuracy"].value == "75.0%"
    assert "unseen shifts" in cards["Mean shifted accuracy"].detail
    assert cards["Seen in training"].value == "fonts"
    assert "Seen in training" not in {c.label for c in summary_cards(models[1], layout)}
    assert len(compare_rows(models, layout)) == 2
