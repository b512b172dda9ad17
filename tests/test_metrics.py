"""PSNR/SSIM in torch equal scikit-image's on real images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cleanvision import metrics
from cleanvision.noise import add_gaussian_noise, random_mixture


def sk_ssim(a, b):
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, data_range=255)


def test_equal_to_skimage_on_cbsd68(cbsd68_files):
    for i, f in enumerate(cbsd68_files[:4]):
        clean = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        noisy = add_gaussian_noise(clean, 25, i) if i % 2 else random_mixture(clean, i)[0]
        blurred = cv2.GaussianBlur(noisy, (5, 5), 1.2)
        for other in (noisy, blurred):
            assert abs(metrics.psnr_uint8(clean, other) - peak_signal_noise_ratio(clean, other, data_range=255)) < 1e-3
            assert abs(metrics.ssim_uint8(clean, other) - sk_ssim(clean, other)) < 1e-4


def test_grey_and_float32_batched(camera):
    noisy = add_gaussian_noise(camera, 15, 0)
    assert abs(metrics.ssim_uint8(camera, noisy) - sk_ssim(camera, noisy)) < 1e-4
    # float32 batches on the training device: same values to training precision
    a = torch.from_numpy(camera).float()[None, None].repeat(2, 1, 1, 1) / 255
    b = torch.from_numpy(noisy).float()[None, None].repeat(2, 1, 1, 1) / 255
    p, s = metrics.psnr(a, b), metrics.ssim(a, b)
    assert p.shape == (2,) and abs(float(p[0]) - peak_signal_noise_ratio(camera, noisy, data_range=255)) < 1e-3
    assert abs(float(s[1]) - sk_ssim(camera, noisy)) < 1e-4


def test_identical_images_and_too_small():
    img = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    assert metrics.ssim_uint8(img, img) == pytest.approx(1.0)
    assert metrics.psnr_uint8(img, img) > 100
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim_uint8(img[:8], img[:8])


def test_pixel_pattern_score_finds_a_fixed_two_pixel_grid(astronaut):
    """White noise scores about 1; the same noise plus a faint dot grid at one phase of every
    2×2 cell (what a pixel-unshuffle body can leave) scores far higher."""
    from cleanvision.metrics import pixel_pattern_score

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2.0, astronaut.shape)
    assert 0.5 < pixel_pattern_score(noise) < 2.0
    grid = np.zeros(astronaut.shape[:2])
    grid[0::2, 0::2] = 1.0  # +1 grey level on one pixel of each 2×2 cell
    assert pixel_pattern_score(noise + grid[..., None]) > 50
    # a smooth real-photo difference (brightness change) has no Nyquist energy either
    assert pixel_pattern_score(astronaut.astype(float) * 0.01) < 1.0
