"""Metrics against hand-worked examples and against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustmnist.metrics import classification as M
from robustmnist.metrics import ood as O


def test_wilson_interval_hand_worked():
    # 95 of 100: Wilson (z=1.96) gives [0.8882, 0.9785] (textbook value)
    lo, hi = M.wilson_interval(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-4) and hi == pytest.approx(0.9785, abs=1e-4)
    assert M.wilson_interval(0, 10)[0] == pytest.approx(0.0) and M.wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_confusion_and_per_class():
    labels = np.array([0, 0, 1, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    cm = M.confusion_matrix(labels, preds)
    assert cm[0].tolist()[:3] == [1, 1, 0] and cm[1].tolist()[:3] == [1, 2, 0] and cm[2, 2] == 1
    acc = M.per_class_accuracy(cm)
    assert acc[:3] == [0.5, pytest.approx(2 / 3), 1.0] and acc[3] is None


def test_ece_hand_worked():
    # two bins used: conf 0.95 (2 samples, 1 right) and conf 0.55 (2 samples, 2 right)
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1], dtype=bool)
    expected = 0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.55)
    assert M.expected_calibration_error(conf, correct) == pytest.approx(expected)
    assert M.reliability(conf, correct)["bins"] == 15


def test_nll_and_brier_hand_worked():
    logits = np.log(np.array([[0.7, 0.2, 0.1] + [1e-12] * 7, [0.1, 0.8, 0.1] + [1e-12] * 7]))
    labels = np.array([0, 2])
    m = M.classification_metrics(labels, logits)
    assert m["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.1)) / 2, rel=1e-5)
    brier0 = 0.3**2 + 0.2**2 + 0.1**2
    brier1 = 0.1**2 + 0.8**2 + 0.9**2
    assert m["brier"] == pytest.approx((brier0 + brier1) / 2, rel=1e-5)
    assert m["accuracy"] == 0.5 and m["n"] == 2
    assert 0 <= m["brier"] <= 2


def test_flip_rate():
    assert M.flip_rate(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5


def test_ood_scores_hand_worked():
    logits = np.array([[2.0, 0.0] + [-50.0] * 8])
    s = O.ood_scores(logits)
    assert s["max_logit"][0] == 2.0
    assert s["energy"][0] == pytest.approx(math.log(math.exp(2) + 1), rel=1e-6)
    assert s["msp"][0] == pytest.approx(math.exp(2) / (math.exp(2) + 1), rel=1e-6)


def test_ood_metrics_hand_worked():
    # ID scores 1..20, OOD scores 0.5 and 10.5 and 19.5: the threshold accepting 95% of ID
    # (19 of 20) is 2, which accepts OOD 10.5 and 19.5 -> fpr95 = 2/3
    in_s = np.arange(1, 21, dtype=float)
    out_s = np.array([0.5, 10.5, 19.5])
    m = O.ood_detection_metrics(in_s, out_s)
    assert m["fpr95"] == pytest.approx(2 / 3)
    # AUROC = P(ID score > OOD score) = (20 + 10 + 1) / 60
    assert m["auroc"] == pytest.approx(31 / 60)
    perfect = O.ood_detection_metrics(np.array([5.0, 6.0]), np.array([1.0, 2.0]))
    assert perfect == {"auroc": 1.0, "fpr95": 0.0, "aupr_in": 1.0, "aupr_out": 1.0}


def test_ood_metrics_match_sklearn_on_random_scores():
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    in_s, out_s = rng.normal(1, 1, 500), rng.normal(0, 1, 300)
    m = O.ood_detection_metrics(in_s, out_s)
    y = np.r_[np.ones(500), np.zeros(300)]
    s = np.r_[in_s, out_s]
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert m["aupr_in"] == pytest.approx(average_precision_score(y, s))
    assert m["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s))
    fpr, tpr, _ = roc_curve(y, s)
    assert m["fpr95"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    # by hand: threshold = the ID score that keeps 95% of ID
    thr = np.sort(in_s)[::-1][int(np.ceil(0.95 * 500)) - 1]
    assert m["fpr95"] == pytest.approx((out_s >= thr).mean())
