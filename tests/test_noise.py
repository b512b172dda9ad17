"""Noise synthesis: statistics, dtypes, reproducibility, and agreement with the frozen benchmark."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cleanvision import noise
from cleanvision.noise import (NoiseRanges, add_gaussian_noise, add_salt_pepper_noise, add_scribbles,
                               add_speckle_noise, apply_noise, degrade_batch, parse_noise_spec,
                               random_mixture)

FLAT = np.full((200, 300, 3), 128, np.uint8)


@pytest.mark.parametrize("fn,arg", [(add_gaussian_noise, 25), (add_salt_pepper_noise, 0.1),
                                    (add_speckle_noise, 0.04), (add_scribbles, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtype_shape_and_seed(astronaut, fn, arg, dtype):
    img = astronaut.astype(np.float32) / 255 if dtype == np.float32 else \
        (astronaut.astype(np.uint16) * 257 if dtype == np.uint16 else astronaut)
    for im in (img, img[..., 0]):  # colour and grey
        a, b, c = fn(im, arg, rng=1), fn(im, arg, rng=1), fn(im, arg, rng=2)
        assert a.dtype == im.dtype and a.shape == im.shape
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        assert not np.array_equal(a, im)


def test_gaussian_statistics():
    diff = add_gaussian_noise(FLAT, 20, rng=0).astype(float) - 128
    assert abs(diff.std() - 20) < 0.3 and abs(diff.mean()) < 0.3
    d16 = (add_gaussian_noise(FLAT.astype(np.uint16) * 257, 20, rng=0).astype(float) - 128 * 257) / 257
    assert abs(d16.std() - 20) < 0.3  # sigma is on the 0-255 scale for every dtype


def test_salt_pepper_hits_whole_pixels():
    out = add_salt_pepper_noise(FLAT, 0.1, rng=0)
    hit = (out != 128).any(axis=2)
    assert abs(hit.mean() - 0.1) < 0.01
    assert ((out[hit] == 0).all(axis=1) | (out[hit] == 255).all(axis=1)).all()
    assert abs((out[hit][:, 0] == 255).mean() - 0.5) < 0.05


def test_speckle_scales_with_brightness():
    img = np.tile(np.linspace(20, 200, 300).astype(np.uint8), (400, 1))
    diff = add_speckle_noise(img, 0.04, rng=0).astype(float) - img
    dark, bright = diff[:, :50].std() / img[:, :50].mean(), diff[:, -50:].std() / img[:, -50:].mean()
    assert abs(dark - 0.2) < 0.03 and abs(bright - 0.2) < 0.02


def test_scribbles_are_black_strokes():
    out = add_scribbles(FLAT, 5, 3, rng=0)
    changed = (out != FLAT).any(axis=2)
    assert 0.002 < changed.mean() < 0.2
    assert (out[changed] == 0).all()


def test_apply_noise_records_params_and_rejects_unknown():
    out, params = apply_noise(FLAT, {"sigma": 10, "scribbles": 3, "thickness": 2}, rng=0)
    assert len(params["strokes"]) == 3 and all(s[2] == 2 for s in params["strokes"])
    with pytest.raises(ValueError, match="unknown noise parameter"):
        apply_noise(FLAT, {"gauss": 10})
    same, _ = apply_noise(FLAT, {}, rng=0)
    assert np.array_equal(same, FLAT)


@pytest.mark.parametrize("condition", ["gauss25", "sp10", "speckle", "mixed"])
def test_matches_frozen_benchmark(make_bench, cbsd68_files, condition):
    """With the benchmark's generator, our functions reproduce its noisy images bit for bit."""
    for f in cbsd68_files[:4]:
        clean = cv2.imread(str(f))
        expected, _ = make_bench.degrade(clean, condition, make_bench.rng_for(0, condition, f.name))
        rng = noise.bench_rng(0, condition, f.name)
        assert rng.bit_generator.state == make_bench.rng_for(0, condition, f.name).bit_generator.state
        ours = {"gauss25": lambda: add_gaussian_noise(clean, 25.0, rng),
                "sp10": lambda: add_salt_pepper_noise(clean, 0.10, rng),
                "speckle": lambda: add_speckle_noise(clean, 0.04, rng),
                "mixed": lambda: random_mixture(clean, rng)[0]}[condition]()
        assert np.array_equal(ours, expected), f.name


def test_mixture_draws_within_ranges():
    kinds = set()
    for seed in range(60):
        _, p = random_mixture(FLAT, seed)
        present = {k for k in ("sigma", "salt_pepper", "speckle_var", "scribbles") if k in p}
        assert 1 <= len(present) <= 3
        kinds |= present
        assert 5 <= p.get("sigma", 5) <= 50 and 0.01 <= p.get("salt_pepper", 0.01) <= 0.15
        assert 0.01 <= p.get("speckle_var", 0.01) <= 0.06 and 3 <= p.get("scribbles", 3) <= 6
    assert kinds == {"sigma", "salt_pepper", "speckle_var", "scribbles"}


def test_parse_noise_spec():
    assert parse_noise_spec("mixed") is None
    assert parse_noise_spec("gaussian=25, salt_pepper=0.05,scribble=4") == \
        {"sigma": 25.0, "salt_pepper": 0.05, "scribbles": 4}
    for bad in ("gauss=3", "gaussian", "gaussian=abc", ""):
        with pytest.raises(ValueError):
            parse_noise_spec(bad)


def test_degrade_batch_on_device():
    torch.manual_seed(0)
    clean = torch.full((64, 3, 48, 48), 0.5)
    noisy = degrade_batch(clean)
    assert noisy.shape == clean.shape and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(torch.round(noisy * 255), noisy * 255)  # 8-bit quantised
    per_image = (noisy - clean).flatten(1).abs().mean(1)
    assert (per_image > 0).all() and per_image.unique().numel() == 64  # every image differs
    only_gauss = NoiseRanges(sigma=(25, 25), n_types=(1, 1), salt_pepper=(0, 0), speckle_var=(0, 0),
                             lines=(0, 0))
    g = torch.Generator().manual_seed(0)
    out = degrade_batch(clean, g, only_gauss)
    d = (out - clean) * 255
    # with one type drawn among four, about a quarter of the images get sigma=25
    stds = d.flatten(1).std(1)
    gauss = stds > 5
    assert 8 < gauss.sum() < 28 and ((stds[gauss] - 25).abs() < 1.5).all()


def test_degrade_batch_strokes_and_impulses():
    torch.manual_seed(1)
    clean = torch.full((16, 3, 64, 64), 128 / 255)
    strokes = degrade_batch(clean, ranges=NoiseRanges(n_types=(1, 1), lines=(3, 6), thickness=(2, 4),
                                                      sigma=(0, 0), salt_pepper=(0, 0), speckle_var=(0, 0)))
    changed = (strokes != clean).any(1)
    assert (strokes.permute(0, 2, 3, 1)[changed] == 0).all()  # only black ink, nothing else changed
    sp = degrade_batch(clean, ranges=NoiseRanges(n_types=(4, 4), salt_pepper=(0.1, 0.1), sigma=(0, 0),
                                                 speckle_var=(0, 0), lines=(0, 0)))
    hit = (sp != clean).any(1).float().mean()
    assert abs(hit - 0.1) < 0.02
    assert noise.TRAIN_RANGES.n_types == (1, 4)  # all4 needs all four at once in training
