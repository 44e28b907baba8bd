"""robustmnist predict / robustmnist.predict: own photos framed and scored one by one; bad images
get one line each and the rest carry on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import robustmnist
from robustmnist.cli import main


class _Ink(torch.nn.Module):
    """A stand-in classifier: class 1 for a tall thin digit, 0 otherwise (from column spread)."""

    def forward(self, x):
        x = x.view(-1, 28, 28)
        cols = (x.sum(dim=1) > 1).sum(dim=1).float()
        thin = (cols < 8).float()
        logits = torch.zeros(len(x), 10)
        logits[:, 1] = 5 * thin
        logits[:, 0] = 5 * (1 - thin)
        return logits


@pytest.fixture
def model_path(tmp_path):
    p = tmp_path / "ink.pt"
    torch.jit.script(_Ink()).save(str(p))
    return p


def _photo(path, digit_one: bool, lines: bool = False):
    im = Image.new("L", (240, 180), 200)
    d = ImageDraw.Draw(im)
    for x in range(240):  # light falling off to the right
        d.line([(x, 0), (x, 179)], fill=int(215 - x * 0.25))
    if lines:
        for y in (30, 70, 110, 150):
            d.line([(0, y), (239, y)], fill=120, width=2)
    if digit_one:
        d.line([(120, 40), (116, 140)], fill=30, width=9)
    else:
        d.ellipse([(85, 40), (155, 140)], outline=30, width=9)
    im.convert("RGB").save(path, quality=90)


def test_predict_api_and_bad_images(tmp_path, model_path):
    _photo(tmp_path / "one.jpg", True, lines=True)
    _photo(tmp_path / "zero.png", False)
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("L", (1, 1)).save(tmp_path / "dot.png")
    paths = [tmp_path / n for n in ("one.jpg", "notes.jpg", "zero.png", "empty.png", "dot.png")]
    preds = robustmnist.predict(str(model_path), [str(p) for p in paths])
    assert [p.prediction for p in preds] == [1, None, 0, None, None]
    assert [bool(p.error) for p in preds] == [False, True, False, True, True]
    assert "too small" in preds[4].error and "empty" in preds[3].error
    assert preds[0].framed.shape == (28, 28) and abs(sum(preds[0].probabilities) - 1) < 1e-5
    # an array works too, and a blank page is flagged as doubtful
    blank = robustmnist.predict(str(model_path), np.full((64, 64), 0.8, dtype=np.float32))
    assert blank[0].doubtful


def test_predict_cli_json_and_page(tmp_path, model_path, monkeypatch, capsys):
    _photo(tmp_path / "a<b>.jpg", True)
    (tmp_path / "bad.jpg").write_text("x")
    page = tmp_path / "page.html"
    monkeypatch.setattr("sys.argv", ["robustmnist", "predict", str(model_path), str(tmp_path / "a<b>.jpg"),
                                     str(tmp_path / "bad.jpg"), "--format", "json", "--out", str(page)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1  # one of two could not be read
    rows = json.loads(capsys.readouterr().out)
    assert {"path", "prediction", "probabilities", "doubtful"} <= set(rows[0])
    assert rows[0]["prediction"] == 1 and rows[1]["error"]
    text = page.read_text()
    assert "a&lt;b&gt;.jpg" in text and "a<b>.jpg" not in text
    assert text.count("data:image/png;base64,") == 2  # the photo and its framed 28×28, inline


def test_a_large_jpeg_is_decoded_small_and_frames_the_same(tmp_path):
    # a 4000×3000 phone photo decodes at 1/8 scale (500×375, DCT blocks averaged): the framing
    # shrinks it to 112 px anyway; the 28×28 is that of the full decode
    from robustmnist.data.photo import PRE_SIDE, frame_real
    from robustmnist.run.predict import read_photo

    im = Image.new("L", (4000, 3000), 210)
    ImageDraw.Draw(im).line([(1700, 900), (2300, 900), (1900, 2100)], fill=40, width=140)  # a 7
    im.save(tmp_path / "seven.jpg", quality=90)
    grey, thumb = read_photo(tmp_path / "seven.jpg")
    assert PRE_SIDE <= max(grey.shape) < 2 * PRE_SIDE and max(thumb.shape) == 192
    with Image.open(tmp_path / "seven.jpg") as full:
        whole = np.asarray(full.convert("L"), dtype=np.float32) / 255
    a, b = frame_real([grey]), frame_real([whole])
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97
