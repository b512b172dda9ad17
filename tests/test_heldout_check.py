"""scripts/heldout_check.py: candidates compared on held-out training photos, colour and grey."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from conftest import load_script

from cleanvision import DnCNN
from cleanvision.data import holdout_split, list_images

ROOT = Path(__file__).resolve().parents[1]
hc = load_script(ROOT / "scripts" / "heldout_check.py")


def test_only_the_photos_training_holds_out_are_used(tmp_path, astronaut, coffee):
    for i in range(40):  # enough names that some fall on each side of a 5 % split
        cv2.imwrite(str(tmp_path / f"photo{i:02d}.png"), (astronaut if i % 2 else coffee)[:32, :32, ::-1])
    held = hc.heldout_files([tmp_path], 0.05)
    train, val = holdout_split(list_images(tmp_path), 0.05)  # what train_accelerate.py validates on
    assert held == val and held and not set(held) & set(train)


def test_a_do_nothing_model_loses_every_row_to_the_shipped_one(tmp_path, astronaut, coffee, capsys):
    train = tmp_path / "train"
    train.mkdir()
    cv2.imwrite(str(train / "astronaut.png"), astronaut[40:168, 150:278, ::-1])
    cv2.imwrite(str(train / "coffee.jpg"), coffee[100:228, 200:328, ::-1])
    config = json.loads((ROOT / "cleanvision" / "weights" / "default" / "config.json").read_text())
    DnCNN(**config).save_pretrained(tmp_path / "identity")  # a fresh model's last conv is zero: output = input
    work = tmp_path / "work"
    assert hc.main(["--model", "shipped", "--model", str(tmp_path / "identity"), "--train_data_dir", str(train),
                    "--validation_fraction", "1", "--conditions", "gauss25,scribble", "--paper-sigmas", "25",
                    "--work", str(work), "--no-progress"]) == 0
    out = capsys.readouterr().out
    docs = {s: json.loads((work / "results" / s / "results.json").read_text()) for s in hc.SETS}
    assert not docs["heldout-colour"]["grey"] and docs["heldout-grey"]["grey"]  # grey in, grey out
    table = hc.compare(docs, "model:shipped")
    assert [(s, c) for s, c, _ in table] == [("heldout-colour", "gauss25"), ("heldout-colour", "scribble"),
                                            ("heldout-colour", "paper25"), ("heldout-grey", "paper25")]
    for _, cond, psnr in table:
        assert list(psnr) == ["model:shipped", "model:identity"]
        assert psnr["model:identity"] < psnr["model:shipped"] - 3, cond
    gauss = docs["heldout-colour"]["results"]["gauss25"]["model:identity"]["psnr"]
    assert gauss == pytest.approx(20.4, abs=0.6)  # σ 25 left in place: the noisy input's PSNR
    assert "model:identity: 0 rows better, 4 worse" in out
    assert "2 held-out photos" in out and f"on {docs['heldout-colour']['environment']['cpu']}" in out


def test_one_model_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        hc.main(["--model", "shipped", "--work", str(tmp_path)])
