"""Noise synthesis: the four degradations CleanVision removes, alone or mixed.

Definitions follow the frozen benchmark (``../shared/bench/SPEC.md``) so that what the
model trains on is what it is judged on. All severities are on the 0-255 scale whatever
the image dtype: ``sigma=25`` means 25/255 of full range for uint8, uint16 and float.

Two implementations:

* numpy functions on one ``H×W[×C]`` image of any dtype (uint8, uint16, float in [0, 1]),
  used by the CLI, the app and validation; reproducible from an ``int`` seed or a
  ``np.random.Generator``;
* :func:`degrade_batch`, a batched torch version that runs on the training device,
  because numpy per image in data-loader workers cannot keep a GPU busy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from .image_io import dtype_white

RngLike = int | np.random.Generator | None

#: Canonical order in which a mixture applies the degradations (SPEC.md).
ORDER = ("speckle", "gaussian", "scribble", "salt_pepper")


@dataclass(frozen=True)
class NoiseRanges:
    """Severity ranges of the random mixture (defaults: SPEC.md's ``mixed`` condition)."""

    sigma: tuple[float, float] = (5.0, 50.0)
    salt_pepper: tuple[float, float] = (0.01, 0.15)
    speckle_var: tuple[float, float] = (0.01, 0.06)
    lines: tuple[int, int] = (3, 6)
    thickness: tuple[int, int] = (1, 5)
    n_types: tuple[int, int] = (1, 3)


#: The benchmark's ``mixed`` condition.
BENCH_RANGES = NoiseRanges()
#: What the shipped model trains on: the benchmark ranges, plus all four types at once
#: (the ``all4`` condition) and a little more headroom on each severity.
TRAIN_RANGES = NoiseRanges(sigma=(0.0, 55.0), salt_pepper=(0.0, 0.2), speckle_var=(0.0, 0.07),
                           lines=(1, 6), thickness=(1, 5), n_types=(1, 4))


def bench_rng(seed: int, condition: str, name: str) -> np.random.Generator:
    """The frozen benchmark's generator for (seed, condition, file name), as ``make_bench.py`` makes it.

    ``random_mixture(img, bench_rng(0, "mixed", name))`` reproduces the benchmark's ``mixed``
    image of that file bit for bit.
    """
    import hashlib

    digest = hashlib.sha256(f"{seed}/{condition}/{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def as_rng(rng: RngLike) -> np.random.Generator:
    """Accept a seed, a Generator, or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _on_255_scale(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` on a float64 copy in [0, 255] and convert the result back to the input dtype."""

    def wrapper(img: np.ndarray, *args: Any, **kwargs: Any):
        img = np.asarray(img)
        if img.ndim not in (2, 3):
            raise ValueError(f"expected an H×W or H×W×C image, got shape {img.shape}")
        s = dtype_white(img.dtype)
        out = fn(img.astype(np.float64) * (255.0 / s), *args, **kwargs)
        extra = None
        if isinstance(out, tuple):
            out, extra = out
        out = np.clip(out, 0.0, 255.0) * (s / 255.0)
        out = np.rint(out).astype(img.dtype) if s > 1 else out.astype(img.dtype)
        return out if extra is None else (out, extra)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def _gaussian(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, sigma, x.shape) if sigma > 0 else x


def _speckle(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    return x + x * rng.normal(0.0, var ** 0.5, x.shape) if var > 0 else x


def _salt_pepper(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    hit = rng.random(x.shape[:2]) < amount
    salt = rng.random(x.shape[:2]) < 0.5
    out[hit & salt] = 255.0
    out[hit & ~salt] = 0.0
    return out


def _scribbles(x: np.ndarray, n_lines: int, thickness: int | tuple[int, int],
               rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Black straight strokes: random start and angle, length 10-60 % of the diagonal."""
    lo, hi = (thickness, thickness) if isinstance(thickness, int) else thickness
    h, w = x.shape[:2]
    out = np.ascontiguousarray(np.clip(x, 0.0, 255.0))
    diag = float(np.hypot(h, w))
    colour = (0.0,) * (1 if out.ndim == 2 else out.shape[2])
    drawn = []
    for _ in range(n_lines):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.1, 0.6) * diag
        x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        t = int(rng.integers(lo, hi + 1))
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1)))
        cv2.line(out, p0, p1, colour, thickness=t, lineType=cv2.LINE_8)
        drawn.append([p0, p1, t])
    return out, drawn


@_on_255_scale
def add_gaussian_noise(img: np.ndarray, sigma: float, rng: RngLike = None) -> np.ndarray:
    """Additive white Gaussian noise with standard deviation ``sigma`` (0-255 scale)."""
    return _gaussian(img, float(sigma), as_rng(rng))


@_on_255_scale
def add_salt_pepper_noise(img: np.ndarray, amount: float, rng: RngLike = None) -> np.ndarray:
    """Set a fraction ``amount`` of pixels (all channels together) to black or white, half each."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"salt-and-pepper amount must be in [0, 1], got {amount}")
    return _salt_pepper(img, float(amount), as_rng(rng))


@_on_255_scale
def add_speckle_noise(img: np.ndarray, var: float, rng: RngLike = None) -> np.ndarray:
    """Multiplicative noise ``x + x·n``, ``n ~ N(0, var)`` on the 0-1 gain."""
    if var < 0:
        raise ValueError(f"speckle variance must be >= 0, got {var}")
    return _speckle(img, float(var), as_rng(rng))


@_on_255_scale
def add_scribbles(img: np.ndarray, n_lines: int, thickness: int | tuple[int, int] = (1, 5),
                  rng: RngLike = None) -> np.ndarray:
    """Draw ``n_lines`` black strokes of ``thickness`` px (an int or an inclusive range)."""
    return _scribbles(img, int(n_lines), thickness, as_rng(rng))[0]


def jpeg_uint8(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip an RGB (H×W×3) or grey (H×W) uint8 image through OpenCV's baseline JPEG
    (4:2:0 chroma for colour), as ``make_bench.py`` does for its JPEG conditions."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1-100, got {quality}")
    bgr = img[..., ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode JPEG")
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out[..., ::-1] if out.ndim == 3 else out


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """JPEG of a 0-255 float image, as a photo saved after the damage (rounded to 8 bits first)."""
    u8 = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    squeeze = u8.ndim == 3 and u8.shape[2] == 1
    out = jpeg_uint8(u8[..., 0] if squeeze else u8, quality).astype(np.float64)
    return out[..., None] if squeeze else out


def _apply(x: np.ndarray, params: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Apply the degradations named in ``params`` in the canonical ORDER (0-255 float), JPEG last."""
    drawn: dict = {}
    if params.get("speckle_var"):
        x = _speckle(x, params["speckle_var"], rng)
    if params.get("sigma"):
        x = _gaussian(x, params["sigma"], rng)
    if params.get("scribbles"):
        x, drawn["strokes"] = _scribbles(x, params["scribbles"], params.get("thickness", (1, 5)), rng)
    if params.get("salt_pepper"):
        x = _salt_pepper(x, params["salt_pepper"], rng)
    if params.get("jpeg_quality"):
        x = _jpeg(x, int(params["jpeg_quality"]))
    return x, {**params, **drawn}


@_on_255_scale
def apply_noise(img: np.ndarray, params: dict, rng: RngLike = None) -> tuple[np.ndarray, dict]:
    """Apply a given set of degradations, e.g. ``{"sigma": 25, "salt_pepper": 0.05}``.

    Keys: ``sigma`` (Gaussian std), ``salt_pepper`` (fraction), ``speckle_var``,
    ``scribbles`` (number of strokes), ``thickness`` (int or range) and ``jpeg_quality``
    (1-100: the result saved as JPEG, last, 8-bit). Zero or missing means off. Returns the noisy image and the parameters, including the strokes drawn.
    """
    unknown = set(params) - {"sigma", "salt_pepper", "speckle_var", "scribbles", "thickness", "jpeg_quality"}
    if unknown:
        raise ValueError(f"unknown noise parameter(s): {', '.join(sorted(unknown))}")
    return _apply(img, dict(params), as_rng(rng))


@_on_255_scale
def random_mixture(img: np.ndarray, rng: RngLike = None,
                   ranges: NoiseRanges = BENCH_RANGES) -> tuple[np.ndarray, dict]:
    """The noise application strategy: 1-3 of the four types, random severities.

    Draws in the same order as the frozen benchmark's ``make_bench.py``, so with the same
    generator it reproduces the ``mixed`` condition exactly. Returns ``(noisy, params)``;
    ``params`` records what was drawn (strokes included) so the result can be reproduced.
    """
    rng = as_rng(rng)
    k = int(rng.integers(ranges.n_types[0], ranges.n_types[1] + 1))
    chosen = set(rng.choice(len(ORDER), size=k, replace=False).tolist())
    x, params = img, {}
    for i, kind in enumerate(ORDER):
        if i not in chosen:
            continue
        if kind == "speckle":
            params["speckle_var"] = float(rng.uniform(*ranges.speckle_var))
            x = _speckle(x, params["speckle_var"], rng)
        elif kind == "gaussian":
            params["sigma"] = float(rng.uniform(*ranges.sigma))
            x = _gaussian(x, params["sigma"], rng)
        elif kind == "scribble":
            params["scribbles"] = int(rng.integers(ranges.lines[0], ranges.lines[1] + 1))
            x, params["strokes"] = _scribbles(x, params["scribbles"], ranges.thickness, rng)
        else:
            params["salt_pepper"] = float(rng.uniform(*ranges.salt_pepper))
            x = _salt_pepper(x, params["salt_pepper"], rng)
    return x, params


def parse_noise_spec(spec: str) -> dict | None:
    """Parse the CLI's ``--noise`` value: ``mixed`` (returns None) or ``gaussian=25,salt_pepper=0.05``.

    Accepted names: gaussian (σ), salt_pepper (fraction), speckle (variance),
    scribble (number of strokes), thickness (px), jpeg (quality 1-100, applied last).
    """
    spec = spec.strip()
    if spec == "mixed":
        return None
    names = {"gaussian": ("sigma", float), "salt_pepper": ("salt_pepper", float),
             "speckle": ("speckle_var", float), "scribble": ("scribbles", int),
             "thickness": ("thickness", int), "jpeg": ("jpeg_quality", int)}
    params: dict = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in names:
            raise ValueError(f"bad noise spec {part!r}: use 'mixed' or name=value with name in "
                             f"{', '.join(names)}")
        key, cast = names[name.strip()]
        try:
            params[key] = cast(value)
        except ValueError:
            raise ValueError(f"bad value in noise spec {part!r}") from None
    if not params:
        raise ValueError("empty noise spec")
    return params


# --------------------------------------------------------------------------- torch, batched


def degrade_batch(clean, generator=None, ranges: NoiseRanges = TRAIN_RANGES, return_sigma: bool = False):
    """Degrade a batch ``B×C×H×W`` of float images in [0, 1] on its own device.

    Each image gets its own random mixture (``ranges.n_types`` types, random severities),
    applied in the canonical order, clipped and quantised to 8 bits like a saved photo.
    Strokes are rasterised as thick segments (distance to the segment ≤ thickness/2) with
    lengths relative to the crop's diagonal × 2, since training crops are small.

    ``return_sigma``: also return the standard deviation of the *dense* noise at each pixel
    (B×C×H×W, [0, 1] units): ``sqrt(σ² + var·x²)`` for the Gaussian and speckle parts, zero
    where an image got only impulses or strokes — the noise-level map's definition
    (:mod:`cleanvision.noise_level`). Computed from the draws, so the noisy batch is the same
    with or without it.
    """
    import torch

    b, c, h, w = clean.shape
    dev, g = clean.device, generator

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=g)

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * rand(*shape)

    # Which types each image gets: the k smallest of 4 random scores.
    k = torch.randint(ranges.n_types[0], ranges.n_types[1] + 1, (b, 1), device=dev, generator=g)
    ranks = rand(b, 4).argsort(dim=1).argsort(dim=1)
    on = (ranks < k).float()  # b×4 in ORDER: speckle, gaussian, scribble, salt_pepper
    x = clean
    col = lambda v: v.view(b, 1, 1, 1)  # noqa: E731

    var = uniform(*ranges.speckle_var, b) * on[:, 0]
    x = x + x * torch.randn(x.shape, device=dev, generator=g) * col(var.sqrt())
    sigma = uniform(*ranges.sigma, b) / 255.0 * on[:, 1]
    x = x + torch.randn(x.shape, device=dev, generator=g) * col(sigma)
    x = x.clamp(0.0, 1.0)

    nmax = ranges.lines[1]
    if nmax > 0:
        x = _strokes_batch(x, on[:, 2], ranges, g)

    amount = uniform(*ranges.salt_pepper, b) * on[:, 3]
    hit = rand(b, 1, h, w) < col(amount)
    salt = (rand(b, 1, h, w) < 0.5).to(x.dtype)
    x = torch.where(hit, salt, x)
    noisy = torch.round(x * 255.0) / 255.0
    if not return_sigma:
        return noisy
    return noisy, (col(sigma) ** 2 + col(var) * clean ** 2).sqrt()


def _strokes_batch(x, on, ranges: NoiseRanges, g):
    """Black strokes on the images where ``on`` is 1: up to lines[1] segments, the first n used."""
    import torch

    b, _, h, w = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=g)

    nmax = ranges.lines[1]
    n = torch.randint(ranges.lines[0], nmax + 1, (b, 1), device=dev, generator=g)
    used = (torch.arange(nmax, device=dev).view(1, nmax) < n).float() * on.view(b, 1)
    diag = float(np.hypot(h, w))
    x0, y0 = rand(b, nmax) * w, rand(b, nmax) * h
    angle = rand(b, nmax) * np.pi
    length = (0.2 + rand(b, nmax)) * diag
    thick = torch.randint(ranges.thickness[0], ranges.thickness[1] + 1, (b, nmax),
                          device=dev, generator=g).float()
    dx, dy = torch.cos(angle) * length, torch.sin(angle) * length
    ys = torch.arange(h, device=dev, dtype=x.dtype).view(1, 1, h, 1)
    xs = torch.arange(w, device=dev, dtype=x.dtype).view(1, 1, 1, w)
    e = lambda v: v.view(b, nmax, 1, 1)  # noqa: E731
    t = (((xs - e(x0)) * e(dx) + (ys - e(y0)) * e(dy)) / e(length * length)).clamp(0.0, 1.0)
    dist2 = (xs - e(x0) - t * e(dx)) ** 2 + (ys - e(y0) - t * e(dy)) ** 2
    inked = ((dist2 <= (e(thick) / 2) ** 2).float() * e(used)).amax(dim=1, keepdim=True)
    return x * (1.0 - inked)
