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

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import WeightsError
from .hardware import cpu_native_bf16, ort_available
from .image_io import dtype_white, join_alpha, split_alpha
from .model import DnCNN
from .options import AUTO_RULE, CPU_TILE_SIZE, ENGINES, GPU_TILE_SIZE  # noqa: F401 - re-exported

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


def default_tile_size(device: torch.device) -> int:
    return GPU_TILE_SIZE if device.type == "cuda" else CPU_TILE_SIZE


class Denoiser:
    """Blind restoration of numpy images with a DnCNN.

    Args:
        model: the network (BatchNorm is folded away unless ``engine="reference"``).
        device: ``cuda`` when available, else ``cpu``.
        tile_size: largest tile side in pixels; bounds memory for any image size. Default
            :func:`default_tile_size` of the device.
        engine: ``reference`` (plain fp32 eager PyTorch, the yardstick), ``fp32`` (folded
            BatchNorm, channels-last), ``bf16`` (fp32 plus bfloat16 autocast), ``onnxruntime``
            (the folded network exported to ONNX in memory and run by ONNX Runtime on the CPU,
            as many threads as torch uses; needs ``pip install 'cleanvision[onnx]'``) or ``auto``.
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
        if engine == "onnxruntime":
            if device and self.device.type != "cpu":
                raise ValueError(f'engine="onnxruntime" runs on the CPU, got device {device!r}')
            self.device = torch.device("cpu")
        self.engine = self._resolve(engine)
        model = model.eval()
        if self.engine != "reference":
            model = model.fuse().to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self._session = session
        if self.engine == "onnxruntime" and session is None:  # built once; MissingDependencyError without onnxruntime
            from .export import ort_session

            self._session = ort_session(self.model)
        s = model.scale
        tile_size = tile_size or default_tile_size(self.device)
        self.tile_size = max(s, tile_size - tile_size % s)
        self.margin = -(-model.receptive_radius // s) * s  # rounded up to the unshuffle grid

    def _resolve(self, engine: str) -> str:
        """``auto``: the fastest engine measured on this kind of hardware, by rules, not a probe.

        bf16 where the hardware computes it natively (GPUs with bf16, CPUs with AMX or
        AVX512-BF16: 1.9-2.0× the fp32 engines on an AMD EPYC with AVX512-BF16, more with AMX;
        docs/bench/speed_amd_avx512.md, speed_intel_amx.md); on other CPUs ONNX Runtime where
        installed (fp32: 1.04-1.06× torch's fp32 engine and 1.13-1.42× the reference on an
        AVX2-only AMD EPYC, docs/bench/speed_amd_avx2.md; 1.2× torch's fp32 on an AMD EPYC with
        AVX-512, issue 13),
        else torch fp32. Each costs at most 0.05 dB against ``reference`` on CBSD68 ``mixed``
        and real PolyU photos (the speed JSON's quality rows; tests/test_speed.py).
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
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is not None:
            from .export import INPUT

            return torch.from_numpy(self._session.run(None, {INPUT: x.contiguous().numpy()})[0])
        x = x.to(self.device)
        if self.engine != "reference":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.engine == "bf16"):
            noise = self.model.predict_noise(x)
        return (x - noise.float()).contiguous()

    def restore_tensor(self, x: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Restore N×C×H×W floats in [0, 1] (C = the model's channels), tile by tile."""
        h, w = x.shape[-2:]
        t, m = self.tile_size, self.margin
        x = self.model.pad_to_scale(x)
        ph, pw = x.shape[-2:]
        if ph <= t + 2 * m and pw <= t + 2 * m:
            out = self._run(x).cpu()
            if progress:
                progress(1, 1)
            return out[..., :h, :w]
        out = torch.empty(x.shape, dtype=torch.float32)
        origins = [(y, z) for y in range(0, ph, t) for z in range(0, pw, t)]
        for i, (y, z) in enumerate(origins):
            y0, z0 = max(0, y - m), max(0, z - m)
            y1, z1 = min(ph, y + t + m), min(pw, z + t + m)
            res = self._run(x[..., y0:y1, z0:z1]).cpu()
            out[..., y:y + t, z:z + t] = res[..., y - y0:y - y0 + t, z - z0:z - z0 + t]
            if progress:
                progress(i + 1, len(origins))
        return out[..., :h, :w]

    # ------------------------------------------------------------------ numpy images

    def __call__(self, img: np.ndarray, progress: Progress | None = None, strength: float = 1.0) -> np.ndarray:
        """Restore an ``H×W``, ``H×W×1``, ``H×W×3`` or ``H×W×4`` image (alpha untouched).

        uint8 and uint16 come back rounded in the same dtype; floats are taken as [0, 1], and
        values outside it (e.g. unclipped synthetic noise) are clipped first: the model learned
        from saved photos, which never leave that range, and does far worse on values it never saw.

        ``strength`` in [0, 1] removes that fraction of the predicted damage: 1 is the full
        restoration, 0 returns the input unchanged (an exact copy), values between blend the
        two, for when a full restoration smooths skin or texture more than wanted.
        """
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        img = np.asarray(img)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected an H×W, H×W×1, H×W×2, H×W×3 or H×W×4 image, got shape {img.shape}")
        if img.shape[0] < 1 or img.shape[1] < 1:
            raise ValueError(f"empty image of shape {img.shape}")
        scale = dtype_white(img.dtype)  # ImageDtypeError (a ValueError) for other dtypes
        if scale == 1.0 and not np.isfinite(img).all():
            raise ValueError("image contains NaN or infinite values")
        if float(strength) == 0.0:
            return img.copy()
        colour, alpha = split_alpha(img)
        if colour.ndim == 3 and colour.shape[2] == 1:
            colour = colour[..., 0]
        grey = colour.ndim == 2
        x = torch.from_numpy(np.ascontiguousarray(colour, dtype=np.float32)) / scale
        if scale == 1.0:
            x = x.clamp(0.0, 1.0)
        x = x[None, None] if grey else x.permute(2, 0, 1)[None]
        c = self.model.channels
        if x.shape[1] == c:
            y = self.restore_tensor(x, progress)
        elif c == 3:  # grey image, colour model: restore as neutral colour, back to grey
            y = self.restore_tensor(x.expand(-1, 3, -1, -1), progress).mean(dim=1, keepdim=True)
        else:  # colour image, grey model: each channel as a grey image
            y = self.restore_tensor(x.permute(1, 0, 2, 3), progress).permute(1, 0, 2, 3)
        if strength < 1.0:  # blend in the model's [0, 1] space, before rounding to the dtype
            y = x.clamp(0.0, 1.0) + float(strength) * (y - x.clamp(0.0, 1.0))
        y = y.clamp(0.0, 1.0)[0]
        out = (y[0] if grey else y.permute(1, 2, 0)).numpy()
        if scale > 1:
            out = np.rint(out * scale).astype(img.dtype)
        else:
            out = out.astype(img.dtype)
        if img.ndim == 3 and img.shape[2] == 1:
            out = out[..., None]
        return join_alpha(out, alpha)
