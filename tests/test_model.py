"""DnCNN: residual learning, BatchNorm folding, receptive field, strict safetensors loading."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import random_dncnn

from cleanvision import DnCNN, WeightsError


@pytest.mark.parametrize("scale", [1, 2])
def test_forward_is_input_minus_predicted_noise(scale):
    torch.manual_seed(0)
    m = random_dncnn(channels=3, depth=5, width=16, pixel_unshuffle=scale).eval()
    x = torch.rand(2, 3, 37, 50)  # odd sizes: the unshuffle variant pads and crops back
    with torch.no_grad():
        assert m(x).shape == x.shape
        assert torch.allclose(m(x), x - m.predict_noise(x))


@pytest.mark.parametrize("scale", [1, 2])
def test_fuse_keeps_outputs(scale):
    torch.manual_seed(0)
    m = random_dncnn(depth=6, width=16, pixel_unshuffle=scale)
    m.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        m(torch.rand(4, 3, 32, 32))
    m.eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        before = m(x)
        after = m.fuse()(x)
    assert not any(isinstance(l, torch.nn.BatchNorm2d) for l in m.modules())
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("scale", [1, 2])
def test_receptive_radius_bounds_influence(scale):
    """A change at one pixel must not reach beyond receptive_radius (tiling relies on it)."""
    torch.manual_seed(0)
    m = random_dncnn(depth=5, width=8, pixel_unshuffle=scale).eval()
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[..., 32, 32] += 0.5
    with torch.no_grad():
        diff = (m(x) - m(y)).abs().amax(dim=1)[0]
    rows, cols = torch.nonzero(diff > 0, as_tuple=True)
    reach = max((rows - 32).abs().max(), (cols - 32).abs().max())
    assert 0 < reach <= m.receptive_radius


def test_save_and_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = random_dncnn(channels=1, depth=4, width=8, pixel_unshuffle=2).eval()
    m.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pixel_unshuffle"] == 2
    assert (tmp_path / "model.safetensors").is_file()
    n = DnCNN.from_pretrained(tmp_path)
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(m(x), n.eval()(x))


def test_loading_is_strict_and_safetensors_only(tmp_path):
    random_dncnn(depth=4, width=8).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "width": 16}))
    with pytest.raises(WeightsError, match="do not match"):
        DnCNN.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="safetensors"):
        DnCNN.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(random_dncnn(depth=4, width=8).state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="no model.safetensors"):
        DnCNN.from_pretrained(tmp_path)  # pickled weights are never loaded


def test_fused_model_saves_a_consistent_config(tmp_path):
    m = random_dncnn(depth=4, width=8).fuse()
    m.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["batch_norm"] is False
    DnCNN.from_pretrained(tmp_path)


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        random_dncnn(channels=2)


def test_fresh_model_starts_as_identity():
    """Zero-initialised output conv: training starts from 'no noise', not a random residual."""
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(DnCNN(depth=5, width=8, pixel_unshuffle=2).eval()(x), x)


def test_remove_phase_offset_subtracts_each_phases_mean_offset():
    """Per image and colour, each sub-pixel phase of the 2×2 cell loses its mean deviation from
    the cells' mean (written out phase by phase here), and nothing else changes."""
    from cleanvision.model import remove_phase_offset

    torch.manual_seed(0)
    noise = torch.randn(2, 3, 10, 14)
    noise[..., 0::2, 1::2] += 0.3  # a fixed dot grid
    out = remove_phase_offset(noise, 2)
    want = noise.clone()
    cell_mean = sum(noise[..., i::2, j::2] for i in range(2) for j in range(2)) / 4
    for i in range(2):
        for j in range(2):
            want[..., i::2, j::2] -= (noise[..., i::2, j::2] - cell_mean).mean(dim=(-2, -1), keepdim=True)
    assert torch.allclose(out, want, atol=1e-6)
    phases = torch.stack([out[..., i::2, j::2].mean(dim=(-2, -1)) for i in range(2) for j in range(2)])
    assert (phases - phases.mean(dim=0)).abs().max() < 1e-6
    assert torch.equal(remove_phase_offset(noise, 1), noise)
