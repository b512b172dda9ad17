"""The noise-level map: how noisy a photo is, as an input a noise-map model is given.

A blind network decides from ~50 px of context whether faint grain is noise or texture; how
noisy a photo is is a property of the whole photo. A noise-map model (FFDNet, Zhang et al.
2018; CBDNet, Guo et al. 2019) is told: beside the image it takes a map of the standard
deviation of the noise at each pixel (σ on the 0-255 scale divided by 255), estimated from
the photo by default and a knob a person can turn (lower keeps texture, higher removes more).

What the map means is fixed by training (:func:`training_map` over
:func:`cleanvision.real_noise.training_batch`'s ``sigma``): the std of the *dense* noise at
each pixel — Gaussian σ, speckle σ·x, camera noise through the sRGB curve, correlated noise
its marginal std — and zero where the only damage is impulses or strokes, or none. Where the
only damage is JPEG the map is zero too, unless the model was trained with
``--map_jpeg_level`` (recorded in its training_info.json; the shipped model was): then it is the
robust std of the JPEG error (1.4826 · median |JPEG − clean| per colour), so that level 0 means
"nothing to remove" rather than "perhaps JPEG", and a clean photo at level 0 is left alone.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


#: Share of training patches whose map is the patch's single RMS level rather than the
#: per-pixel one: what a person's knob or a one-number-per-photo estimate gives at run time.
P_CONSTANT = 0.5
#: Share of training patches whose map is scaled by a random factor in ``JITTER`` (log-uniform),
#: so an estimate a little off does not hurt.
P_JITTER = 0.5
JITTER = (0.8, 1.25)


def reduce_channels(sigma: torch.Tensor, channels: int) -> torch.Tensor:
    """A B×C×H×W per-channel std as a ``channels``-channel map: kept per colour (3), or the
    RMS over colours (1), which is the std of the noise a grey reading of the photo sees."""
    if channels == sigma.shape[1]:
        return sigma
    if channels != 1:
        raise ValueError(f"a {sigma.shape[1]}-channel std reduces to 1 channel or stays, not {channels}")
    return sigma.pow(2).mean(dim=1, keepdim=True).sqrt()


def training_map(sigma: torch.Tensor, channels: int = 1, generator: torch.Generator | None = None,
                 p_constant: float = P_CONSTANT, p_jitter: float = P_JITTER,
                 jitter: tuple[float, float] = JITTER) -> torch.Tensor:
    """The map a training patch is given, from its true per-pixel std ``sigma`` (B×C×H×W).

    On a share ``p_constant`` of patches the map is one number per patch (the RMS over its
    pixels); on a share ``p_jitter`` it is scaled by a log-uniform factor from ``jitter``.
    """
    b, dev, g = sigma.shape[0], sigma.device, generator
    m = reduce_channels(sigma, channels)
    rms = m.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().expand_as(m)
    const = torch.rand(b, 1, 1, 1, device=dev, generator=g) < p_constant
    m = torch.where(const, rms, m)
    lo, hi = math.log(jitter[0]), math.log(jitter[1])
    factor = torch.exp(lo + (hi - lo) * torch.rand(b, 1, 1, 1, device=dev, generator=g))
    scale = torch.where(torch.rand(b, 1, 1, 1, device=dev, generator=g) < p_jitter, factor,
                        torch.ones_like(factor))
    return m * scale


def as_map(level, shape: tuple[int, int, int, int], channels: int, device=None,
           dtype=torch.float32) -> torch.Tensor:
    """A noise level given on the 0-255 scale — one number, one per image, or an H×W / per-channel
    map — as an N×``channels``×H×W tensor in [0, 1] units (what the model takes)."""
    n, _, h, w = shape
    t = torch.as_tensor(level, dtype=dtype, device=device) / 255.0
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError("noise level must be finite and >= 0 (σ on the 0-255 scale)")
    if t.ndim == 0:
        return t.expand(n, channels, h, w)
    if t.ndim == 1 and t.shape[0] == n:
        return t.view(n, 1, 1, 1).expand(n, channels, h, w)
    if t.ndim == 2 and t.shape == (h, w):
        return t.expand(n, channels, h, w)
    if t.ndim == 4 and t.shape[0] == n and t.shape[1] in (1, channels) and t.shape[2:] == (h, w):
        return t.expand(n, channels, h, w)
    raise ValueError(f"noise level: expected a number, {n} numbers, an {h}×{w} map or an "
                     f"N×{channels}×{h}×{w} tensor, got shape {tuple(t.shape)}")


def middle_level(m: torch.Tensor, share: float = 0.2) -> torch.Tensor:
    """One level per image and channel of an N×C×H×W map: the mean of its middle ``share`` of
    values, a median whose gradient reaches that share of the pixels rather than one, so the
    estimator can be trained through the level auto mode restores with (the median of its map)."""
    v = m.flatten(2).sort(dim=2).values
    k = v.shape[2]
    lo = int(k * (1 - share) / 2)
    return v[..., lo:max(lo + 1, k - lo)].mean(dim=2)[..., None, None]


def check_level_curve(curve, noise_map: int) -> list[list[float]] | None:
    """A level curve's knots ``[[reading, level], ...]`` as floats (``None`` stays ``None``), or
    ValueError: only for a noise-map model; at least two knots, readings increasing, levels >= 0
    and never decreasing (more noise read, never less removed)."""
    if curve is None:
        return None
    if not noise_map:
        raise ValueError("level_curve goes with a noise-map model (noise_map 1 or 3)")
    knots = [[float(a), float(b)] for a, b in curve]
    xs, ys = [k[0] for k in knots], [k[1] for k in knots]
    if (len(knots) < 2 or not all(math.isfinite(v) for v in xs + ys) or min(xs + ys) < 0
            or any(b <= a for a, b in zip(xs, xs[1:])) or any(b < a for a, b in zip(ys, ys[1:]))):
        raise ValueError("level_curve: at least two [reading, level] knots, readings increasing, "
                         f"levels >= 0 and not decreasing; got {curve}")
    return knots


def apply_level_curve(reading: torch.Tensor, curve: list[list[float]]) -> torch.Tensor:
    """``reading`` (σ on the 0-255 scale) through the piecewise-linear ``curve``: its first
    knot's level below the first reading, the last knot's offset above the last (so a curve
    ending on the diagonal is the identity there). Differentiable in ``reading``."""
    xs = torch.tensor([k[0] for k in curve], dtype=reading.dtype, device=reading.device)
    ys = torch.tensor([k[1] for k in curve], dtype=reading.dtype, device=reading.device)
    return torch.where(reading > xs[-1], reading - xs[-1] + ys[-1], interp(reading, xs, ys))


def interp(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``x`` through the piecewise-linear function with knots ``xs`` (1-D, increasing) and
    ``ys``, flat beyond the end knots; differentiable in ``x`` (``numpy.interp`` for tensors)."""
    r = x.clamp(xs[0], xs[-1])
    i = torch.searchsorted(xs, r.detach().contiguous(), right=True).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (r - x0) * (y1 - y0) / (x1 - x0)


#: Auto mode's level by brightness (:func:`level_by_brightness`): the photo is cut into this many
#: bands of equal pixel count by brightness, and the map follows the bands' median readings
#: when the photo reads at least ``BRIGHTNESS_MIN_LEVEL`` (σ on the 0-255 scale, after the
#: level curve) and its second-brightest band reads ``BRIGHTNESS_MIN_SPREAD`` times its
#: second-darkest (as (b + 1) / (a + 1)): noise that grows with brightness, like speckle. Chosen
#: on held-out training photos (docs/benchmark.md, "The noise level"): a Gaussian photo's bands
#: read alike and a clean one reads under the level, so theirs stays one level (a JPEG photo
#: that reads noisy can pass: 8 of 30 held-out ones).
BRIGHTNESS_BANDS = 8
BRIGHTNESS_MIN_LEVEL = 5.0
BRIGHTNESS_MIN_SPREAD = 1.3
#: Brightness is read on a copy this many times smaller, blurred with a Gaussian of σ 1 there
#: and scaled back: the colour mean smoothed over about 4 px, so the noise does not move it.
BRIGHTNESS_SCALE = 4


def brightness(x: torch.Tensor) -> torch.Tensor:
    """The local brightness of N×C×H×W images in [0, 1] that a level-by-brightness map is a
    function of: N×1×H×W, the colour mean smoothed over about ``BRIGHTNESS_SCALE`` px."""
    h, w = x.shape[-2:]
    up = F.interpolate(coarse_brightness(x), scale_factor=BRIGHTNESS_SCALE, mode="bilinear", align_corners=False)
    return up[..., :h, :w]


def coarse_brightness(x: torch.Tensor) -> torch.Tensor:
    """:func:`brightness` before it is scaled back: one value per ``BRIGHTNESS_SCALE``-px block
    (its value at the block's centre), the colour mean of the block blurred by a Gaussian of σ 1 block."""
    h, w = x.shape[-2:]
    s = BRIGHTNESS_SCALE
    pad = (0, -w % s, 0, -h % s)
    small = F.avg_pool2d(F.pad(x, pad, mode="replicate") if any(pad) else x, s).mean(dim=1, keepdim=True)
    k = torch.exp(-0.5 * torch.arange(-3.0, 4.0, dtype=x.dtype, device=x.device) ** 2)
    k = k / k.sum()
    small = F.conv2d(F.pad(small, (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7))
    return F.conv2d(F.pad(small, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1))


def level_by_brightness(b: torch.Tensor, readings: torch.Tensor,
                        bands: int = BRIGHTNESS_BANDS) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One photo's noise level as a function of its brightness, from the estimator's
    ``readings`` (M×K, σ/255, M map channels) at brightness ``b`` (K): the median brightness
    (``bands``) and median reading (M×``bands``) of each of ``bands`` equal-count bands of
    brightness, or ``None`` when the photo has fewer than four distinct bands (flat). A median
    per band, so texture or a stroke in one band does not move it."""
    bn, rn = b.detach().cpu().numpy(), readings.detach().cpu().numpy()
    k = len(bn) // bands  # values per band; the brightest len % bands are left out
    if k == 0:
        return None
    order = np.argsort(bn, kind="stable")[:k * bands]
    centres = torch.from_numpy(np.median(bn[order].reshape(bands, k), axis=1))
    levels = torch.from_numpy(np.median(rn[:, order].reshape(-1, bands, k), axis=2))
    keep = torch.cat([torch.ones(1, dtype=torch.bool), centres.diff() > 1e-4])  # distinct brightness only
    if int(keep.sum()) < 4:
        return None
    return centres[keep].to(b.device), levels[:, keep].to(readings.device)


def grows_with_brightness(levels: torch.Tensor) -> bool:
    """Whether a photo's band readings (M×B, σ/255, from :func:`level_by_brightness`) rise with
    brightness by ``BRIGHTNESS_MIN_SPREAD`` (second band from each end, mean over channels)."""
    lv = levels.mean(dim=0) * 255.0
    return bool((lv[-2] + 1) / (lv[1] + 1) >= BRIGHTNESS_MIN_SPREAD)


#: How far (0-1 scale) from its 3×3 median a black or white pixel must be to count as an impulse.
IMPULSE_CONTRAST = 0.25


def without_impulses(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N×C×H×W in [0, 1]) with its impulses replaced by their 3×3 median: what the
    estimator reads the level from. Impulses are damage, not dense noise (their level is 0), yet
    a small network reads 10 % of them as σ 5-30; the classical test (an adaptive median filter's)
    finds them exactly: black or white in every channel, and far from the neighbours' median.
    Saturated areas are left alone (their median is saturated too). The median is taken only at
    the black or white pixels (none in most photos), which made it two thirds of the estimator's
    time when taken everywhere."""
    n, h, w = ((x <= 1 / 255) | (x >= 254 / 255)).all(dim=1).nonzero(as_tuple=True)
    if n.numel() == 0:
        return x
    d = torch.arange(-1, 2, device=x.device)
    # each pixel's 3×3 neighbourhood, edges replicated by clamping the indices
    rows = (h[:, None] + d).clamp(0, x.shape[-2] - 1).view(-1, 3, 1)
    cols = (w[:, None] + d).clamp(0, x.shape[-1] - 1).view(-1, 1, 3)
    near = x[n.view(-1, 1, 1), :, rows, cols].reshape(len(n), 9, x.shape[1])
    med = near.sort(dim=1).values[:, 4]  # K×C, the median (a sort of 9 is faster than torch.median)
    far = (x[n, :, h, w] - med).abs().amax(dim=1) > IMPULSE_CONTRAST
    out = x.clone()
    out[n[far], :, h[far], w[far]] = med[far]
    return out
