"""scripts/average_weights.py: the mean of two models, BatchNorm statistics included, recorded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_script, random_dncnn

from cleanvision import Denoiser, DnCNN
from cleanvision.bench.sets import sha256_file

ROOT = Path(__file__).resolve().parents[1]
avg = load_script(ROOT / "scripts" / "average_weights.py")


def _model(folder: Path, seed: int, **kwargs) -> DnCNN:
    torch.manual_seed(seed)
    m = random_dncnn(depth=4, width=16, **kwargs)
    for mod in m.modules():  # distinct running statistics, so averaging them is checked too
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 2.0)
    m.save_pretrained(folder)
    (folder / "training_info.json").write_text(json.dumps({"steps": 10 + seed}))
    return m


def test_average_is_the_mean_of_every_tensor_and_is_recorded(tmp_path):
    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    assert avg.main([str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "ab"), "--weight", "0.25"]) == 0
    ab = DnCNN.from_pretrained(tmp_path / "ab")
    sa, sb, sab = a.state_dict(), b.state_dict(), ab.state_dict()
    for k in sab:
        if sab[k].is_floating_point():
            torch.testing.assert_close(sab[k], 0.25 * sa[k] + 0.75 * sb[k])
    assert any("running_var" in k for k in sab)
    info = json.loads((tmp_path / "ab" / "training_info.json").read_text())
    assert info["steps"] == 11  # the first model's record, kept
    rec = info["averaged_with"]
    assert rec["weight_of_this_run"] == 0.25 and rec["path"] == str(tmp_path / "b")
    assert rec["this_run_sha256"] == sha256_file(tmp_path / "a" / "model.safetensors")[:12]
    assert rec["other_sha256"] == sha256_file(tmp_path / "b" / "model.safetensors")[:12]


def test_weight_one_restores_a_photo_as_the_first_model_does(tmp_path, astronaut):
    _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    avg.main([str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "a1"), "--weight", "1"])
    photo = astronaut[:96, :96]
    out_a = Denoiser.from_pretrained(tmp_path / "a", engine="reference")(photo)
    out_b = Denoiser.from_pretrained(tmp_path / "b", engine="reference")(photo)
    out_a1 = Denoiser.from_pretrained(tmp_path / "a1", engine="reference")(photo)
    assert np.array_equal(out_a1, out_a) and not np.array_equal(out_a, out_b)


def test_refuses_other_architectures_and_existing_folders(tmp_path):
    _model(tmp_path / "a", 1), _model(tmp_path / "wide", 2, channels=1)
    with pytest.raises(SystemExit):
        avg.main([str(tmp_path / "a"), str(tmp_path / "wide"), "-o", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit):
        avg.main([str(tmp_path / "a"), str(tmp_path / "a"), "-o", str(tmp_path / "taken")])
    assert not any((tmp_path / "taken").iterdir())
