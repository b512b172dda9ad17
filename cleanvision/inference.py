"""Restoring whole images: tiling, dtypes, grey/colour/alpha, engines.

``Denoiser`` wraps a :class:`~cleanvision.model.DnCNN` for numpy images of any size:

    from cleanvision import Denoiser
    den = Denoiser.from_pretrained()          # the model shipped in this package (offline)
    clean = den(noisy)                        # same shape and dtype as ``noisy``

Large images are cut into tiles that overlap by the network's receptive radius, so each
output pixel sees exactly the context it would see in one pass: the tiled result equals the
one-pass result while memory stays bounded by the tile size.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import onednn
from .errors import WeightsError
from .hardware import cpu_flags, cpu_native_bf16, ort_available
from .image_io import dtype_white, join_alpha, split_alpha
from .int8 import Int8Graph, auto_int8
from .int8 import open_graph as open_int8
from .model import DnCNN, phase_offset, round_keeping_phase_means
from .noise_level import (BRIGHTNESS_MIN_LEVEL, BRIGHTNESS_SCALE, as_map, brightness, coarse_brightness,
                          grows_with_brightness, interp, level_by_brightness)
from .options import (AUTO_RULE, ENGINES, GPU_TILE_SIZE, NOISE_LEVEL_RANGE, ONE_PASS_PIXELS,  # noqa: F401
                      STRENGTH_RANGE, TILE_SIZE_AMX, TILE_SIZE_CPU, TILE_SIZE_ONNXRUNTIME)

#: The weights that ship inside the package; ``Denoiser.from_pretrained()`` loads these.
SHIPPED_MODEL = Path(__file__).parent / "weights" / "default"
#: Environment variable that picks another default model (a folder or a Hub repo id).
MODEL_ENV = "CLEANVISION_MODEL"

Progress = Callable[[int, int], None]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 convolutions run natively (Ampere+ GPUs, CPUs with AMX or AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_native_bf16()


def model_location(name_or_path: str | os.PathLike | None = None) -> str | os.PathLike:
    """Where a model name points: ``None`` means $CLEANVISION_MODEL or else the weights inside the
    package; ``"shipped"`` always the weights inside the package (as ``cleanvision eval`` names
    them); anything else is a folder or Hub repo id as given."""
    name = name_or_path or os.environ.get(MODEL_ENV) or SHIPPED_MODEL
    return SHIPPED_MODEL if str(name) == "shipped" else name


def load_model(name_or_path: str | os.PathLike | None = None, revision: str | None = None,
               local_files_only: bool = False) -> DnCNN:
    """A DnCNN from a ``save_pretrained`` folder or a Hub repo id (see :func:`model_location`)."""
    name = model_location(name_or_path)
    path = Path(name)
    looks_local = path.is_dir() or str(name).startswith((".", "/", "~")) or path.suffix
    if looks_local and not path.is_dir():
        raise WeightsError(f"{name}: no such model folder")
    if path.is_dir() and not (path / "config.json").is_file():
        raise WeightsError(f"{name}: no config.json (expected a save_pretrained folder)")
    try:
        return DnCNN.from_pretrained(str(name), revision=revision, local_files_only=local_files_only)
    except WeightsError:
        raise
    except TypeError as e:  # config.json keys the model does not take
        raise WeightsError(f"{name}: config.json does not describe a DnCNN ({e})") from None
    except Exception as e:  # noqa: BLE001 - hub errors: offline, missing repo, auth
        raise WeightsError(f"{name}: cannot load model ({type(e).__name__}: {e})") from None


def default_tile_size(device: torch.device, engine: str = "fp32", flags: frozenset[str] | None = None) -> int:
    """The tile side an engine was measured fastest with on this kind of hardware
    (:data:`~cleanvision.options.TILE_RULE`)."""
    if device.type == "cuda" or engine in ("onnxruntime", "int8"):
        return GPU_TILE_SIZE if device.type == "cuda" else TILE_SIZE_ONNXRUNTIME
    return TILE_SIZE_AMX if "amx_bf16" in (cpu_flags() if flags is None else flags) else TILE_SIZE_CPU


def _fused_relu(model: DnCNN) -> DnCNN:
    """A copy of a folded ``model`` for the bf16 CPU engine: each convolution and its ReLU in one
    oneDNN call (:mod:`cleanvision.onednn`; same output). On bf16 tensors ATen's in-place ReLU
    took a quarter of the network's time (Intel Xeon, AMX): where the fused op is missing, the
    ReLUs at least run out of place (5-9 % faster there, while fp32 is 4 % slower out of place)."""
    model = copy.deepcopy(model)  # the caller's model stays exportable (ONNX) and trainable
    if not onednn.available():
        for m in model.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
        return model
    model.body = onednn.fuse_relu(model.body)
    if model.estimator is not None:
        model.estimator = onednn.fuse_relu(model.estimator, first_dtype=torch.float32)
    return model


def _median(v: torch.Tensor) -> torch.Tensor:
    """The median over the last dim, the lower middle value for an even count as
    ``torch.median`` takes it, through numpy's selection: a tenth of ``torch.median``'s time on
    the 65,536 readings of a 512×512 photo (0.07 ms against 0.8, Intel Xeon)."""
    k = (v.shape[-1] - 1) // 2
    return torch.from_numpy(np.partition(v.numpy(), k, axis=-1)[..., k])


class Denoiser:
    """Blind restoration of numpy images with a DnCNN.

    Args:
        model: the network (BatchNorm is folded away unless ``engine="reference"``).
        device: ``cuda`` when available, else ``cpu``.
        tile_size: largest tile side in pixels; bounds memory for any image size. Default
            :func:`default_tile_size` of the engine and device.
        engine: ``reference`` (plain fp32 eager PyTorch, the yardstick), ``fp32`` (folded
            BatchNorm, channels-last), ``bf16`` (fp32 plus bfloat16 autocast), ``onnxruntime``
            (the folded network exported to ONNX in memory and run by ONNX Runtime on the CPU,
            as many threads as torch uses; needs ``pip install 'cleanvision[onnx]'``), ``int8``
            (the model folder's quantisation-aware int8 graph, ``model_int8.onnx``, in ONNX
            Runtime on the CPU: :mod:`cleanvision.int8`; raises
            :class:`~cleanvision.errors.Int8Unavailable` when it is missing, stale or cannot
            run) or ``auto`` (:meth:`_resolve`; ``int8_note`` says why it did not take int8).
        session: with ``engine="onnxruntime"``, a prebuilt session to run instead of the one
            exported from ``model``: anything with ONNX Runtime's ``run(None, {"image": x})``
            that maps N×C×H×W floats to the restored image (e.g. an int8 form of the graph, or
            another runtime behind that call), so it gets the same tiling and image handling.
    """

    def __init__(self, model: DnCNN, device: str | torch.device | None = None, tile_size: int | None = None,
                 engine: str = "auto", session=None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if session is not None and engine != "onnxruntime":
            raise ValueError(f'a prebuilt session runs with engine="onnxruntime", got engine={engine!r}')
        self.device = torch.device(device) if device else default_device()
        if engine in ("onnxruntime", "int8"):
            if device and self.device.type != "cpu":
                raise ValueError(f'engine="{engine}" runs on the CPU, got device {device!r}')
            self.device = torch.device("cpu")
        #: The int8 graph run (engine int8), and why ``auto`` did or did not take one.
        self.int8_graph: Int8Graph | None = None
        self.int8_note: str | None = None
        if engine == "int8":
            self.int8_graph = open_int8(model)
        elif engine == "auto" and self.device.type == "cpu":
            self.int8_graph, self.int8_note = auto_int8(model)
        self.engine = "int8" if self.int8_graph else self._resolve(engine)
        model = model.eval()
        if self.engine != "reference":
            model = model.fuse().to(memory_format=torch.channels_last)
        if self.engine == "bf16" and self.device.type == "cpu":
            model = _fused_relu(model)
        self.model = model.to(self.device)
        self._session = self.int8_graph.session if self.int8_graph else session
        if self.engine == "onnxruntime" and session is None:  # built once; MissingDependencyError without onnxruntime
            from .export import ort_session

            self._session = ort_session(self.model)
        s = model.scale
        #: Photos of at most this many pixels run in one pass (with the default tile only: a tile
        #: size given is kept, as tests of the tiling need).
        self.one_pass_pixels = 0 if tile_size else ONE_PASS_PIXELS
        tile_size = tile_size or default_tile_size(self.device, self.engine)
        self.tile_size = max(s, tile_size - tile_size % s)
        self.margin = -(-model.receptive_radius // s) * s  # rounded up to the unshuffle grid
        self.estimator_margin = -(-model.estimator_radius // s) * s

    @property
    def takes_noise_level(self) -> bool:
        """Whether the model takes a noise level (a noise-map model) or is blind."""
        return bool(self.model.noise_map)

    def _resolve(self, engine: str) -> str:
        """``auto``: the fastest engine measured on this kind of hardware, by rules, not a probe.

        First int8, where :data:`~cleanvision.options.INT8_AUTO_RULE` holds (the model folder's
        int8 graph is fresh and records a passed quality gate, and the CPU is a kind where int8
        won the speed table: :func:`cleanvision.int8.auto_int8`, decided before this). Else
        bf16 where the hardware computes it natively (GPUs with bf16, CPUs with AMX or
        AVX512-BF16: 1.9-2.0× the fp32 engines on an AMD EPYC with AVX512-BF16, more with AMX;
        docs/bench/speed_amd_avx512.md, speed_intel_amx.md); on other CPUs ONNX Runtime where
        installed (fp32: 1.04-1.06× torch's fp32 engine and 1.13-1.42× the reference on an
        AVX2-only AMD EPYC, docs/bench/speed_amd_avx2.md; 1.2× torch's fp32 on an AMD EPYC with
        AVX-512),
        else torch fp32. Each costs at most 0.05 dB against ``reference`` on CBSD68 ``mixed``
        and real PolyU photos (the speed JSON's quality rows; tests/test_speed.py), but bf16 on
        PolyU with the noise-map weights: 0.075 dB (docs/speed.md, "Intel Xeon with AMX").
        """
        if engine != "auto":
            return engine
        if native_bf16(self.device):
            return "bf16"
        if self.device.type == "cpu" and ort_available():
            return "onnxruntime"
        return "fp32"

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, *, revision: str | None = None,
                        local_files_only: bool = False, **kwargs) -> "Denoiser":
        """Load a model folder or Hub repo id; with no argument, the model shipped in the package."""
        return cls(load_model(name_or_path, revision, local_files_only), **kwargs)

    # ------------------------------------------------------------------ tensors

    @torch.inference_mode()
    def _run(self, x: torch.Tensor, noise_map: torch.Tensor | None = None) -> torch.Tensor:
        """The network's noise for one tile (H, W multiples of the unshuffle factor)."""
        if self._session is not None:
            from .export import INPUT, NOISE_MAP

            feeds = {INPUT: x.contiguous().numpy()}
            if noise_map is not None:
                feeds[NOISE_MAP] = noise_map.contiguous().numpy()
            return x - torch.from_numpy(self._session.run(None, feeds)[0])
        x = x.to(self.device)
        if self.engine != "reference":
            x = x.contiguous(memory_format=torch.channels_last)
        if noise_map is not None:
            noise_map = noise_map.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.engine == "bf16"):
            noise = self.model.network_noise(x, noise_map)
        return noise.float().contiguous()

    @torch.inference_mode()
    def _estimate(self, x: torch.Tensor, _unused=None) -> torch.Tensor:
        # torch's estimator whatever the engine, in fp32 but on the bf16 engine, whose estimate
        # is fp32's to a few hundredths of a level (DnCNN.estimate_noise): the engines restore
        # with the same level, and the bf16 engine does not spend its gain on an fp32 estimate
        return self.model.estimate_noise(x.to(self.device).float(), bf16=self.engine == "bf16").float()

    def _tiled(self, fn, x: torch.Tensor, extra: torch.Tensor | None, margin: int, channels: int,
               progress: Progress | None = None) -> torch.Tensor:
        """``fn(tile, extra tile)`` over overlapping tiles of ``x`` (padded to the unshuffle
        factor), each kept only where its ``margin`` of context was all there: the result equals
        one pass over the whole image while memory stays bounded by the tile size."""
        t, m = self.tile_size, margin
        ph, pw = x.shape[-2:]
        if self.one_pass(ph, pw, m):
            out = fn(x, extra).cpu()
            if progress:
                progress(1, 1)
            return out
        out = torch.empty((x.shape[0], channels, ph, pw), dtype=torch.float32)
        origins = [(y, z) for y in range(0, ph, t) for z in range(0, pw, t)]
        for i, (y, z) in enumerate(origins):
            y0, z0 = max(0, y - m), max(0, z - m)
            y1, z1 = min(ph, y + t + m), min(pw, z + t + m)
            res = fn(x[..., y0:y1, z0:z1], None if extra is None else extra[..., y0:y1, z0:z1]).cpu()
            out[..., y:y + t, z:z + t] = res[..., y - y0:y - y0 + t, z - z0:z - z0 + t]
            if progress:
                progress(i + 1, len(origins))
        return out

    def one_pass(self, h: int, w: int, margin: int | None = None) -> bool:
        """Whether an H×W input runs in one pass rather than in tiles (``margin``: the context
        each tile carries, by default the network's)."""
        m = self.margin if margin is None else margin
        return (h <= self.tile_size + 2 * m and w <= self.tile_size + 2 * m) or h * w <= self.one_pass_pixels

    def estimate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The estimator's noise-level map of N×C×H×W floats in [0, 1]: N×M×H×W, σ/255."""
        if not self.takes_noise_level:
            raise ValueError("this model is blind: it has no noise-level estimator")
        h, w = x.shape[-2:]
        est = self._tiled(self._estimate, self.model.pad_to_scale(x), None, self.estimator_margin,
                          self.model.noise_map)
        return est[..., :h, :w]

    #: Side of the crops auto mode reads the level from, the share of a large photo they cover,
    #: and the fewest it reads.
    LEVEL_CROP, LEVEL_SHARE, LEVEL_MIN_CROPS = 128, 1 / 8, 4

    def level_crops(self, h: int, w: int) -> list[tuple[int, int, int, int]]:
        """Where auto mode reads the noise level: the whole photo when it is small, else crops on
        a regular grid covering about ``LEVEL_SHARE`` of it (at least ``LEVEL_MIN_CROPS``): the
        median over tens of thousands of pixels is as steady as over all of them, at a fraction of
        the estimator's cost over the whole photo. Fewer crops are not steady: two on held-out
        photos of 0.15-1 MP moved the level by up to 4.5 from the whole photo's (four: 2.5)."""
        c = self.LEVEL_CROP
        if h * w <= 4 * c * c or h < 2 * c or w < 2 * c:
            return [(0, h, 0, w)]
        n = int(min(64, max(self.LEVEL_MIN_CROPS, round(h * w * self.LEVEL_SHARE / (c * c)))))
        rows = max(1, round((n * h / w) ** 0.5))
        cols = max(1, -(-n // rows))
        ys = [round(i * (h - c) / max(1, rows - 1)) for i in range(rows)] if rows > 1 else [(h - c) // 2]
        xs = [round(j * (w - c) / max(1, cols - 1)) for j in range(cols)] if cols > 1 else [(w - c) // 2]
        return [(y, y + c, z, z + c) for y in ys for z in xs]

    def auto_map(self, x: torch.Tensor) -> torch.Tensor:
        """The map ``noise_level=None`` restores with: one level per image (and colour, for a
        per-colour map), the median of the estimator's map over the photo (:meth:`level_crops`),
        so a patch of texture or a few impulses do not move it, through the model's level curve
        (:meth:`~cleanvision.model.DnCNN.auto_level`), within ``NOISE_LEVEL_RANGE``: an estimate is
        always a level a person could set (a photo of pure texture can read above any trained σ).
        A noisy photo whose readings rise with its brightness gets a level by brightness instead
        (:meth:`_by_brightness`)."""
        h, w = x.shape[-2:]
        m, n, by_shape, parts, read = self.estimator_margin, x.shape[0], {}, [], []
        for y0, y1, z0, z1 in self.level_crops(h, w):  # each crop with its context: exact values
            a, b, c, d = max(0, y0 - m), min(h, y1 + m), max(0, z0 - m), min(w, z1 + m)
            by_shape.setdefault((b - a, d - c), []).append((a, c, y0, y1, z0, z1))
        batches = [((ch, cw), crops[k:k + 16]) for (ch, cw), crops in by_shape.items()
                   for k in range(0, len(crops), 16)]  # crops of one size, 16 at a time, in one batch
        for (ch, cw), crops in batches:
            batch = torch.cat([x[..., a:a + ch, c:c + cw] for a, c, *_ in crops])
            est = self.estimate_tensor(batch)
            read.append((batch, est, crops))
            for i, (a, c, y0, y1, z0, z1) in enumerate(crops):
                parts.append(est[i * n:(i + 1) * n, :, y0 - a:y1 - a, z0 - c:z1 - c].flatten(2))
        lo, hi = NOISE_LEVEL_RANGE
        level = self.model.auto_level(_median(torch.cat(parts, dim=2))).clamp(lo / 255, hi / 255)
        noisy = level.mean(dim=1) * 255.0 >= BRIGHTNESS_MIN_LEVEL
        level = level[..., None, None].expand(-1, -1, h, w)
        if not noisy.any():
            return level
        return self._by_brightness(x, read, level, noisy)

    def _by_brightness(self, x: torch.Tensor, read: list, level: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        """:meth:`auto_map` where a noisy photo's noise grows with its brightness, as speckle's
        does: the level of each pixel read off its brightness through the photo's own level by
        brightness (:func:`~cleanvision.noise_level.level_by_brightness`, from the crops' readings
        at the centres of their 4×4 blocks against the blocks' brightness), then the level curve.
        One level for the whole photo left a dark photo's bright areas noisy and
        smoothed its dark ones (up to 1 dB below the blind model on speckle, held-out photos)."""
        n, s, at, readings = x.shape[0], BRIGHTNESS_SCALE, [], []
        for batch, est, crops in read:
            coarse = coarse_brightness(batch)  # the reading at each block's centre against the block's brightness
            for i, (a, c, y0, y1, z0, z1) in enumerate(crops):
                (u0, u1), (v0, v1) = (-(-(y0 - a) // s), (y1 - a) // s), (-(-(z0 - c) // s), (z1 - c) // s)
                imgs = slice(i * n, (i + 1) * n)
                at.append(coarse[imgs, :, u0:u1, v0:v1].flatten(2))
                readings.append(est[imgs, :, s * u0 + s // 2:s * u1:s, s * v0 + s // 2:s * v1:s].flatten(2))
        at, readings = torch.cat(at, dim=2), torch.cat(readings, dim=2)
        b = None
        lo, hi = NOISE_LEVEL_RANGE
        maps = []
        for i in range(n):
            fn = level_by_brightness(at[i, 0], readings[i]) if noisy[i] else None
            if fn is None or not grows_with_brightness(fn[1]):
                maps.append(level[i])
                continue
            centres, levels = fn
            b = brightness(x) if b is None else b
            m = torch.stack([interp(b[i, 0], centres, lv) for lv in levels])
            maps.append(self.model.auto_level(m).clamp(lo / 255, hi / 255))
        # one level per image stays an expanded view: the network takes it without reading a full map
        return level if b is None else torch.stack(maps)

    def restore_tensor(self, x: torch.Tensor, progress: Progress | None = None,
                       noise_map: torch.Tensor | None = None) -> torch.Tensor:
        """Restore N×C×H×W floats in [0, 1] (C = the model's channels), tile by tile.

        ``noise_map`` (noise-map models): N×M×H×W, σ/255; ``None`` = :meth:`auto_map`.
        """
        h, w = x.shape[-2:]
        if self.takes_noise_level and noise_map is None:
            noise_map = self.auto_map(x)
        elif noise_map is not None and not self.takes_noise_level:
            raise ValueError("this model is blind: it takes no noise level")
        pad = self.model.pad_to_scale
        x = pad(x)
        noise = self._tiled(self._run, x, None if noise_map is None else pad(noise_map), self.margin,
                            x.shape[1], progress)
        out = torch.sub(x, noise, out=torch.empty(noise.shape))  # contiguous whatever the inputs' layout
        if self.model.phase_correction:  # over the whole image, once: tiles agree with one pass
            s = self.model.scale  # x - (noise - offset), the offset added in place: no third copy
            n, c, ph, pw = out.shape
            out.view(n, c, ph // s, s, pw // s, s).add_(phase_offset(noise, s))
        return out[..., :h, :w]

    # ------------------------------------------------------------------ numpy images

    def _image_tensor(self, img: np.ndarray) -> tuple[torch.Tensor, dict]:
        """An image as 1×C×H×W floats in [0, 1] and what is needed to turn a result back into
        the same shape, dtype and alpha; refuses what is not an image, with the reason."""
        img = np.asarray(img)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected an H×W, H×W×1, H×W×2, H×W×3 or H×W×4 image, got shape {img.shape}")
        if img.shape[0] < 1 or img.shape[1] < 1:
            raise ValueError(f"empty image of shape {img.shape}")
        scale = dtype_white(img.dtype)  # ImageDtypeError (a ValueError) for other dtypes
        if scale == 1.0 and not np.isfinite(img).all():
            raise ValueError("image contains NaN or infinite values")
        colour, alpha = split_alpha(img)
        if colour.ndim == 3 and colour.shape[2] == 1:
            colour = colour[..., 0]
        grey = colour.ndim == 2
        x = torch.from_numpy(np.ascontiguousarray(colour, dtype=np.float32)) / scale
        if scale == 1.0:
            x = x.clamp(0.0, 1.0)
        x = x[None, None] if grey else x.permute(2, 0, 1)[None]
        return x, {"img": img, "scale": scale, "alpha": alpha, "grey": grey}

    def _for_model(self, x: torch.Tensor) -> torch.Tensor:
        """An image tensor as the model takes it: a grey image as three equal channels for a
        colour model (as it saw grey photos in training), a colour one channel by channel for a
        grey model."""
        c = self.model.channels
        if x.shape[1] == c:
            return x
        return x.expand(-1, 3, -1, -1) if c == 3 else x.permute(1, 0, 2, 3)

    def _from_model(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        c = self.model.channels
        if x.shape[1] == c:
            return y
        return y.mean(dim=1, keepdim=True) if c == 3 else y.permute(1, 0, 2, 3)

    def _level_map(self, noise_level, x: torch.Tensor) -> torch.Tensor | None:
        """``noise_level`` (σ on the 0-255 scale: None, a number or an H×W map) as the model's map."""
        if noise_level is None:
            return None
        if not self.takes_noise_level:
            raise ValueError("this model is blind: it takes no noise_level (leave it None)")
        lo, hi = NOISE_LEVEL_RANGE
        level = np.asarray(noise_level, dtype=np.float64)
        least, most = level.min(), level.max()
        if not np.isfinite(level).all() or least < lo or most > hi:
            raise ValueError(f"noise_level must be in [{lo:g}, {hi:g}] (σ on the 0-255 scale), got "
                             f"{noise_level if level.ndim == 0 else f'a map from {least:g} to {most:g}'}")
        if level.ndim not in (0, 2):
            raise ValueError(f"noise_level must be a number or an H×W map, got shape {level.shape}")
        # a map of one level (auto mode's map of most photos, passed back) is that number: the
        # network takes one level per image without reading a full map
        one = level.ndim == 2 and level.shape == tuple(x.shape[-2:]) and least == most
        return as_map(least if one else level, tuple(x.shape), self.model.noise_map)

    def estimate_noise_level(self, img: np.ndarray) -> float:
        """How noisy ``img`` reads: the median of the map ``noise_level=None`` restores it with
        (:meth:`auto_noise_map`), σ on the 0-255 scale. One level for most photos; where the noise
        grows with brightness (speckle) the map varies around it."""
        return self.level_of(self.auto_noise_map(img))

    def auto_noise_map(self, img: np.ndarray) -> np.ndarray:
        """The map ``noise_level=None`` restores ``img`` with: H×W float32, σ on the 0-255 scale
        (the mean over colours, for a model with one level per colour); pass it back as
        ``noise_level`` to restore as auto mode does without estimating again."""
        x = self._for_model(self._image_tensor(img)[0])
        lo, hi = NOISE_LEVEL_RANGE  # again after the float32 map: a level this returns can be passed back
        return (self.auto_map(x).mean(dim=(0, 1)) * 255.0).clamp(lo, hi).numpy()

    @staticmethod
    def level_of(level_map: np.ndarray) -> float:
        """One number for a noise-level map (σ on the 0-255 scale): its median, the lower middle
        value for an even count; a constant map's own level."""
        return float(_median(torch.from_numpy(np.ascontiguousarray(level_map, np.float32)).flatten()))

    def estimate_noise_map(self, img: np.ndarray) -> np.ndarray:
        """The estimator's map of ``img`` before it is reduced to one level: H×W float32, σ on the
        0-255 scale (the mean over colours, for a model with one level per colour)."""
        x = self._for_model(self._image_tensor(img)[0])
        return (self.estimate_tensor(x).mean(dim=(0, 1)) * 255.0).numpy()

    def __call__(self, img: np.ndarray, progress: Progress | None = None, strength: float = 1.0,
                 noise_level=None) -> np.ndarray:
        """Restore an ``H×W``, ``H×W×1``, ``H×W×3`` or ``H×W×4`` image (alpha untouched).

        uint8 and uint16 come back rounded in the same dtype; floats are taken as [0, 1], and
        values outside it (e.g. unclipped synthetic noise) are clipped first: the model learned
        from saved photos, which never leave that range, and does far worse on values it never saw.

        ``strength`` in [0, 1] removes that fraction of the predicted damage: 1 is the full
        restoration, 0 returns the input unchanged (an exact copy), values between blend the
        two, for when a full restoration smooths skin or texture more than wanted.

        ``noise_level`` (noise-map models only): how noisy the photo is, σ on the 0-255 scale
        whatever the dtype — ``None`` to estimate it (:meth:`estimate_noise_level`), a number
        for the whole photo, or an H×W map. Lower keeps more texture, higher removes more.
        """
        lo, hi = STRENGTH_RANGE
        if not lo <= float(strength) <= hi:
            raise ValueError(f"strength must be in [{lo:g}, {hi:g}], got {strength}")
        x, info = self._image_tensor(img)
        level = self._level_map(noise_level, self._for_model(x))
        if float(strength) == 0.0:
            return info["img"].copy()
        y = self._from_model(self.restore_tensor(self._for_model(x), progress, level), x)
        if strength < 1.0:  # blend in the model's [0, 1] space, before rounding to the dtype
            y = x.clamp(0.0, 1.0) + float(strength) * (y - x.clamp(0.0, 1.0))
        return self._to_image(y, info)

    def _to_image(self, y: torch.Tensor, info: dict) -> np.ndarray:
        img, scale = info["img"], info["scale"]
        y = y.clamp(0.0, 1.0)[0]  # C×H×W
        if scale > 1:  # integers: rounded so that the phase correction survives (round_keeping_phase_means)
            planes = round_keeping_phase_means(y * scale, self.model.scale if self.model.phase_correction else 1)
        else:
            planes = y.numpy()
        # H×W×C in memory too (OpenCV refuses some strided arrays), in the one copy that casts
        out = (planes[0] if info["grey"] else planes.transpose(1, 2, 0)).astype(img.dtype, order="C")
        if img.ndim == 3 and img.shape[2] == 1:
            out = out[..., None]
        return join_alpha(out, info["alpha"])
