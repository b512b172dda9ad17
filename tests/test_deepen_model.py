"""scripts/deepen_model.py: a deeper network that starts out computing what the trained one does."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import load_script, random_dncnn

from cleanvision import DnCNN, Denoiser
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import add_gaussian_noise

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "cleanvision" / "weights" / "default"
deepen = load_script(ROOT / "scripts" / "deepen_model.py")


def test_the_shipped_model_deepened_restores_a_photo_exactly_as_before(tmp_path, astronaut, coffee):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "coffee.png"), coffee[::2, ::2, ::-1])
    assert deepen.main([str(SHIPPED), "-o", str(tmp_path / "deep"), "--add", "2", "--batches", "2",
                        "--train_data_dir", str(photos), "--validation_fraction", "0"]) == 0
    deep = DnCNN.from_pretrained(tmp_path / "deep")
    assert deep.depth == DnCNN.from_pretrained(SHIPPED).depth + 2
    noisy = add_gaussian_noise(astronaut, 25, rng=np.random.default_rng(0))
    before = Denoiser.from_pretrained(SHIPPED, engine="reference")(noisy)
    after = Denoiser.from_pretrained(tmp_path / "deep", engine="reference")(noisy)
    assert psnr_uint8(astronaut, before) > psnr_uint8(astronaut, noisy) + 5  # it does restore
    assert np.abs(after.astype(int) - before.astype(int)).max() <= 1  # ... and the same way
    info = json.loads((tmp_path / "deep" / "training_info.json").read_text())["deepened"]
    assert info["to_depth"] == info["from_depth"] + 2 and info["max_output_change"] < 1e-4


def test_new_blocks_are_identity_convolutions_normalised_by_their_input_statistics(astronaut):
    torch.manual_seed(0)
    model = random_dncnn(depth=6, width=8).eval()
    x = torch.from_numpy(astronaut[:64, :64]).permute(2, 0, 1)[None].float() / 255
    after = 2
    mean, var = deepen.activation_stats(model, after, [x])
    feats = model.body[: 2 + 3 * after](x)  # the input the new blocks get
    torch.testing.assert_close(mean, feats.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    deeper = deepen.deepen(model, 3, mean, var, after)
    new = deepen.blocks(deeper)[after:after + 3]
    for conv, bn in new:
        torch.testing.assert_close(conv(feats), feats)  # identity kernel
        torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(deeper(x), model(x), rtol=0, atol=1e-5)


def test_an_existing_output_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit):
        deepen.main([str(SHIPPED), "-o", str(tmp_path / "out")])
