"""scripts/precise_bn.py: BatchNorm statistics become the plain mean over many training batches."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from conftest import load_script, random_dncnn

from cleanvision import DnCNN

ROOT = Path(__file__).resolve().parents[1]
pbn = load_script(ROOT / "scripts" / "precise_bn.py")


def test_running_statistics_are_the_mean_of_the_batches_and_weights_stay(tmp_path, astronaut, coffee, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), astronaut[::4, ::4, ::-1])
    cv2.imwrite(str(photos / "coffee.png"), coffee[::4, ::4, ::-1])
    torch.manual_seed(3)
    random_dncnn(depth=4, width=16).save_pretrained(tmp_path / "m")
    before = DnCNN.from_pretrained(tmp_path / "m").state_dict()

    seen_means = []  # what the first BatchNorm sees, batch by batch, while the script runs
    original = pbn.reestimate

    def spy(model, batches, n):
        bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        bn.register_forward_hook(lambda mod, inp, out: seen_means.append(inp[0].mean(dim=(0, 2, 3))))
        seen = original(model, batches, n)
        assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))  # restored
        return seen

    monkeypatch.setattr(pbn, "reestimate", spy)
    assert pbn.main([str(tmp_path / "m"), "-o", str(tmp_path / "pbn"), "--batches", "5", "--batch_size", "4",
                     "--patch_size", "32", "--train_data_dir", str(photos), "--validation_fraction", "0"]) == 0
    after = DnCNN.from_pretrained(tmp_path / "pbn").state_dict()
    assert len(seen_means) == 5
    first = next(k for k in after if k.endswith("running_mean"))
    torch.testing.assert_close(after[first], torch.stack(seen_means).mean(0), rtol=1e-4, atol=1e-5)
    for k in after:  # only the statistics change
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(after[k], before[k]), k
    assert not torch.allclose(after[first], before[first])
    info = json.loads((tmp_path / "pbn" / "training_info.json").read_text())
    assert info["precise_bn"]["batches"] == 5 and info["precise_bn"]["train_images"] == 2


def test_an_existing_output_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit):
        pbn.main([str(ROOT / "cleanvision" / "weights" / "default"), "-o", str(tmp_path / "out")])
