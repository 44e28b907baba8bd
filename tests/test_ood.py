"""OOD sets: records on the real mirror agree with scikit-learn; bad OOD input is one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from robustmnist.data.datasets import load_cifar10_gray, load_fashion
from robustmnist.data.ood import check_ood_names, load_ood
from robustmnist.errors import UserError
from robustmnist.models.load import load_model
from robustmnist.run.collect import evaluate
from robustmnist.run.scoring import score

from .helpers import run_cli, untrained_checkpoint


def test_ood_records_on_full_mirror_sets_agree_with_sklearn(mirror_root, mirror_lenet, mnist_test):
    from sklearn.metrics import average_precision_score, roc_auc_score

    model = load_model(mirror_lenet)
    run = evaluate(model, None, ood=["fashion", "cifar10"], data_root=mirror_root, clean=mnist_test)
    in_logits = score(model, mnist_test.images)
    in_msp = _msp(in_logits)
    for rec, ds in zip(run.result.ood, (load_fashion("test", mirror_root), load_cifar10_gray(mirror_root)),
                       strict=True):
        assert rec.n == 10_000 == len(ds.images)
        out_logits = score(model, ds.images)
        out_msp = _msp(out_logits)
        y = np.r_[np.ones(len(in_msp)), np.zeros(len(out_msp))]
        s = np.r_[in_msp, out_msp]
        assert rec.scores["msp"]["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
        assert rec.scores["msp"]["aupr_in"] == pytest.approx(average_precision_score(y, s), abs=1e-6)
        energy = np.r_[_lse(in_logits), _lse(out_logits)]
        assert rec.scores["energy"]["auroc"] == pytest.approx(roc_auc_score(y, energy), abs=1e-6)
        maxl = np.r_[in_logits.max(1), out_logits.max(1)]
        assert rec.scores["max_logit"]["auroc"] == pytest.approx(roc_auc_score(y, maxl), abs=1e-6)
        thr = np.sort(in_msp)[::-1][9499]
        assert rec.scores["msp"]["fpr95"] == pytest.approx((out_msp >= thr).mean(), abs=1e-6)
        assert sum(rec.predicted_histogram) == 10_000
        assert 0 <= rec.frac_confidence_over_0_99 <= rec.frac_confidence_over_0_9 <= 1
        assert rec.scores["msp"]["auroc"] > 0.8  # a trained CNN tells shoes and cats from digits


def _msp(logits):
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return p.max(1)


def _lse(logits):
    m = logits.max(1)
    return m + np.log(np.exp(logits - m[:, None]).sum(1))


def test_synthetic_sets_are_deterministic():
    a, _ = load_ood("noise", None, seed=1)
    b, _ = load_ood("noise", None, seed=1)
    c, _ = load_ood("noise", None, seed=2)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    blank, _ = load_ood("blank", None, seed=0)
    assert (blank.images.reshape(len(blank.images), -1).std(axis=1) == 0).all()


def test_folder_ood_set(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((40, 30), 250, np.uint8)).save(tmp_path / f"page{i}.png")
    Image.fromarray(np.pad(np.zeros((10, 10), np.uint8), 15, constant_values=255)).save(tmp_path / "x.png")
    ds, desc = load_ood(f"folder:{tmp_path}")
    assert ds.images.shape == (4, 28, 28) and ds.images.dtype == np.uint8
    assert "20×20" in desc


@pytest.mark.parametrize("name, message", [
    ("shoes", "unknown OOD set 'shoes'"),
    ("folder:/nonexistent/place", "does not exist"),
])
def test_bad_ood_names(name, message):
    with pytest.raises(UserError, match=message):
        check_ood_names([name])


def test_empty_and_unreadable_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images found"):
        load_ood(f"folder:{empty}")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not really a png")
    with pytest.raises(UserError, match="cannot read image"):
        load_ood(f"folder:{broken}")


def test_missing_dataset_offline_cli(tmp_path, tiny_data_root, monkeypatch, capsys):
    # through main() in-process (test_real.py runs the same failure in a fresh process)
    model = untrained_checkpoint(tmp_path / "m.pt")
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tiny_data_root))
    monkeypatch.setenv("ROBUSTMNIST_OFFLINE", "1")
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(model), "--clean-only", "--force", "--ood", "cifar10",
                           "--out", str(tmp_path / "out"))
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("robustmnist: error: CIFAR-10 not found") and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()
