"""Real-photo training damage (cleanvision.real_noise): statistics on real images.

Each degradation is checked for the property that makes it what it claims to be: luminance
noise is the same in every channel, camera noise grows with intensity in linear light, JPEG is
the benchmark's own encoder and its quality trades size for error, grey patches stay grey.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch

from cleanvision.inference import SHIPPED_MODEL
from cleanvision.noise import apply_noise, jpeg_uint8, parse_noise_spec
from cleanvision.real_noise import (REAL_RANGES, TRAIN_MIX, TrainingMix, camera_noise, correlated_noise, degrade_real_batch,
                                    jpeg_batch, linear_to_srgb, override_ranges, srgb_slope, srgb_to_linear,
                                    training_batch)


def patches(img: np.ndarray, n: int = 8, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random crops of an RGB uint8 photo as a B×3×H×W float batch in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        y, x = rng.integers(0, h - size), rng.integers(0, w - size)
        out.append(img[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def channels_equal(x: torch.Tensor) -> torch.Tensor:
    return ((x[:, 0] == x[:, 1]) & (x[:, 1] == x[:, 2])).flatten(1).all(dim=1)


def test_srgb_curve_round_trip():
    x = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6)
    assert srgb_to_linear(torch.tensor(0.5)).item() == pytest.approx(0.2140, abs=1e-4)  # the sRGB standard


@pytest.mark.parametrize("spatial", [0, 1, 2, 3])
def test_channel_correlation(spatial):
    g = torch.Generator().manual_seed(0)
    kinds = torch.tensor([0, 1, 2])
    n = correlated_noise((3, 3, 96, 96), kinds, torch.full((3,), spatial), generator=g)
    assert torch.allclose(n.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-4)  # unit variance whatever the kind
    corr = [np.corrcoef(n[i].flatten(1).numpy()) for i in range(3)]
    off = [np.abs(c[np.triu_indices(3, 1)]) for c in corr]
    assert off[0].max() < 0.1                       # independent
    assert channels_equal(n)[1] and not channels_equal(n)[2]  # luminance: the same draw in every channel
    assert off[2].max() > 0.2                       # random 3×3 mixing: correlated, not equal


def test_channel_gain_makes_channels_unequal_except_luminance():
    """White balance: red and blue noise stronger than green (CC15 R:G:B σ ≈ 1.4 : 1 : 1.3). With a
    gain range the non-luminance kinds get unequal channel σ, luminance noise stays the same draw in
    every channel, and each image keeps unit variance; without one, channels are equal."""
    kinds = torch.tensor([0, 1, 2] * 4)
    spatial = torch.zeros(12, dtype=torch.long)
    plain = correlated_noise((12, 3, 96, 96), kinds, spatial, generator=torch.Generator().manual_seed(3))
    gained = correlated_noise((12, 3, 96, 96), kinds, spatial, generator=torch.Generator().manual_seed(3),
                              channel_gain=(0.5, 2.0))
    assert torch.allclose(gained.std(dim=(1, 2, 3)), torch.ones(12), atol=1e-4)
    ratio = lambda n: (n.std(dim=(2, 3)).amax(dim=1) / n.std(dim=(2, 3)).amin(dim=1))  # noqa: E731
    assert ratio(plain)[kinds == 0].max() < 1.05         # independent, equal gains: channels alike
    assert ratio(gained)[kinds != 1].median() > 1.5      # gains up to 4x apart: channels differ
    assert channels_equal(gained)[kinds == 1].all()      # luminance (and grey) noise stays equal


def test_override_ranges_parses_by_field_type_and_rejects_the_unknown():
    r = override_ranges(["p_sigma_log=0.2", "channel_gain=0.8,1.25", "jpeg_quality=20,90", "p_spatial=1,0,0,0"])
    assert r.p_sigma_log == 0.2 and r.channel_gain == (0.8, 1.25) and r.p_spatial == (1.0, 0.0, 0.0, 0.0)
    assert r.jpeg_quality == (20, 90) and isinstance(r.jpeg_quality[0], int)
    assert r.sigma == REAL_RANGES.sigma and override_ranges([]) == REAL_RANGES
    for bad, says in [("blurr=1,2", "NAME one of"), ("blur=1", "2 comma-separated"), ("p_jpeg=high", "p_jpeg"),
                      ("p_jpeg", "NAME=VALUE"), ("jpeg_quality=20.5,90", "jpeg_quality")]:
        with pytest.raises(ValueError, match=says):
            override_ranges([bad])


def test_default_mix_is_the_shipped_models_last_stage():
    """Training with no ``--real_fraction/--grey_fraction/--real_ranges`` continues the mix the
    shipped denoiser last trained on, as its training_info.json records it, so the defaults
    cannot drift from the weights they describe (an estimator-only refit has a mix of its own)."""
    from cleanvision.bench import training_stages

    stages = training_stages(json.loads((SHIPPED_MODEL / "training_info.json").read_text()))
    shipped = next(s for s in reversed(stages) if "--train_only estimator" not in s["command"])["degradations"]
    assert (TRAIN_MIX.real, TRAIN_MIX.grey) == (shipped["real_fraction"], shipped["grey_fraction"])
    assert TRAIN_MIX.clean == shipped.get("clean_fraction", 0.0)  # recorded since the option exists
    assert TRAIN_MIX.ranges == REAL_RANGES
    assert json.loads(json.dumps(asdict(REAL_RANGES))) == shipped["real_ranges"]  # as train_accelerate.py writes it


def test_spatial_correlation():
    """Demosaiced, half-resolution and blurred noise is correlated with its neighbour; white noise
    is not; the wider the blur, the further the correlation reaches."""
    g = torch.Generator().manual_seed(1)
    n = correlated_noise((5, 3, 128, 128), torch.zeros(5, dtype=torch.long), torch.tensor([0, 1, 2, 3, 3]),
                         generator=g, blur=(0.8, 0.8))
    lag1 = [float((n[i, :, :, 1:] * n[i, :, :, :-1]).mean()) for i in range(5)]
    assert abs(lag1[0]) < 0.05 and lag1[1] > 0.3 and lag1[2] > 0.3 and lag1[3] > 0.3
    wide = correlated_noise((1, 3, 128, 128), torch.zeros(1, dtype=torch.long), torch.tensor([3]),
                            generator=g, blur=(1.5, 1.5))
    lag2 = [float((x[:, :, 2:] * x[:, :, :-2]).mean()) for x in (n[3], wide[0])]
    assert lag2[1] > lag2[0] + 0.2 and lag2[1] > 0.5


def test_camera_noise_variance_grows_with_intensity():
    """Poisson–Gaussian: in linear light the variance is shot·x + read, so it grows with x; on the
    pixel scale the noise is that, through the sRGB curve's slope, and zero-mean (no brightness shift)."""
    levels = torch.tensor([0.1, 0.3, 0.6, 0.9])
    clean = linear_to_srgb(levels).view(4, 1, 1, 1).expand(4, 3, 128, 128).contiguous()
    g = torch.Generator().manual_seed(2)
    z = torch.randn(clean.shape, generator=g)
    shot, read = torch.full((4,), 1e-3), torch.full((4,), 1e-5)
    diff = (camera_noise(clean, shot, read, z) - clean).flatten(1)
    linear_var = diff.var(dim=1) / srgb_slope(levels) ** 2
    assert torch.all(linear_var[1:] > linear_var[:-1])
    assert torch.allclose(linear_var, shot * levels + read, rtol=0.1)
    assert diff.mean(dim=1).abs().max() < 0.1 * diff.std(dim=1).min()
    # the slope is the derivative of the curve
    x = torch.tensor([0.001, 0.05, 0.2, 0.7])
    numeric = (linear_to_srgb(x + 1e-4) - linear_to_srgb(x - 1e-4)) / 2e-4
    assert torch.allclose(srgb_slope(x), numeric, rtol=1e-3)


def test_jpeg_is_the_benchmarks_encoder(astronaut, make_bench):
    img = np.ascontiguousarray(astronaut[100:228, 150:278])
    ours = jpeg_uint8(img, 30)
    theirs = make_bench.jpeg(img[..., ::-1].astype(np.float64), 30)  # make_bench works in BGR
    assert np.array_equal(ours, theirs[..., ::-1].astype(np.uint8))
    # the batched training path gives the same bytes
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    out = jpeg_batch(x, torch.tensor([30]))
    assert np.array_equal(np.rint(out[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), ours)


def test_jpeg_quality_trades_size_for_error(astronaut):
    img = np.ascontiguousarray(astronaut[:256, :256])
    sizes, errors = [], []
    for q in (10, 30, 50, 70, 90):
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        sizes.append(len(buf))
        errors.append(np.abs(jpeg_uint8(img, q).astype(float) - img).mean())
    assert sizes == sorted(sizes) and sizes[-1] > 3 * sizes[0]
    assert errors == sorted(errors, reverse=True)


def test_grey_patches_stay_grey(astronaut):
    clean = patches(astronaut, 16)
    target, noisy = training_batch(clean, TrainingMix(real=0.5, grey=1.0), torch.Generator().manual_seed(3))
    assert channels_equal(target).all() and channels_equal(noisy).all()
    assert (noisy - target).abs().mean() > 0.005  # damaged all the same


def test_real_batch_damage(astronaut):
    """Every patch is damaged, quantised to 8 bits, and in [0, 1]; some are JPEG-blocky."""
    clean = patches(astronaut, 32, seed=4)
    noisy = degrade_real_batch(clean, generator=torch.Generator().manual_seed(4))
    assert noisy.shape == clean.shape and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(torch.round(noisy * 255) / 255, noisy)
    assert ((noisy - clean).abs().flatten(1).mean(dim=1) > 0).all()


def test_log_uniform_sigma_share_favours_camera_levels(astronaut):
    """``p_sigma_log`` draws that share of the Gaussian σ log-uniformly: σ < 10 (where real
    cameras sit) goes from ≈ 18 % of patches (uniform over 1–50) to ≈ 59 %."""
    from cleanvision.real_noise import RealRanges

    clean = patches(astronaut, 400, seed=6)
    below = []
    for share in (0.0, 1.0):
        r = RealRanges(p_gaussian=1.0, p_speckle=0.0, p_camera=0.0, p_jpeg=0.0,
                       p_channels=(1.0, 0.0, 0.0), p_spatial=(1.0, 0.0, 0.0, 0.0), p_sigma_log=share)
        noisy = degrade_real_batch(clean, generator=torch.Generator().manual_seed(6), ranges=r)
        sigma = ((noisy - clean) * 255).flatten(1).std(dim=1)
        below.append(float((sigma < 10).float().mean()))
    assert 0.1 < below[0] < 0.28 and 0.5 < below[1] < 0.7


def test_training_batch_shares(astronaut):
    """real=0 and grey=0 is the synthetic mixture alone: colour noise, channels disagree."""
    clean = patches(astronaut, 16, seed=5)
    target, noisy = training_batch(clean, TrainingMix(real=0.0, grey=0.0, clean=0.0), torch.Generator().manual_seed(5))
    assert torch.equal(target, clean)
    assert not channels_equal(noisy - clean).any()


def test_clean_share_leaves_whole_patches_undamaged(astronaut):
    """``clean`` leaves that share of patches exactly as they were (grey ones grey) and damages
    the rest as before; 0 draws nothing more, so an older mix replays bit for bit."""
    clean = patches(astronaut, 64, seed=7)
    base = training_batch(clean, TrainingMix(grey=0.3, clean=0.0), torch.Generator().manual_seed(7))
    target, noisy = training_batch(clean, TrainingMix(clean=0.5, grey=0.3), torch.Generator().manual_seed(7))
    untouched = (noisy == target).flatten(1).all(dim=1)
    assert 0.3 < float(untouched.float().mean()) < 0.7
    assert torch.equal(noisy[~untouched], base[1][~untouched])  # the others: the same damage as clean=0
    assert channels_equal(target).float().mean() > 0.1  # grey ones among them, their target grey
    target, noisy = training_batch(clean, TrainingMix(clean=1.0), torch.Generator().manual_seed(7))
    assert torch.equal(noisy, target)


def test_apply_noise_jpeg_last(astronaut):
    """``jpeg=Q`` in a noise spec saves the damaged image as JPEG, last: the same bytes as
    the benchmark's ``gauss15_jpeg50`` recipe applied by hand, for uint8 and (on its 8-bit grid) uint16."""
    img = np.ascontiguousarray(astronaut[:128, :128])
    params = parse_noise_spec("gaussian=15,jpeg=50")
    assert params == {"sigma": 15.0, "jpeg_quality": 50}
    noisy, _ = apply_noise(img, params, rng=0)
    by_hand = jpeg_uint8(apply_noise(img, {"sigma": 15.0}, rng=0)[0], 50)
    assert np.array_equal(noisy, by_hand)
    wide, _ = apply_noise(img.astype(np.uint16) * 257, params, rng=0)
    assert wide.dtype == np.uint16 and np.array_equal(wide, by_hand.astype(np.uint16) * 257)
    with pytest.raises(ValueError, match="quality"):
        apply_noise(img, {"jpeg_quality": 101})


def test_real_noise_stats_measure_what_was_added(astronaut):
    """scripts/real_noise_stats.py (the model card's real-noise figures): per-channel σ, channel and
    neighbour correlation of a known noise come back; the removed share is 1 for a perfect
    restoration and 0 for none."""
    from conftest import ROOT, load_script
    stats = load_script(ROOT / "scripts" / "real_noise_stats.py")
    truth = astronaut.astype(np.float64)
    rng = np.random.default_rng(4)
    white = rng.normal(size=truth.shape) * np.array([3.0, 6.0, 9.0])
    s = stats.noise_stats(truth + white, truth)
    assert [round(s[k]) for k in ("σ R", "σ G", "σ B")] == [3, 6, 9]
    assert max(abs(s["corr RG"]), abs(s["lag 1"])) < 0.02
    grain = cv2.GaussianBlur(np.repeat(rng.normal(size=truth.shape[:2])[..., None], 3, axis=2), (0, 0), 1.0)
    s = stats.noise_stats(truth + 20 * grain, truth)
    assert s["corr RG"] > 0.99 and s["lag 1"] > s["lag 2"] > 0.3
    noisy = truth + white
    assert stats.removed_share(noisy, truth, truth) == pytest.approx(1.0)
    assert stats.removed_share(noisy, truth, noisy) == pytest.approx(0.0)
