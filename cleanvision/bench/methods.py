"""The methods a benchmark compares: CleanVision models and classical baselines.

Each method maps a noisy image to a restored uint8 image of the same shape. Classical filters
take 8-bit input, so they run on the frozen conditions, real photos and undamaged photos only;
models, the noisy input and BM3D also run the float paper protocol. The noisy input skips
undamaged photos, where it is the truth itself. BM3D needs the true σ, so it runs on the
Gaussian conditions only, and on the first few images because it is slow.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from ..image_io import swap_rb
from .options import ALL_METHODS, DEFAULT_BM3D_LIMIT, UNDAMAGED  # noqa: F401 - re-exported
from .sets import BenchError, sha256_file, to_uint8

FROZEN, PAPER, REAL = "frozen", "paper", "real"  # protocols; the fourth is UNDAMAGED (options.py)


@dataclass
class Method:
    """A restoration method. ``run(noisy, sigma)`` gets uint8 RGB or grey (frozen conditions and real
    photos) or float64 on the 0-1 scale (paper protocol) and returns uint8 of the same shape."""

    key: str
    label: str
    run: Callable[[np.ndarray, float | None], np.ndarray]
    protocols: tuple[str, ...] = (FROZEN, REAL, UNDAMAGED)  # where it runs
    gaussian_only: bool = False  # needs the true σ: Gaussian conditions only
    limit: int | None = None     # first N images only
    info: dict = field(default_factory=dict)

    @property
    def paper(self) -> bool:
        return PAPER in self.protocols


def _median(k: int):
    def run(x, sigma=None):
        return cv2.medianBlur(x, k)
    return run


def _gblur(x, sigma=None):
    return cv2.GaussianBlur(x, (5, 5), 1.2)


def _nlm(h: float):
    def run(x, sigma=None):
        if x.ndim == 2:
            return cv2.fastNlMeansDenoising(x, None, h, 7, 21)
        return np.ascontiguousarray(swap_rb(cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(swap_rb(x)),
                                                                             None, h, h, 7, 21)))
    return run


def noisy_input(x, sigma=None):
    return x if x.dtype == np.uint8 else to_uint8(x)


def _bm3d(x, sigma):
    import bm3d

    z = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x
    out = bm3d.bm3d_rgb(z, sigma / 255.0) if z.ndim == 3 else bm3d.bm3d(z, sigma / 255.0)
    return to_uint8(out)


def training_stages(info: dict) -> list[dict]:
    """Every stage of a ``training_info.json``, first to last: a run started ``--init_from``
    another nests that run's record under ``init_from``."""
    stages = []
    while isinstance(info, dict):
        stages.insert(0, info)
        info = info.get("init_from")
    return stages


def _training_summary(path: Path) -> dict:
    """Steps, wall time and hardware from a model folder's training_info.json (all stages)."""
    training = path / "training_info.json"
    if not training.is_file():
        return {}
    try:
        t = json.loads(training.read_text())
    except (ValueError, OSError):
        return {}
    out = {k: t[k] for k in ("steps", "wall_seconds", "finished", "hardware") if k in t}
    stages = training_stages(t)
    if len(stages) > 1:
        out.update(stages=len(stages), total_steps=sum(x.get("steps", 0) for x in stages),
                   total_wall_seconds=sum(x.get("wall_seconds", 0) for x in stages))
    if t.get("finished") is False:
        print(f"cleanvision eval: note: {training} says training is not finished (step {t.get('steps')})",
              file=sys.stderr)
    return out


def model_method(spec: str, engine: str, device: str | None, guided: bool = False) -> Method:
    """``shipped`` (the weights inside the package, whatever $CLEANVISION_MODEL says) or a folder / repo id.

    A noise-map model runs in auto mode (its own estimate); ``guided`` gives it the true σ
    instead, on the conditions that have one (Gaussian noise, the paper protocol)."""
    from ..inference import Denoiser, model_location

    path = model_location(spec)
    den = Denoiser.from_pretrained(path, engine=engine, device=device)
    name = "shipped" if spec == "shipped" else Path(spec.rstrip("/")).name or spec
    info = {"model": spec, "engine": den.engine, "device": str(den.device)}
    if (Path(path) / "config.json").is_file():
        info["config"] = json.loads((Path(path) / "config.json").read_text())
    weights = Path(path) / "model.safetensors"
    if weights.is_file():
        info["weights_sha256"] = sha256_file(weights)
    training = _training_summary(Path(path))
    if training:
        info["training"] = training

    def run(x, sigma=None):
        level = sigma if guided else None
        if x.dtype == np.uint8:
            return den(x, noise_level=level)
        return to_uint8(den(x.astype(np.float32), noise_level=level))

    label = "CleanVision (shipped)" if spec == "shipped" else f"CleanVision ({name})"
    if guided:
        return Method(f"model:{name}:guided", label[:-1] + ", true σ)", run, protocols=(FROZEN, PAPER),
                      gaussian_only=True, info={**info, "noise_level": "true σ"})
    if den.takes_noise_level:
        info["noise_level"] = "auto"
    return Method(f"model:{name}", label, run, protocols=(FROZEN, REAL, PAPER, UNDAMAGED), info=info)


def build_methods(names: Sequence[str], models: Sequence[str], engine: str, device: str | None,
                  bm3d_limit: int | None) -> list[Method]:
    unknown = [n for n in names if n not in ALL_METHODS]
    if unknown:
        raise BenchError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}")
    out: list[Method] = []
    for n in names:
        if n == "model":
            keys = set()
            for spec in models:
                m = model_method(spec, engine, device)
                if m.key in keys:
                    raise BenchError(f"two models are both called {m.key!r}")
                keys.add(m.key)
                out.append(m)
                if m.info.get("noise_level") == "auto":  # and told the true σ, where there is one
                    out.append(model_method(spec, engine, device, guided=True))
        elif n == "noisy":  # not on undamaged photos: the input is the truth there (PSNR ∞)
            out.append(Method("noisy", "noisy input", noisy_input, protocols=(FROZEN, REAL, PAPER)))
        elif n in ("median3", "median5"):
            k = int(n[-1])
            out.append(Method(n, f"median {k}×{k}", _median(k), info={"ksize": k}))
        elif n == "gblur":
            out.append(Method(n, "Gaussian blur 5×5, σ 1.2", _gblur, info={"ksize": 5, "sigma": 1.2}))
        elif n in ("nlm", "nlm5"):
            h = 10 if n == "nlm" else 5
            # h 10 suits the synthetic conditions; h 5 the weak noise of real photos, where it runs only
            out.append(Method(n, f"OpenCV NLM (h {h}, 7, 21)", _nlm(h), protocols=(FROZEN, REAL) if h == 10 else (REAL,),
                              info={"h": h, "hColor": h, "templateWindowSize": 7, "searchWindowSize": 21}))
        elif n == "bm3d":
            if importlib.util.find_spec("bm3d") is None:
                raise BenchError("BM3D needs the bm3d package (pip install 'cleanvision[bench]' or pip install "
                                 "bm3d), or leave 'bm3d' out of the methods")
            lim = bm3d_limit if bm3d_limit and bm3d_limit > 0 else None
            label = "BM3D, true σ" + (f" (first {lim} image{'s' if lim > 1 else ''})" if lim else "")
            out.append(Method(n, label, _bm3d, protocols=(FROZEN, PAPER), gaussian_only=True, limit=lim,
                              info={"profile": "np", "sigma": "true", "limit": lim}))
    return out
