"""Real digit sets: the MNIST framing of real images, every source's loader (torchvision files in
a temp data root, scikit-learn's digits, folders, npz), offline errors, the closest-shift
ranking, gate rules, the report section and bench's rank correlation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from real_factory import (  # noqa: E402
    blocky_digits,
    printed_digits,
    write_emnist,
    write_folder,
    write_qmnist,
    write_svhn,
    write_usps,
)

from robustmnist.data.framing import centre_of_mass  # noqa: E402
from robustmnist.data.photo import frame_real  # noqa: E402
from robustmnist.data.real import check_real_names, load_real, real_from_arrays  # noqa: E402
from robustmnist.errors import UserError  # noqa: E402
from robustmnist.metrics.real import (  # noqa: E402
    closest_shifts,
    error_pattern_distance,
    family_rank_correlation,
    spearman,
)
from robustmnist.results import RealRecord, Result, ShiftRecord  # noqa: E402

from .helpers import offline_clean_eval  # noqa: E402


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("ROBUSTMNIST_OFFLINE", "1")


# -- framing ------------------------------------------------------------------------------------

def test_frame_real_fits_ink_into_20px_and_centres_mass():
    images, _ = printed_digits(per_class=2)
    x = frame_real([a.astype(np.float32) / 255 for a in images])
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.amax(dim=(1, 2, 3)).min() > 0.9  # ink lifted to white
    ink = x[:, 0] > 0.05
    rows, cols = ink.any(dim=2).sum(dim=1), ink.any(dim=1).sum(dim=1)
    assert (torch.maximum(rows, cols) <= 22).all() and (torch.maximum(rows, cols) >= 18).all()
    cy, cx = centre_of_mass(x)
    assert (cy - 14).abs().max() < 1 and (cx - 14).abs().max() < 1
    # the ground of dark-on-light paper ends black: the corners are empty
    assert x[:, 0, :3, :3].max() == 0


def test_frame_real_polarity_is_detected():
    light, _ = blocky_digits(10, 32)  # light ink on black
    dark = 255 - light  # the same digits printed dark on white
    a, b = frame_real(light), frame_real(dark)
    assert torch.equal(a, b)
    assert torch.equal(frame_real(dark, "dark-on-light"), a)
    assert not torch.equal(frame_real(dark, "white-on-black"), a)


def test_frame_real_frames_each_image_on_its_own():
    images, _ = printed_digits(per_class=2)
    floats = [a.astype(np.float32) / 255 for a in images]
    whole = frame_real(floats)
    order = np.random.default_rng(1).permutation(len(floats))
    shuffled = frame_real([floats[i] for i in order])
    assert torch.equal(shuffled, whole[order])
    assert torch.equal(frame_real(floats[:5]), whole[:5])


@pytest.mark.mirror
def test_frame_real_leaves_mnist_digits_nearly_unchanged(mnist_test):
    x = torch.from_numpy(mnist_test.images[:200]).float().div(255).unsqueeze(1)
    y = frame_real(mnist_test.images[:200])
    # already framed: re-framing moves at most a pixel's worth of ink
    assert (y - x).abs().mean() < 0.05


# -- sources ------------------------------------------------------------------------------------

def test_digits_source_is_bundled_and_deterministic():
    a = load_real("digits")
    assert a.images.shape == (1797, 28, 28) and a.images.dtype == np.uint8
    assert set(a.labels.tolist()) == set(range(10)) and len(a.before) == 10
    b = load_real("digits", n=100)
    assert np.array_equal(b.images, a.images[:100])


def test_usps_svhn_emnist_qmnist_load_through_torchvision(tmp_path, offline, monkeypatch):
    import torchvision.datasets.svhn as tv_svhn

    x16, y = blocky_digits(30, 16)
    write_usps(tmp_path, x16, y)
    x32, _ = blocky_digits(30, 32)
    rgb = np.stack([x32, x32 // 2, x32 // 3], axis=-1)
    write_svhn(tmp_path, 255 - rgb, y)  # dark digits on a light plate
    x28, _ = blocky_digits(30, 28)
    write_emnist(tmp_path, x28, y)
    xq, yq = blocky_digits(10_010, 28, seed=3)
    write_qmnist(tmp_path, xq, yq)
    # torchvision checks SVHN's md5 against the published file; a tiny stand-in cannot match it
    monkeypatch.setattr(tv_svhn, "check_integrity", lambda *a, **k: True)

    usps = load_real("usps", tmp_path)
    assert usps.images.shape == (30, 28, 28) and np.array_equal(usps.labels, y)
    assert np.array_equal(usps.images, real_from_arrays("x", x16, y).images)
    svhn = load_real("svhn", tmp_path)
    assert np.array_equal(svhn.labels, y)  # label 10 came back as digit 0
    gray = (rgb @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
    assert np.abs(svhn.images.astype(int) - real_from_arrays("x", gray, y).images).max() <= 2
    emnist = load_real("emnist", tmp_path)
    assert np.array_equal(emnist.images, real_from_arrays("x", x28, y).images)  # transposed back
    q = load_real("qmnist", tmp_path)
    assert len(q.labels) == 10 and np.array_equal(q.labels, yq[10_000:])


@pytest.mark.parametrize("name, expected", [
    ("usps", "USPS/usps.t.bz2"), ("svhn", "SVHN/test_32x32.mat"),
    ("emnist", "EMNIST/raw/emnist-digits-test-images-idx3-ubyte"),
    ("qmnist", "QMNIST/raw/qmnist-test-images-idx3-ubyte"),
])
def test_offline_missing_source_names_the_expected_files(tmp_path, offline, name, expected):
    with pytest.raises(UserError) as exc:
        load_real(name, tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and str(tmp_path / expected) in msg and "could not be downloaded" in msg


def test_offline_cli_failure_is_one_line(tmp_path, tiny_data_root):
    r = offline_clean_eval(tmp_path, tiny_data_root, "--real", "svhn")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robustmnist: error: real set 'svhn' not found")
    assert "SVHN/test_32x32.mat" in lines[0] and "/work" not in lines[0].replace(str(tiny_data_root), "")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, message", [
    ("mnist-m", "unknown real set 'mnist-m'"), ("folder:/no/such/place", "does not exist"),
    ("npz:/no/such.npz", "does not exist"),
])
def test_bad_real_names(name, message):
    with pytest.raises(UserError, match=message):
        check_real_names([name])


def test_folder_of_printed_digits_matches_framing_the_arrays(tmp_path, tiny_data_root):
    """--real folder:... scores exactly what framing the same arrays in memory scores."""
    from robustmnist.models.load import load_model
    from robustmnist.run.collect import evaluate

    from .model_factory import quick_train

    images, labels = printed_digits(per_class=4)
    folder = write_folder(tmp_path / "printed", images, labels)
    direct = real_from_arrays("direct", [a.astype(np.float32) / 255 for a in images], labels)
    from_folder = load_real(f"folder:{folder}")
    assert np.array_equal(from_folder.images, direct.images)
    assert np.array_equal(from_folder.labels, labels)

    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint

    imgs, lab = blocky_digits(400, 28)
    path = tmp_path / "m.pt"
    save_checkpoint(path, make_checkpoint("lenet5", quick_train("lenet5", imgs, lab, steps=20)))
    run = evaluate(load_model(path), None, data_root=tiny_data_root, real=[f"folder:{folder}"],
                   real_sets=[direct])
    a, b = run.result.real
    assert a.name == f"folder:{folder}" and b.name == "direct"
    assert a.accuracy == b.accuracy and a.sha256 == b.sha256 and a.confusion == b.confusion


def test_folder_without_digit_subfolders_is_refused(tmp_path):
    from PIL import Image

    (tmp_path / "cats").mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "cats" / "a.png")
    with pytest.raises(UserError, match="sub-folders named 0-9"):
        load_real(f"folder:{tmp_path}")


def test_npz_source_and_its_errors(tmp_path):
    x, y = blocky_digits(20, 20)
    np.savez(tmp_path / "ok.npz", x=x, y=y)
    rs = load_real(f"npz:{tmp_path / 'ok.npz'}")
    assert rs.images.shape == (20, 28, 28) and np.array_equal(rs.labels, y)
    np.savez(tmp_path / "keys.npz", images=x, y=y)
    with pytest.raises(UserError, match="needs arrays 'x'"):
        load_real(f"npz:{tmp_path / 'keys.npz'}")
    np.savez(tmp_path / "obj.npz", x=np.array([x[0], None], dtype=object), y=y[:2])
    with pytest.raises(UserError, match="without pickles"):
        load_real(f"npz:{tmp_path / 'obj.npz'}")
    np.savez(tmp_path / "labels.npz", x=x, y=y + 5)
    with pytest.raises(UserError, match="digits 0-9"):
        load_real(f"npz:{tmp_path / 'labels.npz'}")


# -- closest shifts -------------------------------------------------------------------------------

def _cm(acc: float, target: int | None = None, n: int = 100) -> list[list[int]]:
    """Every digit right acc of the time, its errors all to (t + 1) or all to ``target``."""
    cm = np.zeros((10, 10), int)
    for t in range(10):
        right = round(acc * n)
        cm[t, t] = right
        cm[t, (t + 1) % 10 if target is None or target == t else target] += n - right
    return cm.tolist()


def test_error_pattern_distance_separates_where_errors_go():
    assert error_pattern_distance(_cm(0.7), _cm(0.7)) == 0
    assert error_pattern_distance(_cm(0.7), _cm(0.7, target=8)) > error_pattern_distance(_cm(0.7), _cm(0.6))
    big = (np.asarray(_cm(0.7)) * 7).tolist()  # class balance and set size do not matter
    assert error_pattern_distance(_cm(0.7), big) == 0
    recs = [ShiftRecord(n=1000, accuracy=a, accuracy_ci=[0, 1], error=1 - a, per_class_accuracy=[], per_class_n=[],
                        confusion=cm, ece=0, nll=0, brier=0, mean_confidence=0, name=nm, family="f", severity=s)
            for nm, s, a, cm in [("a", 1, 0.7, _cm(0.7, target=8)), ("b", 3, 0.7, _cm(0.7)), ("c", 2, 0.5, _cm(0.5))]]
    top = closest_shifts(_cm(0.68), recs)
    assert [(t["name"], t["severity"]) for t in top] == [("b", 3), ("c", 2), ("a", 1)]


@pytest.mark.mirror
def test_planted_shift_is_found(mnist_test, mirror_root, mirror_lenet):
    """A "real" set made by applying one shift to held-back MNIST digits must look most like it."""
    from robustmnist.data.datasets import load_mnist, to_float, to_uint8
    from robustmnist.models.load import load_model
    from robustmnist.run.collect import evaluate
    from robustmnist.shifts.registry import get_shift
    from robustmnist.shifts.suite import load_suite

    suite = load_suite("default").restrict(["rotate", "gaussian_noise", "motion_blur", "thick_stroke",
                                            "contrast"], [2, 4])
    planted, sev = "motion_blur", 4
    held = load_mnist("train", mirror_root)  # digits the suite's sets (from MNIST test) never use
    x, y = held.images[-1000:], held.labels[-1000:]
    shift = get_shift(planted)
    g = torch.Generator().manual_seed(123)
    shifted = to_uint8(shift.apply(to_float(x), g, **suite.params(planted, sev)))
    # npz-like arrays are re-framed like any real set: as a real user's data would be
    real_set = real_from_arrays("planted", shifted, y)
    run = evaluate(load_model(mirror_lenet), suite, n=1000, data_root=mirror_root, real_sets=[real_set])
    top = run.result.real[0].closest_shifts
    assert top[0]["name"] == planted, top[:3]
    assert top[0]["severity"] == sev


# -- results, gate, report, bench -----------------------------------------------------------------

def _real_record(name: str, acc: float) -> RealRecord:
    cm = _cm(acc)
    return RealRecord(n=1000, accuracy=acc, accuracy_ci=[acc - 0.02, acc + 0.02], error=1 - acc,
                      per_class_accuracy=[acc] * 10, per_class_n=[100] * 10, confusion=cm, ece=0.05,
                      nll=0.3, brier=0.1, mean_confidence=0.9, name=name, source="test set <b>",
                      sha256="ab" * 32, per_class_change=[acc - 0.99] * 10,
                      confusion_change=(np.asarray(cm) / 100 - np.eye(10) * 0.99).tolist(),
                      closest_shifts=[{"name": "rotate", "severity": 3, "family": "geometric", "accuracy": 0.8,
                                       "distance": 0.05}])


def _result_with_real(tmp_path, acc: float = 0.85, name: str = "digits") -> Result:
    from report_factory import make_result

    r = make_result("lenet5", n_shifts=3)
    r.real = [_real_record(name, acc)]
    r.save(tmp_path / "results.json")
    return Result.load(tmp_path / "results.json")


def test_results_json_round_trips_the_real_section(tmp_path):
    r = _result_with_real(tmp_path)
    assert isinstance(r.real[0], RealRecord) and r.real[0].closest_shifts[0]["name"] == "rotate"


def test_gate_real_rules(tmp_path):
    from robustmnist.gate import check, load_policy

    r = _result_with_real(tmp_path, acc=0.85)
    pol = tmp_path / "gate.toml"
    pol.write_text('[[real]]\nname = "digits"\nmin_accuracy = 0.9\n\n[[real]]\nmax_ece = 0.1\n')
    rules = check(r, load_policy(pol))
    assert [(x.rule, x.passed) for x in rules] == [("real digits accuracy ≥", False), ("real digits ECE ≤", True)]
    pol.write_text('[[real]]\nname = "usps"\nmin_accuracy = 0.9\n')
    with pytest.raises(UserError, match="matches nothing.*digits"):
        check(r, load_policy(pol))
    pol.write_text('[[real]]\nname = "digits"\nmin_acc = 0.9\n')
    with pytest.raises(UserError, match="unknown key"):
        load_policy(pol)


def test_report_shows_the_real_digits_section_escaped(tmp_path):
    from robustmnist.report import render_reports

    r = _result_with_real(tmp_path, name="folder:<script>x</script>")
    paths = render_reports([r], tmp_path / "rep")
    html = paths["html"].read_text()
    assert '<section id="real">' in html and "<h2>Real digits</h2>" in html
    assert "<script>x" not in html and "&lt;script&gt;x" in html and "test set &lt;b&gt;" in html
    assert "Looks most like" in html and "rotate s3" in html
    assert html.index('id="summary"') < html.index('id="real"') < html.index('id="overview"')
    assert "## Real digits" in paths["md"].read_text()
    assert ",real,real,,9,100,85," in paths["csv"].read_text()


def test_leaderboard_shows_which_families_predict_the_real_set(tmp_path):
    from robustmnist.metrics.leaderboard import LeaderRow
    from robustmnist.report.leaderboard import write_leaderboard

    rows = [LeaderRow(1, "m", 0.99, (0.98, 0.995), 0.8, None, None, "rotate s5", 0.3, None, "ab")]
    corr = [{"real": "folder:<b>x</b>", "n_models": 4,
             "families": [{"family": "fonts", "rho": 0.8, "n_models": 4}]}]
    paths = write_leaderboard(rows, tmp_path, "default", 100, 0, {"name": "m", "sha256": "ab" * 32}, corr)
    html = paths["html"].read_text()
    assert "Which parts of the suite predict your data" in html and "&lt;b&gt;x" in html and "+0.80" in html
    assert "| fonts | +0.80 | 4 |" in paths["md"].read_text()


def test_spearman_and_family_rank_correlation():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    from report_factory import make_result

    results = []
    for i, acc in enumerate([0.6, 0.7, 0.8, 0.9]):
        r = make_result(f"m{i}", n_shifts=3, seed=i)
        r.real = [_real_record("digits", acc)]
        fams = list(r.summary["per_family"])
        r.summary["per_family"] = {fams[0]: acc / 2, fams[1]: 1 - acc, fams[2]: 0.5}
        results.append(r)
    (c,) = family_rank_correlation(results)
    rho = {f["family"]: f["rho"] for f in c["families"]}
    assert c["n_models"] == 4 and rho[fams[0]] == pytest.approx(1) and rho[fams[1]] == pytest.approx(-1)
    assert rho[fams[2]] is None and c["families"][0]["family"] == fams[0]
    (two,) = family_rank_correlation(results[:2])
    assert all(f["rho"] is None for f in two["families"])  # two models: no correlation claimed


@pytest.mark.mirror
def test_reframed_mnist_scores_as_clean(mnist_test, mirror_root, mirror_lenet):
    """MNIST is already framed: through the real-set path it must show no drop (QMNIST's role)."""
    from robustmnist.models.load import load_model
    from robustmnist.run.collect import evaluate

    x, y = mnist_test.images[:2000], mnist_test.labels[:2000]
    run = evaluate(load_model(mirror_lenet), None, n=2000, data_root=mirror_root,
                   real_sets=[real_from_arrays("mnist-again", x, y)])
    # the real set is the first 2,000 digits: compare with clean on those (the clean record is all)
    assert abs(run.result.real[0].accuracy - run.result.summary["clean_prefix"]["accuracy"]) <= 0.005


def test_bench_cli_scores_real_sets_and_ranks_families(tmp_path, tiny_data_root, monkeypatch):
    from typer.testing import CliRunner

    from robustmnist.cli import app
    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
    from robustmnist.models.zoo import build

    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tiny_data_root))
    paths = []
    for i, arch in enumerate(("lenet5", "mlp-784-50-50-10", "cnn-small")):
        torch.manual_seed(i)
        paths.append(tmp_path / f"{arch}.pt")
        save_checkpoint(paths[-1], make_checkpoint(arch, build(arch)))
    out = tmp_path / "bench"
    r = CliRunner().invoke(app, ["bench", *map(str, paths), "--shift", "rotate,gaussian_noise", "--severity", "1",
                                 "--n", "50", "--real", "digits", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert all(len(Result.load(out / p.stem / "results.json").real) == 1 for p in paths)
    assert "Which families predict real set digits (3 models" in (out / "leaderboard.md").read_text()
    assert (out / "real_correlation.json").is_file()
