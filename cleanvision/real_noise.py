"""Damage that real photos carry, for training: camera sensor noise, JPEG, grey images.

The four synthetic types of :mod:`cleanvision.noise` draw noise independently per channel, so
a model trained only on them learns to find noise as *disagreement between R, G and B* and
leaves alone whatever damage the channels share (grey images, luminance noise, JPEG). This
module adds, batched on the training device like :func:`~cleanvision.noise.degrade_batch`:

* Gaussian and speckle noise with **channel correlation**: independent, luminance-only (the
  same draw in every channel) or a random 3×3 mixing matrix, optionally with unequal channel
  gains, as a camera's white balance leaves red and blue noisier than green;
* **camera noise**: signal-dependent Poisson–Gaussian (shot + read) noise added in linear
  light (undo the sRGB curve, add, redo it), as a sensor makes it;
* **spatially correlated noise**: drawn on a Bayer mosaic and bilinearly demosaiced, drawn
  at half resolution and upsampled, or blurred by a Gaussian of random width, as camera
  pipelines (demosaicing, in-camera denoising and sharpening) and resizing make it;
* **JPEG** at a random quality, applied last (sometimes twice, with the 8×8 grid shifted).
  JPEG runs through OpenCV on uint8 copies on the CPU: it is the very encoder the benchmark
  (``make_bench.py``) uses, and at ≈0.1 ms per 64² patch it costs far less than a training step;
* **grey images**: a share of the patches turned grey (three equal channels, as
  :class:`~cleanvision.inference.Denoiser` feeds a grey image to a colour model) and degraded
  with channel-identical damage, so a grey input is a case the model has seen.

:func:`training_batch` mixes these with the synthetic mixture in the shares of a
:class:`TrainingMix`; the shipped model's shares are recorded in ``docs/training_history.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from .noise import TRAIN_RANGES, NoiseRanges, degrade_batch, jpeg_uint8

#: Rec. 601 luma weights (what OpenCV's and JPEG's grey conversion use), RGB order.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class RealRanges:
    """Severities of the real-photo degradations (0-255 scale for σ; linear light for shot/read)."""

    sigma: tuple[float, float] = (1.0, 50.0)          # Gaussian σ, correlated across channels
    p_sigma_log: float = 0.5     # share of σ drawn log-uniform (real cameras: mostly σ < 10)
    blur: tuple[float, float] = (0.6, 1.2)            # width (px) of the blur of blurred noise
    # per-channel noise gain (log-uniform, then renormalised): a camera's white balance
    # amplifies red and blue noise (CC15: R:G:B σ ≈ 1.4 : 1 : 1.3); (1, 1) = equal channels
    # (stages 3-7); 0.7-1.4 is the shipped mix since stage 8 (docs/training_history.md, "Stage 8")
    channel_gain: tuple[float, float] = (0.7, 1.4)
    speckle_var: tuple[float, float] = (0.002, 0.06)  # multiplicative gain variance
    shot: tuple[float, float] = (2e-4, 2e-2)          # Poisson gain a (log-uniform): var = a·x + b
    read: tuple[float, float] = (1e-7, 1e-4)          # read-noise variance b (log-uniform)
    jpeg_quality: tuple[int, int] = (10, 75)   # since stage 15 (stages 3-14: 10-95)
    # shares: what noise a real-photo patch gets (the rest: none, JPEG only)
    p_gaussian: float = 0.35
    p_speckle: float = 0.1
    p_camera: float = 0.35
    p_jpeg: float = 0.7          # JPEG after the noise (always when there is no noise); 0.6 to stage 14
    p_double_jpeg: float = 0.2   # of the JPEG'd patches, a second pass with a shifted grid
    # channel correlation of Gaussian / speckle / camera noise: independent, luma, random 3×3
    # (since stage 15; stages 3-14: 0.35, 0.4, 0.25)
    p_channels: tuple[float, float, float] = (0.3, 0.45, 0.25)
    # spatial correlation: white, Bayer mosaic + demosaic, half resolution + upsampling, blurred
    # (the shipped model's shares since stage 8; stages 3-7 had (0.4, 0.35, 0.25, 0) and
    # p_sigma_log 0: docs/training_history.md, "Stage 8")
    p_spatial: tuple[float, float, float, float] = (0.3, 0.3, 0.15, 0.25)


REAL_RANGES = RealRanges()


def override_ranges(items: list[str], base: RealRanges = REAL_RANGES) -> RealRanges:
    """``base`` with fields replaced from ``NAME=VALUE`` texts (tuples comma-separated), so a
    training run can try another mix from the command line; the result is what it records."""
    known = {f.name: getattr(base, f.name) for f in fields(base)}
    changes = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise ValueError(f"expected NAME=VALUE with NAME one of {', '.join(known)}, got {item!r}")
        old = known[name]
        try:
            if isinstance(old, tuple):
                new = tuple(type(o)(v) for o, v in zip(old, value.split(","), strict=True))
            else:
                new = type(old)(value)
        except ValueError as e:
            raise ValueError(f"{name}: expected {len(old) if isinstance(old, tuple) else 1} "
                             f"comma-separated number(s) like {old!r}, got {value!r} ({e})") from None
        changes[name] = new
    return replace(base, **changes)


@dataclass(frozen=True)
class TrainingMix:
    """Shares of a training batch: ``real`` get :func:`degrade_real_batch`, the rest the
    synthetic mixture; independently, ``grey`` of all patches are made grey first, and
    ``clean`` of all patches are left undamaged (input = target). ``jpeg_level`` is what the
    noise-level map says of JPEG-only patches: False, zero (the shipped model's map); True, the
    robust std of the JPEG error (:func:`degrade_real_batch`)."""

    real: float = 0.3   # the shipped model's shares since stage 5 (stages 3-4: 0.5 / 0.2, 0.35 / 0.15)
    # 0.2 since stage 15 (0.15 to stage 14); stage 15's weights are then averaged with stage 14's
    # (scripts/average_weights.py), a step after training, so the mix here is that stage's run
    grey: float = 0.2
    # With every patch damaged (stages 1-13) the model learns that every photo is: it changed an
    # undamaged photo too (`cleanvision eval --conditions undamaged`: 39.36 dB on CBSD68), and
    # that change, not the strokes, capped its scribble score. 0.1 since stage 14 (42.54 dB).
    clean: float = 0.1
    synthetic: NoiseRanges = TRAIN_RANGES
    ranges: RealRanges = REAL_RANGES
    jpeg_level: bool = False


#: What the shipped model trains on (model_card.md, "Training").
TRAIN_MIX = TrainingMix()
#: The synthetic mixture alone: the model before real-photo damage was added.
SYNTHETIC_ONLY = TrainingMix(real=0.0, grey=0.0, clean=0.0)


# --------------------------------------------------------------------------- colour helpers

def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve undone (IEC 61966-2-1), values in [0, 1]."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve, values in [0, 1]."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """B×3×H×W colour to B×3×H×W grey (three equal channels of Rec. 601 luma)."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand_as(x).contiguous()


# --------------------------------------------------------------------------- noise fields

def _pick(probs: tuple[float, ...], b: int, dev, g) -> torch.Tensor:
    """A category per image, drawn with the given probabilities."""
    p = torch.tensor(probs, device=dev, dtype=torch.float32)
    return torch.multinomial(p / p.sum(), b, replacement=True, generator=g)


def _log_uniform(lo: float, hi: float, b: int, dev, g) -> torch.Tensor:
    u = torch.rand(b, device=dev, generator=g)
    return torch.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * u)


def channel_mixing(kind: torch.Tensor, generator=None) -> torch.Tensor:
    """B×3×3 matrices that turn 3 independent unit noises into correlated ones, unit variance.

    ``kind`` per image: 0 independent (identity), 1 luminance (the same draw in every
    channel), 2 a random mixing matrix (rows normalised, so each channel keeps variance 1).
    """
    b, dev = kind.shape[0], kind.device
    eye = torch.eye(3, device=dev).expand(b, 3, 3)
    luma = torch.zeros(b, 3, 3, device=dev)
    luma[:, :, 0] = 1.0
    rnd = torch.randn(b, 3, 3, device=dev, generator=generator)
    rnd = rnd / rnd.norm(dim=2, keepdim=True).clamp(min=1e-6)
    k = kind.view(b, 1, 1)
    return torch.where(k == 0, eye, torch.where(k == 1, luma, rnd))


def _demosaic_noise(z: torch.Tensor) -> torch.Tensor:
    """Noise drawn on an RGGB Bayer mosaic, then bilinearly demosaiced (spatially correlated)."""
    b, c, h, w = z.shape
    mask = torch.zeros(1, 3, h, w, device=z.device, dtype=z.dtype)
    mask[:, 0, 0::2, 0::2] = 1
    mask[:, 1, 0::2, 1::2] = 1
    mask[:, 1, 1::2, 0::2] = 1
    mask[:, 2, 1::2, 1::2] = 1
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], device=z.device, dtype=z.dtype) / 4
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], device=z.device, dtype=z.dtype) / 4
    kernel = torch.stack([k_rb, k_g, k_rb]).unsqueeze(1)  # 3×1×3×3, one per channel
    return F.conv2d(F.pad(z * mask, (1, 1, 1, 1), mode="reflect"), kernel, groups=3)


def _halfres_noise(z: torch.Tensor) -> torch.Tensor:
    """Noise drawn at half resolution and upsampled bilinearly (as resizing a noisy photo does)."""
    h, w = z.shape[-2:]
    small = z[..., : (h + 1) // 2, : (w + 1) // 2]
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def _blurred_noise(z: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Noise blurred by a Gaussian of ``width`` px per image (B-vector): the broad, smooth grain
    a camera's demosaicing, denoising and sharpening leave (real photos: neighbour correlation
    0.6–0.8, wider than the Bayer route's)."""
    b, c, h, w = z.shape
    r = 3
    t = torch.arange(-r, r + 1, device=z.device, dtype=z.dtype)
    k = torch.exp(-0.5 * (t.view(1, -1) / width.view(-1, 1).to(z.dtype)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B·C)×(2r+1), one per channel
    x = F.pad(z.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(b * c, 1, 1, -1), groups=b * c)
    x = F.conv2d(x, k.view(b * c, 1, -1, 1), groups=b * c)
    return x.view(b, c, h, w)


def correlated_noise(shape: tuple[int, int, int, int], channels: torch.Tensor, spatial: torch.Tensor,
                     device=None, generator=None, blur: tuple[float, float] = REAL_RANGES.blur,
                     channel_gain: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Zero-mean noise of unit variance per image, correlated as asked per image.

    ``channels``: 0 independent, 1 luminance, 2 random 3×3 (see :func:`channel_mixing`);
    ``spatial``: 0 white, 1 Bayer-demosaiced, 2 half-resolution upsampled, 3 blurred by a
    Gaussian whose width is drawn uniformly from ``blur``. Unless ``channel_gain`` is (1, 1)
    (the default here; training passes ``RealRanges.channel_gain``), each channel of the
    non-luminance kinds is scaled by a gain drawn log-uniformly from it (white balance);
    luminance noise keeps equal channels, as a grey photo's must.
    """
    b, g = shape[0], generator
    z = torch.randn(shape, device=device, generator=g)
    width = blur[0] + (blur[1] - blur[0]) * torch.rand(b, device=device, generator=g)
    for kind in spatial.unique().tolist():  # shape only the images drawn for each kind
        sel = (spatial == kind).nonzero().flatten()
        if kind == 1:
            z[sel] = _demosaic_noise(z[sel])
        elif kind == 2:
            z[sel] = _halfres_noise(z[sel])
        elif kind == 3:
            z[sel] = _blurred_noise(z[sel], width[sel])
    z = torch.einsum("bij,bjhw->bihw", channel_mixing(channels, generator=g), z)
    if tuple(channel_gain) != (1.0, 1.0):
        gain = _log_uniform(*channel_gain, b * 3, device, g).view(b, 3)
        z = z * torch.where((channels == 1).view(b, 1), torch.ones_like(gain), gain).view(b, 3, 1, 1)
    return z / z.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)


def srgb_slope(lin: torch.Tensor) -> torch.Tensor:
    """d sRGB / d linear at linear intensity ``lin``: how much a small linear-light change moves the pixel."""
    lin = lin.clamp(0.0, 1.0)
    return torch.where(lin <= 0.0031308, torch.full_like(lin, 12.92),
                       (1.055 / 2.4) * lin.clamp(min=0.0031308) ** (1 / 2.4 - 1))


def camera_noise(clean: torch.Tensor, shot: torch.Tensor, read: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Poisson–Gaussian sensor noise: variance ``shot·x + read`` in linear light at intensity x
    (per image B-vectors ``shot``, ``read``; ``noise`` a unit-variance field), carried to the
    sRGB pixel through the curve's local slope.

    Carried to first order rather than by adding in linear light and re-encoding: the sRGB curve
    is concave, so the exact route darkens the noisy image on average, and a model trained on it
    learns to brighten photos, which real pairs (noisy shot vs the mean of shots, both sRGB)
    punish. The noise keeps the camera's shape (weak in the shadows in linear light, stronger
    in sRGB there; growing with exposure) and stays zero-mean on the pixel scale.
    """
    return clean + camera_std(clean, shot, read) * noise


def camera_std(clean: torch.Tensor, shot: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """Per-pixel standard deviation (sRGB pixel scale, [0, 1]) of :func:`camera_noise` for a
    unit-variance field: the linear-light std ``sqrt(shot·x + read)`` times the curve's slope."""
    b = clean.shape[0]
    lin = srgb_to_linear(clean)
    return srgb_slope(lin) * (shot.view(b, 1, 1, 1) * lin + read.view(b, 1, 1, 1)).sqrt()


# --------------------------------------------------------------------------- JPEG

def jpeg_batch(x: torch.Tensor, quality: torch.Tensor, shift: torch.Tensor | None = None,
               grey: torch.Tensor | None = None) -> torch.Tensor:
    """JPEG each image of a B×3×H×W batch in [0, 1] whose ``quality`` > 0 (others pass through).

    ``shift`` (B×2 ints in 0-7) rolls an image before encoding and back after, so a second
    pass meets a different 8×8 grid; ``grey`` images are encoded as one-channel JPEG.
    """
    todo = (quality > 0).nonzero().flatten().tolist()
    if not todo:
        return x
    u8 = torch.round(x.detach().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = x.clone()
    for i in todo:
        img = u8[i]
        dy, dx = (int(v) for v in shift[i]) if shift is not None else (0, 0)
        if dy or dx:
            img = np.roll(img, (dy, dx), axis=(0, 1))
        if grey is not None and bool(grey[i]):
            y = jpeg_uint8(np.ascontiguousarray(img[..., 0]), int(quality[i]))[..., None].repeat(3, axis=2)
        else:
            y = jpeg_uint8(img, int(quality[i]))
        if dy or dx:
            y = np.roll(y, (-dy, -dx), axis=(0, 1))
        out[i] = torch.from_numpy(np.ascontiguousarray(y)).permute(2, 0, 1).to(x.device, x.dtype) / 255.0
    return out


# --------------------------------------------------------------------------- degradations

def degrade_real_batch(clean: torch.Tensor, grey: torch.Tensor | None = None, generator=None,
                       ranges: RealRanges = REAL_RANGES, return_sigma: bool = False, jpeg_level: bool = False):
    """Real-photo damage for a B×3×H×W batch of float images in [0, 1].

    Per image one of: Gaussian (σ; a share ``p_sigma_log`` of it log-uniform), speckle, camera
    Poisson–Gaussian in linear light, or none; the noise correlated across channels and in
    space as drawn; then, with probability ``p_jpeg`` (always when there was no noise), JPEG at
    a random quality, sometimes twice. ``grey`` (B bools) forces channel-identical noise, as a
    grey photo has. Quantised to 8 bits.

    ``return_sigma``: also return the per-pixel standard deviation of the noise (B×3×H×W,
    [0, 1] units) before JPEG: σ, σ·x for speckle, the camera curve's for camera noise, each
    times the marginal std of its channel of the correlated field; zero for JPEG-only patches
    (the noise-level map's definition, :mod:`cleanvision.noise_level`). No extra random draws.
    ``jpeg_level``: JPEG-only patches get the robust std of their JPEG error instead of zero
    (:func:`robust_std`, one level per patch and colour), so that level 0 means "no dense
    damage at all" rather than "perhaps JPEG".
    """
    b, c, h, w = clean.shape
    if c != 3:
        raise ValueError(f"degrade_real_batch works on colour batches (B×3×H×W), got {tuple(clean.shape)}")
    dev, g, r = clean.device, generator, ranges

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=g)

    def col(v):
        return v.view(b, 1, 1, 1)

    kind = _pick((r.p_gaussian, r.p_speckle, r.p_camera,
                  max(0.0, 1 - r.p_gaussian - r.p_speckle - r.p_camera)), b, dev, g)
    chan = _pick(r.p_channels, b, dev, g)
    if grey is not None:
        chan = torch.where(grey.to(dev), torch.ones_like(chan), chan)
    spatial = _pick(r.p_spatial, b, dev, g)
    n = correlated_noise((b, 3, h, w), chan, spatial, dev, g, r.blur, r.channel_gain)

    sigma = torch.where(rand(b) < r.p_sigma_log, _log_uniform(*r.sigma, b, dev, g),
                        r.sigma[0] + (r.sigma[1] - r.sigma[0]) * rand(b)) / 255.0
    var = r.speckle_var[0] + (r.speckle_var[1] - r.speckle_var[0]) * rand(b)
    gauss = clean + n * col(sigma)
    speck = clean + clean * n * col(var.sqrt())
    shot, read = _log_uniform(*r.shot, b, dev, g), _log_uniform(*r.read, b, dev, g)
    camera = camera_noise(clean, shot, read, n)
    k = col(kind)
    x = torch.where(k == 0, gauss, torch.where(k == 1, speck, torch.where(k == 2, camera, clean)))
    if return_sigma:
        unit = n.std(dim=(2, 3), keepdim=True)  # each channel's marginal std of the field
        std = torch.where(k == 0, col(sigma).expand_as(clean), torch.where(
            k == 1, clean * col(var.sqrt()), torch.where(k == 2, camera_std(clean, shot, read),
                                                         torch.zeros_like(clean))))
        std = std * unit
    x = torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0

    lo, hi = r.jpeg_quality
    do_jpeg = (rand(b) < r.p_jpeg) | (kind == 3)
    q = torch.randint(lo, hi + 1, (b,), device=dev, generator=g) * do_jpeg
    x = jpeg_batch(x, q, grey=grey)
    twice = do_jpeg & (rand(b) < r.p_double_jpeg)
    q2 = torch.randint(lo, hi + 1, (b,), device=dev, generator=g) * twice
    shift = torch.randint(1, 8, (b, 2), device=dev, generator=g)
    x = jpeg_batch(x, q2, shift, grey=grey)
    if return_sigma and jpeg_level:
        std = torch.where(k == 3, robust_std(x - clean).expand_as(std), std)
    return (x, std) if return_sigma else x


def robust_std(d: torch.Tensor) -> torch.Tensor:
    """1.4826 · median |d| per image and colour (B×C×1×1): the std of Gaussian damage, read
    without letting a few large errors (an edge's ringing) dominate."""
    return 1.4826 * d.abs().flatten(2).median(dim=2).values[..., None, None]


def training_batch(clean: torch.Tensor, mix: TrainingMix = TRAIN_MIX, generator=None,
                   return_sigma: bool = False):
    """(clean target, degraded input) for a B×3×H×W batch in [0, 1], in the shares of ``mix``.

    Grey patches are made grey *before* damage and stay grey in the target; their synthetic
    damage is drawn on one channel and copied to all three, as a grey photo's would be.
    ``return_sigma`` adds a third tensor, the per-pixel std of each patch's dense noise
    (B×C×H×W, [0, 1] units; zero for undamaged patches), from which the noise-level map a
    noise-map model trains with is made (:func:`cleanvision.noise_level.training_map`). The
    first two are the same with or without it.
    """
    b, dev, g = clean.shape[0], clean.device, generator
    if clean.shape[1] == 1:  # a grey model: every patch is a grey photo
        out = training_batch(clean.expand(-1, 3, -1, -1), replace(mix, grey=1.0), g, return_sigma)
        return tuple(t[:, :1] for t in out)
    grey = torch.rand(b, device=dev, generator=g) < mix.grey
    real = torch.rand(b, device=dev, generator=g) < mix.real
    clean = torch.where(grey.view(b, 1, 1, 1), to_grey(clean), clean)
    noisy = torch.empty_like(clean)
    sigma = torch.zeros_like(clean)
    for is_real in (False, True):
        for is_grey in (False, True):
            sel = ((real == is_real) & (grey == is_grey)).nonzero().flatten()
            if sel.numel() == 0:
                continue
            part = clean[sel]
            if is_real:
                out = degrade_real_batch(part, grey[sel], g, mix.ranges, return_sigma=True,
                                         jpeg_level=mix.jpeg_level)
            elif is_grey:
                out = tuple(t.expand(-1, 3, -1, -1) for t in
                            degrade_batch(part[:, :1], g, mix.synthetic, return_sigma=True))
            else:
                out = degrade_batch(part, g, mix.synthetic, return_sigma=True)
            noisy[sel], sigma[sel] = out
    if mix.clean > 0:  # drawn last and only when asked, so earlier mixes replay bit for bit
        keep = torch.rand(b, device=dev, generator=g) < mix.clean
        noisy = torch.where(keep.view(b, 1, 1, 1), clean, noisy)
        sigma = torch.where(keep.view(b, 1, 1, 1), torch.zeros_like(sigma), sigma)
    return (clean, noisy, sigma) if return_sigma else (clean, noisy)
