"""PSNR and SSIM in torch, usable on the training device and batched.

SSIM is Wang et al. 2004 as ``skimage.metrics.structural_similarity`` computes it with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``: an 11×11 Gaussian
window, per-channel maps averaged over the valid region (the border of 5 px that skimage
crops is exactly where the window would leave the image, so no padding mode matters).
The tests check both functions against skimage on real images.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F


def _as_nchw(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Accept N×C×H×W tensors, or H×W[×C] numpy images (converted to float64)."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float64))
        return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    return x if x.ndim == 4 else x[None]


def psnr(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (dB), over all channels."""
    x, y = _as_nchw(x), _as_nchw(y)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(1e-20))


def _gaussian_window(sigma: float, truncate: float, dtype, device) -> torch.Tensor:
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def ssim(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, data_range: float = 1.0,
         sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image (averaged over channels), Gaussian window σ = 1.5, K1 0.01, K2 0.03."""
    x, y = _as_nchw(x), _as_nchw(y)
    n, c, h, w = x.shape
    g = _gaussian_window(sigma, 3.5, x.dtype, x.device)
    if h < g.numel() or w < g.numel():
        raise ValueError(f"SSIM needs images of at least {g.numel()}×{g.numel()} px, got {h}×{w}")

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable valid convolution per channel
        t = t.reshape(n * c, 1, *t.shape[-2:])
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(n, c, -1).mean(dim=2).mean(dim=1)


def psnr_uint8(clean: np.ndarray, restored: np.ndarray) -> float:
    """PSNR of two uint8 images on the 0-255 scale, as the benchmark reports it."""
    return float(psnr(clean, restored, 255.0)[0])


def ssim_uint8(clean: np.ndarray, restored: np.ndarray) -> float:
    """SSIM of two uint8 images on the 0-255 scale, as the benchmark reports it."""
    return float(ssim(clean, restored, 255.0)[0])




def pixel_pattern_score(error: np.ndarray) -> float:
    """How much of an error image is a fixed 2-pixel pattern (≈ 1 when it has none).

    A network whose body runs on a 2×2 pixel-unshuffle can leave a faint dot grid: the same
    offset at the same sub-pixel phase of every 2×2 cell. Such a pattern puts its energy in the
    three Nyquist bins of the spectrum, so the score is the mean power at (H/2, 0), (0, W/2)
    and (H/2, W/2) over the mean power of all bins, for ``error`` = output − reference (H×W,
    or H×W×C averaged over channels; an odd side loses its last row or column). Noise without
    a fixed phase spreads its power evenly and scores about 1.
    """
    e = np.asarray(error, dtype=np.float64)
    if e.ndim == 3:
        e = e.mean(axis=2)
    e = e[: e.shape[0] // 2 * 2, : e.shape[1] // 2 * 2]
    h, w = e.shape
    if h < 2 or w < 2:
        raise ValueError(f"need at least a 2×2 error image, got {np.shape(error)}")
    power = np.abs(np.fft.fft2(e)) ** 2
    total = power.mean()
    if total == 0:
        return 1.0  # no error at all: no pattern either
    return float(power[[h // 2, 0, h // 2], [0, w // 2, w // 2]].mean() / total)


__all__ = ["psnr", "ssim", "psnr_uint8", "ssim_uint8", "pixel_pattern_score"]
