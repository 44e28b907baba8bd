"""Right numbers on the first model a user brings (issue 18): the convention guard in eval and
bench, honest OOD scores, sane ladders and gate, no side effects on bad input, a CLI that
starts without torch and prints results on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmnist.errors import UserError

from .example_models import script_model
from .helpers import run_cli as cli

ROOT = Path(__file__).resolve().parents[1]
NORM_FIX = "range=norm:0.1307:0.3081,polarity=normal,layout=1x28x28"


# Oversubscribed CI boxes: two OpenMP threads per tiny forward pass spin-wait (tests/helpers.py).
pytestmark = pytest.mark.usefixtures("one_thread")


# -- the convention guard ----------------------------------------------------------------------

@pytest.mark.mirror
def test_example_cnn_is_stopped_with_the_fix(example_cnn, mirror_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    code, stdout, err = cli(monkeypatch, capsys, "eval", str(example_cnn), "--clean-only", "--n", "200",
                            "--data-root", str(mirror_root), "--out", str(out))
    fix = f"{NORM_FIX},output=log-probs"
    assert code == 2, err
    assert f"--preprocess {fix}" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1 and stdout == ""
    assert not out.exists()  # stopped before anything was scored or written
    # bench stops it the same way; MODEL::SPEC (or --preprocess) is the user's decision
    code, _, err = cli(monkeypatch, capsys, "bench", str(example_cnn), "--data-root", str(mirror_root),
                       "--shift", "contrast", "--severity", "3", "--n", "200", "--out", str(tmp_path / "b"))
    assert code == 2 and f"--preprocess {fix}" in err
    code, stdout, err = cli(monkeypatch, capsys, "bench", f"{example_cnn}::{fix}", "--data-root",
                            str(mirror_root), "--shift", "contrast", "--severity", "3", "--n", "200",
                            "--out", str(tmp_path / "b"), "--format", "json")
    assert code == 0, err
    assert "warning" not in err


@pytest.mark.mirror
def test_declared_fix_gives_the_right_numbers_and_honest_ood(example_cnn, mirror_root, tmp_path,
                                                              monkeypatch, capsys):
    fix = f"{NORM_FIX},output=log-probs"
    code, _, err = cli(monkeypatch, capsys, "eval", str(example_cnn), "--clean-only", "--n", "300",
                       "--ood", "noise", "--preprocess", fix, "--data-root", str(mirror_root),
                       "--out", str(tmp_path), "--format", "json,md")
    assert code == 0, err
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["clean"]["accuracy"] > 0.93
    scores = res["ood"][0]["scores"]
    assert scores["msp"]["auroc"] is not None
    for k in ("energy", "max_logit"):  # log_softmax outputs: logit-only scores are not defined
        assert scores[k]["available"] is False and scores[k]["auroc"] is None
        assert "log-probs" in scores[k]["reason"]
    assert "not available" in (tmp_path / "report.md").read_text()
    # --force evaluates as declared, but the warning is in the terminal and the report
    code, _, err = cli(monkeypatch, capsys, "eval", str(example_cnn), "--clean-only", "--n", "200",
                       "--force", "--data-root", str(mirror_root), "--out", str(tmp_path / "f"),
                       "--format", "json,html")
    assert code == 0 and "warning" in err and fix in err
    forced = json.loads((tmp_path / "f" / "results.json").read_text())
    assert forced["summary"]["convention_check"]["status"] == "stop"
    assert any(fix in w for w in forced["summary"]["warnings"])
    assert fix in (tmp_path / "f" / "report.html").read_text()


@pytest.mark.mirror
def test_normalize_mlp_stops_on_likelihood_and_doctor_states_the_shifted_effect(normalize_mlp, mirror_root,
                                                                                tmp_path, monkeypatch, capsys):
    """Under a point of clean accuracy lost, but the likelihood of nearly every image: a stop
    (it was a warning before the paired likelihood test, issue 25)."""
    from robustmnist.doctor import diagnose
    from robustmnist.models.load import load_model

    args = ["eval", str(normalize_mlp), "--shift", "contrast", "--severity", "3", "--n", "300",
            "--data-root", str(mirror_root), "--format", "json,html"]
    code, _, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "stopped"))
    assert code == 2 and NORM_FIX in err and "NLL" in err and "--preprocess auto" in err, err
    code, _, err = cli(monkeypatch, capsys, *args, "--force", "--out", str(tmp_path))
    assert code == 0, err
    assert "warning" in err and NORM_FIX in err
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["summary"]["convention_check"]["status"] == "stop"
    assert NORM_FIX in (tmp_path / "report.html").read_text()
    d = diagnose(load_model(normalize_mlp), mirror_root, check_dead_units=False)
    finding = d.finding("input-range")
    assert finding is not None and "barely changes" not in finding.detail
    assert "contrast s3" in finding.detail and "shifted accuracy, mCE" in finding.detail


@pytest.mark.mirror
def test_log_softmax_model_is_stopped(log_softmax_mlp, mirror_root, tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "eval", str(log_softmax_mlp), "--clean-only", "--n", "200",
                       "--data-root", str(mirror_root), "--out", str(tmp_path))
    assert code == 2 and "--preprocess range=0-1,polarity=normal,layout=1x28x28,output=log-probs" in err


@pytest.mark.mirror
def test_zoo_models_pass_untouched(mirror_lenet, mirror_root):
    from robustmnist.data.datasets import load_mnist
    from robustmnist.doctor.guard import check_convention
    from robustmnist.models.load import load_model

    from .model_factory import quick_train

    train_set = load_mnist("train", mirror_root)
    mlp = quick_train("mlp-784-50-50-10", train_set.images, train_set.labels, steps=300)
    mlp_path = script_model(mlp, mirror_lenet.parent / "mlp.ts.pt")
    for path in (mirror_lenet, mlp_path):
        model = load_model(path)
        check = check_convention(model, mirror_root)
        assert check.status == "ok", check.to_dict()


# -- OOD scores without logits -------------------------------------------------------------------

def test_logit_scores_not_available_for_probabilities():
    from robustmnist.metrics.ood import ood_record

    rng = np.random.default_rng(0)
    logp = torch.log_softmax(torch.from_numpy(rng.normal(size=(50, 10)).astype(np.float32) * 4), 1).numpy()
    imgs = np.zeros((50, 28, 28), np.uint8)
    for output in ("log-probs", "probs"):
        rec = ood_record("noise", "", imgs, logp, logp[::-1].copy(), output)
        assert rec.scores["energy"]["available"] is False and rec.scores["max_logit"]["auroc"] is None
        assert rec.scores["msp"]["auroc"] is not None
    assert "available" not in ood_record("noise", "", imgs, logp, logp, "logits").scores["energy"]


# -- ladders -------------------------------------------------------------------------------------

# Font ladders grade printing defects whose level 1 (thin, clean print) is itself hard for an
# MNIST model (benchmarks/severity.json): not re-graded yet, so listed here to be seen.
# dot_matrix (new this round) rises from s1 to s2 on the re-pinned reference (0.800 -> 0.824).
# Print and European handwriting were re-graded (issue 15) to fall by a clear step per level on
# the reference, not only to not rise: 0.3 points at n=10000 is ~3 paired standard errors there.
CLEAR_STEP_FAMILIES = {"fonts", "euro"}
CLEAR_STEP = 0.003


def _stale_in_reference(ref: dict) -> set[str]:
    """Shifts whose pinned records predate the registered version (re-pin pending)."""
    from robustmnist.shifts.registry import get_shift

    return {r["name"] for r in ref["shifts"] if r["version"] != get_shift(r["name"]).version}


def test_difficulty_rises_with_severity_on_the_pinned_reference():
    from robustmnist.shifts.registry import get_shift

    ref = json.loads((ROOT / "robustmnist" / "reference" / "lenet5-default.json").read_text())
    stale = _stale_in_reference(ref)
    acc: dict[str, dict[int, float]] = {}
    for r in ref["shifts"]:
        if r["name"] not in stale:
            acc.setdefault(r["name"], {})[r["severity"]] = r["accuracy"]
    n = ref["clean"]["n"]
    slack = 2 * (0.25 / n) ** 0.5  # two standard errors of a difference at the worst case p = 0.5
    bad = {}
    for name, by_sev in acc.items():
        a = [by_sev[s] for s in sorted(by_sev)]
        if get_shift(name).family in CLEAR_STEP_FAMILIES:
            if any(a[i] - a[i + 1] < CLEAR_STEP for i in range(len(a) - 1)):
                bad[name] = [round(x, 3) for x in a]
        elif any(a[i + 1] > a[i] + slack for i in range(len(a) - 1)) or a[-1] >= a[0]:
            bad[name] = [round(x, 3) for x in a]
    assert not bad, bad  # every shift's ladder (benchmarks/ladder_check.py re-checks print and euro)
    if stale:
        pytest.skip(f"pinned reference predates {sorted(stale)}: re-pin (benchmarks/make_reference.py); "
                    "the others rise with severity")
    inv = [acc["invert"][s] for s in range(1, 6)]
    assert inv[0] > 0.9 and inv[-1] < 0.5  # faint tint at s1, full inversion at s5


@pytest.mark.mirror
def test_invert_ladder_is_graded_on_a_trained_lenet(mirror_lenet, mnist_test):
    from robustmnist.models.load import load_model
    from robustmnist.run.scoring import score
    from robustmnist.shifts.registry import get_shift
    from robustmnist.shifts.sets import get_set
    from robustmnist.shifts.suite import load_suite

    model, suite, shift = load_model(mirror_lenet), load_suite("default"), get_shift("invert")
    images, labels = mnist_test.images[:2000], mnist_test.labels[:2000]
    acc = []
    for sev in range(1, 6):
        sset = get_set(shift, sev, suite.params("invert", sev), images, labels, len(images), 0)
        acc.append(float((score(model, sset.images).argmax(1) == labels).mean()))
    assert all(a > b for a, b in zip(acc, acc[1:], strict=False)), acc  # v1 rose: 25% at s1, 30% at s5
    assert acc[0] > 0.9 and acc[-1] < 0.5, acc


def test_invert_v2_runs_from_tinted_paper_to_full_inversion():
    from robustmnist.shifts.registry import get_shift
    from robustmnist.shifts.suite import load_suite

    shift, suite = get_shift("invert"), load_suite("default")
    assert shift.version == 3
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    outs = [shift.apply(x.clone(), torch.Generator().manual_seed(0), **suite.params("invert", s))
            for s in range(1, 6)]
    paper = [float(o[:, :, 0, 0].mean()) for o in outs]
    ink = [float(o[:, :, 12, 13].mean()) for o in outs]
    assert paper[0] < 0.15 and ink[0] > 0.85  # faintly tinted: still white on (nearly) black
    assert paper == sorted(paper) and ink == sorted(ink, reverse=True)
    assert paper[-1] > 0.95 and ink[-1] < 0.05  # full inversion


# -- euro records and the gate ------------------------------------------------------------------

def _reference_result():
    """The pinned reference as a Result (it holds accuracies only: no ECE, no OOD)."""
    from robustmnist.results import Environment, ModelInfo, Result, SetMetrics, ShiftRecord
    from robustmnist.shifts.registry import get_shift

    d = json.loads((ROOT / "robustmnist" / "reference" / "lenet5-default.json").read_text())

    def metrics(acc, n):
        return dict(n=n, accuracy=acc, accuracy_ci=[acc, acc], error=1 - acc, per_class_accuracy=[],
                    per_class_n=[], confusion=[], ece=0.0, nll=0.0, brier=0.0, mean_confidence=acc)

    return Result(
        model=ModelInfo(path="lenet5.pt", sha256=d["model"]["sha256"], format="checkpoint",
                        preprocess=d["model"]["preprocess"], name=d["model"]["name"]),
        environment=Environment(python="", torch="", device="cpu"),
        clean=SetMetrics(**metrics(d["clean"]["accuracy"], d["clean"]["n"])),
        shifts=[ShiftRecord(**metrics(r["accuracy"], r["n"]), name=r["name"], family=get_shift(r["name"]).family,
                            severity=r["severity"], edited=r.get("edited")) for r in d["shifts"]],
    )


EXAMPLE_POLICY = ROOT / "robustmnist" / "reference" / "gate.example.toml"


def test_gate_example_passes_the_pinned_reference_and_every_rule_can_fail():
    from dataclasses import replace

    from robustmnist.gate import check, load_policy

    policy = load_policy(EXAMPLE_POLICY)
    ref = _reference_result()
    # Until the re-pin adds them, euro_one records lack the edited-digit accuracy and the rule
    # reads the set's accuracy; after it, the same rules must pass on the edited digits.
    rules = check(ref, policy)
    assert rules and all(r.passed for r in rules), [r for r in rules if not r.passed]
    # Every rule can fail: one model bad on clean digits, one good on clean but bad on every
    # shifted set and every edited digit; each rule fails for one of them.
    bad_clean = replace(ref, clean=replace(ref.clean, accuracy=0.1))
    bad_shifted = replace(ref, shifts=[
        replace(r, accuracy=0.05, edited={**r.edited, "accuracy": 0.0} if r.edited else None)
        for r in ref.shifts])
    verdicts = [r.passed and s.passed for r, s in zip(check(bad_clean, policy), check(bad_shifted, policy),
                                                        strict=True)]
    assert verdicts and not any(verdicts)


@pytest.mark.mirror
def test_gate_example_fails_mlp_784_50_50_10(mirror_root, tmp_path):
    from robustmnist.data.datasets import load_mnist
    from robustmnist.gate import check, load_policy
    from robustmnist.models.load import load_model
    from robustmnist.run.collect import evaluate
    from robustmnist.shifts.suite import load_suite

    from .model_factory import quick_train

    train_set = load_mnist("train", mirror_root)
    mlp = quick_train("mlp-784-50-50-10", train_set.images, train_set.labels, steps=400)
    path = script_model(mlp, tmp_path / "mlp-784-50-50-10.ts.pt")
    policy = load_policy(EXAMPLE_POLICY)
    names = sorted({r["name"] for r in policy["shift"]} - {"fonts", "noise"}) + ["gaussian_noise", "fonts"]
    suite = load_suite("default").restrict(names, [1, 2, 3])
    run = evaluate(load_model(path, preprocess="layout=784"), suite, n=500, data_root=mirror_root)
    policy = {k: v for k, v in policy.items() if k != "max_accuracy_drop"}  # needs the whole suite
    rules = check(run.result, policy)
    failed = [r.rule for r in rules if not r.passed]
    assert any("clean accuracy" in f for f in failed), [(r.rule, r.measured) for r in rules]


def test_readme_shows_exactly_the_shipped_gate_file():
    assert EXAMPLE_POLICY.read_text() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("text, words", [
    ("min_clean_accuracy = 1.5", "can never pass"),
    ("max_accuracy_drop = -0.1", "can never pass"),
    ("min_ood_auroc = 0.0", "can never fail"),
    ("max_clean_ece = 1.0", "can never fail"),
    ('[[shift]]\nname = "fonts"\nmin_accuracy = 98', "can never pass"),
    ('[[shift]]\nname = "fonts"\nmin_accuracy = 0', "can never fail"),
])
def test_gate_rejects_rules_that_cannot_gate(tmp_path, monkeypatch, capsys, text, words):
    pol = tmp_path / "gate.toml"
    pol.write_text(text + "\n")
    res = tmp_path / "results.json"
    _reference_result().save(res)
    code, out, err = cli(monkeypatch, capsys, "gate", str(res), "--policy", str(pol))
    assert code == 2 and words in err and out == ""


def test_euro_records_carry_the_edited_digits(tiny_data_root):
    from dataclasses import replace

    from robustmnist.gate import check
    from robustmnist.models.load import LoadedModel
    from robustmnist.models.preprocess import Preprocess
    from robustmnist.run.collect import evaluate
    from robustmnist.shifts.suite import load_suite

    class Seven(torch.nn.Module):  # reads every digit as 7
        def forward(self, x):
            out = torch.zeros(x.shape[0], 10)
            out[:, 7] = 1.0
            return out

    model = LoadedModel(Seven(), Preprocess(), "seven.pt", "0" * 64, "torchscript")
    suite = load_suite("default").restrict(["euro_one", "gaussian_noise"], [3])
    res = evaluate(model, suite, n=100, data_root=tiny_data_root).result
    euro = next(r for r in res.shifts if r.name == "euro_one")
    n_ones = int((np.arange(100) % 10 == 1).sum())  # the tiny set's labels are i % 10
    assert euro.edited["n"] == n_ones and euro.edited["accuracy"] == 0.0
    assert euro.edited["read_as_other"]["1->7"] == 1.0
    assert next(r for r in res.shifts if r.name == "gaussian_noise").edited is None
    # the gate reads the edited digits: overall accuracy (the 7s) would pass a 0.05 bar
    rule = {"shift": [{"name": "euro_one", "min_accuracy": 0.05, "aggregate": "each"}]}
    [verdict] = check(res, rule)
    assert euro.accuracy >= 0.05 and not verdict.passed and "edited" in verdict.rule
    assert check(replace(res, shifts=[replace(euro, edited=None)]), rule)[0].passed


# -- suite specs ----------------------------------------------------------------------------------

def test_unknown_level_key_names_shift_key_and_file(tmp_path):
    from robustmnist.shifts.suite import load_suite

    spec = tmp_path / "mine.toml"
    spec.write_text('name = "mine"\n[shifts.gaussian_noise]\nsigmaa = [0.1, 0.2, 0.3, 0.4, 0.5]\n')
    with pytest.raises(UserError) as exc:
        load_suite(str(spec))
    msg = str(exc.value)
    assert "gaussian_noise" in msg and "'sigmaa'" in msg and str(spec) in msg and "sigma" in msg
    for name in ("default", "quick", "mnist-c"):  # the shipped specs use only real parameters
        load_suite(name)


# -- bad input: one line, exit 2, nothing created -------------------------------------------------

@pytest.fixture
def state_dict_model(tmp_path) -> Path:
    from robustmnist.models.zoo import build

    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    torch.save(build("mlp-784-50-50-10").state_dict(), path)
    return path


def test_missing_data_root_creates_nothing(state_dict_model, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ROBUSTMNIST_OFFLINE", raising=False)  # the download path must not create it
    missing = tmp_path / "nonexistent"
    code, out, err = cli(monkeypatch, capsys, "eval", str(state_dict_model), "--clean-only",
                         "--data-root", str(missing), "--out", str(tmp_path / "o"))
    assert code == 2 and not missing.exists() and not (tmp_path / "o").exists()
    assert str(missing) in err and "README" in err and "shared" not in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(missing))
    code, _, err = cli(monkeypatch, capsys, "doctor", str(state_dict_model))
    assert code == 2 and not missing.exists()


def test_offline_message_speaks_of_the_users_paths(tmp_path):
    from robustmnist.data.datasets import load_mnist

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as exc:
        load_mnist("test", empty)
    assert "../shared" not in str(exc.value) and str(empty) in str(exc.value)
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("args, words", [
    (["--n", "0"], "--n must be at least 1"),
    (["--n", "-5"], "--n must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
@pytest.mark.parametrize("command", ["eval", "bench"])
def test_counts_below_one_fail_before_any_work(state_dict_model, tmp_path, monkeypatch, capsys,
                                               command, args, words):
    code, out, err = cli(monkeypatch, capsys, command, str(state_dict_model), *args,
                         "--data-root", str(tmp_path / "nowhere"))
    assert code == 2 and words in err
    assert err.strip().splitlines() == [f"robustmnist: error: {words}, got {args[1]}"] and out == ""


def test_arch_with_a_format_that_ignores_it(tmp_path, monkeypatch, capsys):
    from robustmnist.models.zoo import build

    ts = script_model(build("lenet5").eval(), tmp_path / "net.ts.pt")
    code, _, err = cli(monkeypatch, capsys, "eval", str(ts), "--arch", "lenet5", "--clean-only")
    assert code == 2 and "--arch applies to bare state_dicts only" in err


def test_text_file_renamed_to_model_pt(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "model.pt"
    fake.write_text("this is not a model\n")
    code, _, err = cli(monkeypatch, capsys, "eval", str(fake), "--clean-only")
    assert code == 2 and "pop from empty list" not in err and "not a model file" in err
    assert len(err.strip().splitlines()) == 1


# -- CLI: torch-free start, stdout for results, quiet ---------------------------------------------

def test_importing_the_cli_leaves_torch_out():
    code = "import sys, robustmnist.cli; print('torch' in sys.modules, 'torchvision' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_gate_runs_without_torch(tmp_path):
    res, pol = tmp_path / "results.json", tmp_path / "gate.toml"
    _reference_result().save(res)
    pol.write_text("min_clean_accuracy = 0.98\n")
    code = ("import sys, runpy; sys.argv = ['robustmnist', 'gate', sys.argv[1], '--policy', sys.argv[2]]\n"
            "try:\n    runpy.run_module('robustmnist', run_name='__main__')\n"
            "except SystemExit as e:\n    print('rc', e.code, 'torch' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(res), str(pol)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert "rc 0 False" in proc.stderr, proc.stderr
    assert "1 passed, 0 failed" in proc.stdout  # the verdict is on stdout


def test_eval_results_on_stdout_and_quiet_prints_nothing(tiny_data_root, state_dict_model, tmp_path,
                                                        monkeypatch, capsys):
    args = ["eval", str(state_dict_model), "--clean-only", "--data-root", str(tiny_data_root), "--format", "json"]
    code, out, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "a"))
    assert code == 0 and "clean" in out and "results.json" in err
    code, out, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "b"), "-q")
    assert code == 0 and out == "" and err == ""
    assert (tmp_path / "b" / "results.json").is_file()


def test_demo_writes_outside_the_clone_by_default(monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "demo", "--help")
    assert code == 0 and "robustmnist-demo" in out and "reports/demo" not in out


# -- one mCE reference ---------------------------------------------------------------------------

def test_bench_uses_the_pinned_reference_and_labels_the_first_model_column(tiny_data_root, tmp_path,
                                                                          monkeypatch, capsys):
    from robustmnist.models.zoo import build

    paths = []
    for i, arch in enumerate(("mlp-784-50-50-10", "lenet5")):
        torch.manual_seed(i)
        paths.append(tmp_path / f"{arch}.pt")
        torch.save(build(arch).state_dict(), paths[-1])
    code, out, err = cli(monkeypatch, capsys, "bench", *map(str, paths), "--data-root", str(tiny_data_root),
                         "--shift", "gaussian_noise", "--severity", "3", "--n", "50", "--out", str(tmp_path / "b"),
                         "--format", "json")
    assert code == 0, err
    ref_name = json.loads((ROOT / "robustmnist" / "reference" / "lenet5-default.json").read_text())["model"]["name"]
    assert "mCE" in out and ref_name.split("-")[0] in out  # rich wraps headers to the terminal's width
    md = (tmp_path / "b" / "leaderboard.md").read_text()
    assert f"mCE (vs {ref_name})" in md and "relative to the first model, mlp-784-50-50-10" in md


def test_policy_file_is_valid_toml():
    assert tomllib.loads(EXAMPLE_POLICY.read_text())["min_clean_accuracy"] == 0.98
