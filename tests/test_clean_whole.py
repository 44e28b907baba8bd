"""The clean record scores every clean digit, whatever n (issue 25: a user compares it with their
own test loop); shifted sets, flip rates and comparisons keep pairing with the first n."""

from __future__ import annotations

import numpy as np

import robustmnist
from robustmnist.metrics.classification import classification_metrics
from robustmnist.metrics.paired import compare, load_predictions
from robustmnist.metrics.reference import reference_from_result
from robustmnist.run.scoring import score

from .helpers import untrained_checkpoint


def test_clean_is_every_digit_and_shifted_sets_the_first_n(tiny_data_root, tmp_path):
    model = untrained_checkpoint(tmp_path / "a.pt", "mlp-784-50-50-10")
    r = robustmnist.evaluate(model, suite="quick", shift="rotate,fonts", severity=[2], n=60, force=True,
                             data_root=tiny_data_root, device="cpu", out=tmp_path / "out", log=None, warn=None)
    from robustmnist.data.datasets import load_mnist

    digits = load_mnist("test", tiny_data_root)
    assert len(digits.images) == 200
    loaded = robustmnist.load_model(model)
    logits = score(loaded, digits.images)
    assert r.clean.n == 200  # not the 60 of the shifted sets
    assert r.clean.accuracy == classification_metrics(digits.labels, logits)["accuracy"]
    prefix = r.summary["clean_prefix"]
    assert prefix["n"] == 60
    assert prefix["accuracy"] == classification_metrics(digits.labels[:60], logits[:60])["accuracy"]
    assert r.suite["n"] == 60 and all(s.n == 60 for s in r.shifts)
    rot = next(s for s in r.shifts if s.name == "rotate")
    preds = load_predictions(r, tmp_path / "out" / "results.json")
    assert len(preds["clean"]) == 200 and len(preds["rotate@2"]) == 60
    # flip rate: the rotated set against the same 60 clean digits
    assert rot.flip_rate == float(np.mean(preds["rotate@2"] != logits[:60].argmax(1)))
    # what reads predictions back takes the first n of clean where it pairs
    ref = reference_from_result(r, predictions=preds)
    assert ref.clean_error_at(60) == 1 - prefix["accuracy"]
    rows = compare(r, preds, r, preds)
    assert {c.set_id: c.n for c in rows}["clean"] == 200
