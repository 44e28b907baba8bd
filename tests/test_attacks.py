"""Adversarial attacks: exact answers on a linear model, the checks every adversarial image gets,
preprocessing inside the attack, black-box models, masking warnings, reproducibility, results,
gate, report and CLI. Tiny: a few dozen synthetic digits and a hand-built linear classifier whose
exact robustness radius is known in closed form."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from robustmnist.attacks import registry
from robustmnist.attacks.budget import MIN_IMAGES, choose_prefix
from robustmnist.attacks.evaluate import check_adversarial, evaluate_attacks, plan_attacks
from robustmnist.attacks.masking import ladder_checks
from robustmnist.attacks.pgd import fgsm, pgd
from robustmnist.attacks.registry import AttackConfig
from robustmnist.attacks.target import Target
from robustmnist.attacks.training import AdversarialStep, AdversarialTraining
from robustmnist.errors import UserError
from robustmnist.models.load import LoadedModel
from robustmnist.models.preprocess import MNIST_MEAN, MNIST_STD, Preprocess
from robustmnist.results import AdversarialRecord, Result

from .conftest import synthetic_digits

# hundreds of tiny gradient steps: with several threads the OpenMP hand-offs cost more than
# the maths (40x slower on a busy 2-core box)
pytestmark = pytest.mark.usefixtures("one_thread")


def band_weights() -> torch.Tensor:
    """Class k's weight is 1 on the rows where synthetic_digits draws class k's bar."""
    w = torch.zeros(10, 28, 28)
    for k in range(10):
        w[k, 4 + 2 * k : 7 + 2 * k, 6:22] = 1.0
    return w.reshape(10, 784)


def linear_model() -> nn.Module:
    lin = nn.Linear(784, 10)
    with torch.no_grad():
        lin.weight.copy_(band_weights())
        lin.bias.zero_()
    return nn.Sequential(nn.Flatten(), lin).eval()


def weak_model() -> nn.Module:
    """The template blurred by random weights: still right on clean digits, easy to fool."""
    weak = linear_model()
    with torch.no_grad():
        weak[1].weight.mul_(0.02).add_(torch.randn(10, 784, generator=torch.Generator().manual_seed(0)) * 0.05)
    return weak


def loaded(module, preprocess: Preprocess | None = None, fmt: str = "torchscript") -> LoadedModel:
    return LoadedModel(module, preprocess or Preprocess(), "linear.pt", "0" * 64, fmt)


@pytest.fixture(scope="module")
def digits():
    imgs, labels = synthetic_digits(40, seed=3)
    return imgs, labels


def exact_radius(imgs: np.ndarray, labels: np.ndarray, norm: str) -> np.ndarray:
    """Smallest eps that flips each image for a linear model: min_j margin_j / ||w_y - w_j||_dual.

    The box [0, 1] never binds here: the pixels to lower sit at 1, those to raise near 0."""
    w = band_weights().double()
    x = torch.from_numpy(imgs).double().div(255).reshape(len(imgs), 784)
    z = x @ w.T
    out = []
    for i, y in enumerate(labels):
        r = []
        for j in range(10):
            if j == y:
                continue
            d = w[y] - w[j]
            dual = d.abs().sum() if norm == "linf" else d.norm()
            r.append(float((z[i, y] - z[i, j]) / dual))
        out.append(min(r))
    return np.array(out)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_finds_exactly_the_closed_form_radius(digits, norm):
    imgs, labels = digits
    radius = exact_radius(imgs, labels, norm)
    target = Target(loaded(linear_model())).eval()
    x = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    for eps, broken in ((0.97 * radius.min(), False), (1.03 * radius.max(), True)):
        x_adv = pgd(target, x, y, AttackConfig(norm, float(eps), seed=1, steps=40))
        assert check_adversarial(x, x_adv, float(eps), norm).all()
        fooled = target(x_adv).argmax(1) != y
        assert bool(fooled.all()) if broken else not bool(fooled.any()), (norm, eps)


def test_fgsm_is_optimal_on_a_linear_model_and_stays_in_the_box(digits):
    imgs, labels = digits
    radius = exact_radius(imgs, labels, "linf")
    target = Target(loaded(linear_model())).eval()
    x = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    eps = float(np.median(radius))
    x_adv = fgsm(target, x, y, AttackConfig("linf", eps))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    fooled = (target(x_adv).argmax(1) != y).numpy()
    # against a linear model one signed step is the exact worst case on the pairwise direction,
    # so FGSM breaks at least the images whose radius (to the target it steps towards) is below eps
    assert fooled.mean() >= (radius < eps * 0.99).mean() * 0.5
    assert not fooled[radius > eps * 1.01].any()


def test_eps_is_in_pixel_units_whatever_the_preprocessing(digits):
    """The same function written for MNIST-normalised, inverted input must give the same result."""
    imgs, labels = digits
    plain = linear_model()
    # f(x) = W x  ==  W' ((1 - x) - m) / s  with W' = -s W and bias = -W' (1 - m) / s ... = W 1 - ... :
    lin = nn.Linear(784, 10)
    with torch.no_grad():
        w = band_weights()
        lin.weight.copy_(-MNIST_STD * w)
        lin.bias.copy_(w.sum(1) * (1 - MNIST_MEAN) - w.sum(1) * (1 - MNIST_MEAN))  # zero, written out
        lin.bias.copy_(w @ torch.full((784,), 1.0) - w @ torch.full((784,), MNIST_MEAN) * 0)
        lin.bias.sub_(w.sum(1) * MNIST_MEAN * 0 + w.sum(1) * 0)
    # f'(u) with u = ((1 - x) - m)/s: -s W u + b = W (x - 1 + m) + b; choose b = W (1 - m) to get W x
    with torch.no_grad():
        lin.bias.copy_(w.sum(1) * (1 - MNIST_MEAN))
    normed = nn.Sequential(nn.Flatten(), lin).eval()
    pre = Preprocess(range="norm", polarity="inverted")
    a, b = loaded(plain), loaded(normed, pre)
    x = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    assert torch.allclose(Target(a)(x), Target(b)(x), atol=1e-3)
    ra = evaluate_attacks(a, imgs, labels, _plan(a, "pgd", n=len(imgs)))
    rb = evaluate_attacks(b, imgs, labels, _plan(b, "pgd", n=len(imgs)))
    assert [r.robust_accuracy for r in ra.records] == [r.robust_accuracy for r in rb.records]


def _plan(model, names, **kw):
    kw.setdefault("n", 40)
    return plan_attacks(model, names, **kw)


def test_ladder_records_checks_and_reproducibility(digits):
    imgs, labels = digits
    m = loaded(linear_model())
    plan = _plan(m, "fgsm,pgd", severities=[1, 5])
    assert [e for _, e in plan.eps] == [0.05, 0.3]
    one = evaluate_attacks(m, imgs, labels, plan)
    two = evaluate_attacks(m, imgs, labels, plan)
    assert [r.robust_accuracy for r in one.records] == [r.robust_accuracy for r in two.records]
    # the closed-form radius is ~0.47 for every image: the template model is robust at 0.3
    assert one.records[-1].robust_accuracy == 1.0
    assert one.records[-1].robust_accuracy_ci[0] > 0.9
    assert set(one.records[0].per_attack) == {"fgsm", "pgd"}
    assert one.implementations["pgd"] == "robustmnist"
    # the honest heuristic still fires: a ladder that does not fall at all is what masking looks like
    assert len(one.warnings) == 1 and "does not fall" in one.warnings[0]


def test_clean_mistakes_count_as_broken_and_gallery_shows_adversarial_digits(digits):
    imgs, labels = digits
    wrong = labels.copy()
    wrong[:4] = (wrong[:4] + 1) % 10  # four images whose label the model disagrees with
    m = loaded(linear_model())
    sec = evaluate_attacks(m, imgs, wrong, _plan(m, "pgd", severities=[5]))
    r = sec.records[0]
    assert r.clean_correct == len(imgs) - 4
    assert r.robust_accuracy == pytest.approx((len(imgs) - 4) / len(imgs))
    assert r.per_class_robust_accuracy[wrong[0]] < 1.0
    assert r.gallery == []  # nothing was broken by the attack itself


def test_a_weak_model_breaks_and_the_gallery_holds_checked_pngs(digits):
    imgs, labels = digits
    m = loaded(weak_model())
    sec = evaluate_attacks(m, imgs, labels, _plan(m, "pgd", severities=[5]))
    r = sec.records[0]
    assert r.robust_accuracy < 0.5
    assert 0 < r.median_norm <= 0.3 + 1e-5
    e = r.gallery[0]
    assert e["true"] != e["pred"] and e["png"] and e["clean_png"]
    assert e["true"] == labels[e["index"]]


class NumpyOnly:
    """A callable with no gradients (like an ONNX session): torch in, torch out, via numpy."""

    def __init__(self, module):
        self.module = module

    def __call__(self, x):
        with torch.no_grad():
            return torch.from_numpy(self.module(x.detach()).numpy())

    def eval(self):
        return self


def test_models_without_gradients_get_square_only(digits):
    imgs, labels = digits
    m = loaded(NumpyOnly(weak_model()), fmt="onnx")
    with pytest.raises(UserError, match="square"):
        _plan(m, "pgd")
    with pytest.raises(UserError, match="no gradients"):
        _plan(m, "autoattack")
    pytest.importorskip("pyautoattack")
    plan = _plan(m, "square", severities=[5], n=20)
    assert plan.black_box
    sec = evaluate_attacks(m, imgs, labels, plan)
    r = sec.records[0]
    assert sec.black_box and r.robust_accuracy < sec.checks["clean_accuracy"]
    assert r.per_attack["square"]["rejected"] == 0 and r.gallery


def test_reference_apgd_agrees_with_the_closed_form(digits):
    pytest.importorskip("pyautoattack")
    imgs, labels = digits
    radius = exact_radius(imgs, labels, "linf")
    target = Target(loaded(linear_model())).eval()
    x = torch.from_numpy(imgs[:20]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels[:20])
    fn = registry.get_attack("apgd-ce").fn
    before = torch.random.get_rng_state()
    x_adv = fn(target, x, y, AttackConfig("linf", float(1.03 * radius.max()), seed=0))
    assert torch.equal(before, torch.random.get_rng_state())  # the reference's reseeding stays inside
    assert (target(x_adv).argmax(1) != y).all()
    x_adv = fn(target, x, y, AttackConfig("linf", float(0.97 * radius.min()), seed=0))
    assert (target(x_adv).argmax(1) == y).all()


class Noisy(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) + torch.randn(len(x), 10) * 0.5


class Quantised(nn.Module):
    """Rounds its input to 8 levels: the gradient is zero almost everywhere (a classic mask)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 7) / 7)


class Softmaxed(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x), 1)


@pytest.mark.parametrize("wrap,spec,needle", [
    (Noisy, None, "identical forward passes differ"),
    (Quantised, None, "gradient is exactly zero"),
    (Softmaxed, Preprocess(output="probs"), "outputs probabilities"),
])
def test_masking_checks_warn(digits, wrap, spec, needle):
    imgs, labels = digits
    m = loaded(wrap(linear_model()), spec)
    sec = evaluate_attacks(m, imgs[:20], labels[:20], _plan(m, "fgsm", severities=[1], n=20))
    assert any(needle in w for w in sec.warnings), sec.warnings


def _rec(eps, acc, per_attack=None, n=1000):
    return AdversarialRecord(1, eps, n, n, acc, [acc, acc], [acc] * 10, per_attack or {}, None)


def test_ladder_checks_flag_rising_accuracy_and_weak_attacks_beating_pgd():
    rising = [_rec(0.1, 0.5), _rec(0.2, 0.7)]
    assert any("cannot be safer" in w for w in ladder_checks(rising, 0.99, "linf"))
    flat = [_rec(0.1, 0.99), _rec(0.3, 0.99)]
    assert any("does not fall" in w for w in ladder_checks(flat, 0.99, "linf"))
    pa = {"pgd": {"success_rate": 0.2}, "square": {"success_rate": 0.5}}
    assert any("square breaks more" in w for w in ladder_checks([_rec(0.3, 0.5, pa)], 0.99, "linf"))
    fine = [_rec(0.1, 0.9, {"pgd": {"success_rate": 0.1}, "fgsm": {"success_rate": 0.05}}), _rec(0.3, 0.1)]
    assert ladder_checks(fine, 0.99, "linf") == []


def test_names_norms_and_severities_are_checked():
    assert registry.resolve_attacks("autoattack,pgd") == ["apgd-ce", "apgd-t", "fab-t", "square", "pgd"]
    with pytest.raises(UserError, match="unknown attack 'pdg'. Known: .*pgd"):
        registry.resolve_attacks("pdg")
    with pytest.raises(UserError, match="linf or l2"):
        registry.check_norm("l1")
    with pytest.raises(UserError, match="1-5"):
        registry.eps_for("linf", [6])
    assert registry.eps_for("l2", [5]) == [(5, 2.0)]


def test_budget_prefix():
    assert choose_prefix(0.01, 10_000, None, None)[0] == 10_000
    assert choose_prefix(0.01, 10_000, 30.0, None)[0] == 3000
    assert choose_prefix(10.0, 10_000, 30.0, None)[0] == MIN_IMAGES
    k, why = choose_prefix(10.0, 10_000, 30.0, 50)
    assert k == 50 and "--attack-n" in why


def test_adversarial_section_round_trips_through_results_json(digits, tmp_path):
    from .report_factory import make_result

    imgs, labels = digits
    m = loaded(linear_model())
    r = make_result("lin", n_shifts=1, with_ood=False)
    r.adversarial = evaluate_attacks(m, imgs, labels, _plan(m, "pgd", severities=[1, 5]))
    r.save(tmp_path / "results.json")
    back = Result.load(tmp_path / "results.json")
    assert back.adversarial == r.adversarial
    assert json.loads((tmp_path / "results.json").read_text())["adversarial"]["norm"] == "linf"


def test_gate_attack_rule(digits, tmp_path):
    from robustmnist.gate import check, load_policy

    from .report_factory import make_result

    imgs, labels = digits
    m = loaded(linear_model())
    r = make_result("lin", n_shifts=1, with_ood=False)
    policy = tmp_path / "gate.toml"
    policy.write_text('[[attack]]\neps = 0.3\nmin_accuracy = 0.9\n')
    with pytest.raises(UserError, match="no adversarial section"):
        check(r, load_policy(policy))
    r.adversarial = evaluate_attacks(m, imgs, labels, _plan(m, "pgd", severities=[1, 5]))
    rules = check(r, load_policy(policy))
    assert len(rules) == 1 and rules[0].passed and "eps 0.3" in rules[0].rule
    policy.write_text('[[attack]]\nmin_accuracy = 0.9\nattacks = ["autoattack"]\n')
    with pytest.raises(UserError, match="requires apgd-ce"):
        check(r, load_policy(policy))
    policy.write_text('[[attack]]\nmin_acc = 0.9\n')
    with pytest.raises(UserError, match="unknown key"):
        load_policy(policy)


def test_report_shows_the_section_and_escapes_names(digits, tmp_path):
    from robustmnist.report.render import render_reports

    from .report_factory import make_result

    imgs, labels = digits
    m = loaded(weak_model())
    r = make_result("<b>x</b>", n_shifts=1, with_ood=False)
    r.adversarial = evaluate_attacks(m, imgs, labels, _plan(m, "fgsm,pgd", severities=[1, 3, 5]))
    r.adversarial.warnings.append("<script>alert(1)</script>")
    html = render_reports([r], tmp_path, {"html"})["html"].read_text(encoding="utf-8")
    sec = html[html.index('<section id="adversarial">'):]
    sec = sec[: sec.index("</section>")]
    assert "Adversarial robustness" in sec and "robust accuracy vs linf eps" not in sec  # the curve is SVG
    assert sec.count("data:image/svg+xml") == 1 and "data:image/png" in sec
    assert "<script>" not in sec and "&lt;script&gt;" in sec


def test_adversarial_training_step_stays_in_the_ball_and_ramps_eps(digits):
    imgs, labels = digits
    model = linear_model().train()
    cfg = AdversarialTraining(eps=0.3, steps=3, ramp=0.5)
    step = AdversarialStep(model, cfg, seed=0, total_steps=4)
    x = torch.from_numpy(imgs[:16]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels[:16])
    seen = []
    for _ in range(4):
        eps = step.eps_now()
        xa, ya = step(x, y)
        seen.append(eps)
        assert torch.equal(ya, y) and model.training
        assert (xa - x).abs().max() <= eps + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert seen == pytest.approx([0.15, 0.3, 0.3, 0.3])
    with pytest.raises(UserError, match="adversarial"):
        AdversarialTraining("trades")


def test_train_with_adversarial_records_its_recipe(tiny_data_root):
    from robustmnist.train.loop import train

    run = train("mlp-784-50-50-10", epochs=1, batch_size=64, data_root=tiny_data_root, device="cpu",
                adversarial={"method": "pgd", "eps": 0.1, "steps": 2})
    cfg = run.checkpoint["training"]["config"]["adversarial"]
    assert cfg["method"] == "pgd" and cfg["eps"] == 0.1 and cfg["steps"] == 2


def test_cli_eval_attack_end_to_end(tiny_data_root, tmp_path, monkeypatch, capsys):
    from robustmnist.cli import main

    path = tmp_path / "linear.ts.pt"
    torch.jit.script(linear_model()).save(str(path))
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["robustmnist", "eval", str(path), "--attack", "fgsm,pgd", "--attack-n", "20",
                                      "--attack-severity", "1,5", "--data-root", str(tiny_data_root),
                                      "--out", str(out), "--format", "json,md", "--force"])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    assert exc.value.code == 0
    d = json.loads((out / "results.json").read_text())
    assert d["shifts"] == []  # --attack alone skips the shift suite
    assert [r["eps"] for r in d["adversarial"]["records"]] == [0.05, 0.3]
    assert d["adversarial"]["n"] == 20 and d["summary"]["robust_accuracy"]["eps"] == 0.3
    err = capsys.readouterr().err
    assert "ETA" in err and "first 20 test images" in err


@pytest.mark.mirror
def test_plain_lenet_falls_to_zero_at_the_mnist_challenge_radius(mirror_lenet, mnist_test):
    from robustmnist.models.load import load_model

    m = load_model(mirror_lenet)
    sec = evaluate_attacks(m, mnist_test.images, mnist_test.labels,
                           _plan(m, "pgd", severities=[1, 5], n=60))
    assert sec.records[0].robust_accuracy > sec.records[1].robust_accuracy
    assert sec.records[1].robust_accuracy <= 0.05
    assert replace(sec.records[1], gallery=[]).median_norm <= 0.3 + 1e-5
