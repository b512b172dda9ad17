"""The benchmark behind every published CleanVision number: PSNR / SSIM tables, baselines, figure.

    python -m cleanvision.evaluate --clean ../shared/data/CBSD68 --clean ../shared/data/Kodak24
    cleanvision eval --clean ../shared/data/CBSD68 --methods noisy,median3,nlm --limit 20

For each clean set it evaluates, on the same images and noise:

* the **frozen benchmark** of ``../shared/bench`` (``SPEC.md``): the noisy PNGs that
  ``make_bench.py`` writes for the conditions ``gauss25 gauss50 sp10 speckle scribble all4
  mixed``. The noisy folder (default ``.bench/<set>``) is built by running ``make_bench.py``
  when it does not exist, and every noisy image is checked against the sha256 in its manifest;
* the **paper protocol** of the DnCNN / FFDNet / DRUNet test scripts: float Gaussian noise,
  ``noisy = clean/255 + N(0, (σ/255)²)`` (RGB order, not clipped, not rounded), with
  ``np.random.seed(0)`` before each image, σ ∈ {15, 25, 50}; the restored image is clipped and
  rounded to uint8 before PSNR. Kodak24 uses 500×500 centre crops here (FFDNet's protocol,
  which its published Kodak24 numbers follow); other sets use whole images.

Methods: one or more models (``--model shipped`` = the weights inside the package, or any
``save_pretrained`` folder / Hub repo id), the noisy input itself, median 3×3 and 5×5, Gaussian
blur 5×5 σ = 1.2, OpenCV non-local means (``fastNlMeansDenoisingColored``, h = hColor = 10,
template 7, search 21) and BM3D with the true σ (``bm3d`` package; Gaussian conditions only,
on the first ``--bm3d-limit`` images because it is slow). Median, blur and NLM take 8-bit
input, so they run on the frozen conditions only; models, the noisy input and BM3D also run
the paper protocol. Published numbers are added as rows "quoted from paper".

Outputs in ``--out`` (default ``docs/bench/<set>``): ``results.json`` (per-image PSNR and
SSIM, means, seconds per megapixel, provenance), ``results.md`` (the table that
``scripts/update_tables.py`` puts into README.md and model_card.md) and ``figure.png``
(crops of clean / noisy / each method). Same inputs, same numbers: nothing is random except
through fixed seeds.

Metrics are those of ``SPEC.md``: PSNR over all channels (``cleanvision.metrics.psnr_uint8``)
and SSIM with a Gaussian window σ = 1.5 per channel, averaged, as
``skimage.metrics.structural_similarity`` computes it (used when scikit-image is installed:
same values as ``cleanvision.metrics.ssim_uint8`` to ~1e-15, ten times faster on a CPU).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .image_io import read_image
from .metrics import psnr_uint8, ssim_uint8

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The frozen benchmark generator (beside the checkout, in ../shared/bench).
DEFAULT_MAKE_BENCH = REPO_ROOT.parent / "shared" / "bench" / "make_bench.py"
FROZEN_CONDITIONS = ("gauss25", "gauss50", "sp10", "speckle", "scribble", "all4", "mixed")
PAPER_SIGMAS = (15, 25, 50)
ALL_METHODS = ("model", "noisy", "median3", "median5", "gblur", "nlm", "bm3d")
DEFAULT_BM3D_LIMIT = 3
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
JSON_NAME, MD_NAME, FIGURE_NAME = "results.json", "results.md", "figure.png"
SCHEMA = 1

#: Paper-protocol centre crop per set (FFDNet's Kodak24 protocol); 0 = whole image.
AUTO_PAPER_CROP = {"Kodak24": 500}

#: Published numbers (PSNR, dB, σ = 15 / 25 / 50, paper protocol), shown as their own rows.
QUOTED = {
    "CBSD68": [
        {"method": "CDnCNN-B", "source": "Zhang et al., IEEE TIP 2017 (DnCNN)",
         "psnr": {"paper15": 33.89, "paper25": 31.23, "paper50": 27.92}},
        {"method": "FFDNet", "source": "Zhang et al., IEEE TIP 2018 (FFDNet)",
         "psnr": {"paper15": 33.87, "paper25": 31.21, "paper50": 27.96}},
    ],
    "Kodak24": [
        {"method": "FFDNet", "source": "Zhang et al., IEEE TIP 2018 (FFDNet), 500×500 centre crops",
         "psnr": {"paper15": 34.63, "paper25": 32.13, "paper50": 28.98}},
    ],
}


# --------------------------------------------------------------------------- helpers

def to_uint8(x: np.ndarray) -> np.ndarray:
    """A float image on the 0-1 scale, clipped and rounded to uint8 (as a saved photo)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def ssim_value(clean: np.ndarray, restored: np.ndarray) -> float:
    """SSIM as SPEC.md defines it (skimage's reference when installed, else cleanvision.metrics)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:  # scikit-image is a test/bench dependency; the library's SSIM is equal, slower
        return ssim_uint8(clean, restored)
    return float(structural_similarity(clean, restored, channel_axis=-1 if clean.ndim == 3 else None,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=255))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SystemExit(f"cleanvision eval: {folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise SystemExit(f"cleanvision eval: {folder}: no images")
    return files


def read_clean(path: Path) -> np.ndarray:
    img = read_image(path)
    if img.dtype != np.uint8:
        raise SystemExit(f"cleanvision eval: {path}: the benchmark is on 8-bit images, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] in (2, 4):  # make_bench drops alpha the same way
        img = img[..., :-1]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.ascontiguousarray(img)


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        return img
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y:y + ch, x:x + cw])


def paper_noisy(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The paper protocol: ``np.random.seed(0)``, then clean/255 + N(0, (σ/255)²), float64, unclipped."""
    np.random.seed(0)
    return clean.astype(np.float64) / 255.0 + np.random.normal(0.0, sigma / 255.0, clean.shape)


def _bgr(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[..., ::-1]) if img.ndim == 3 else img


# --------------------------------------------------------------------------- methods

@dataclass
class Method:
    """A restoration method. ``run(noisy, sigma)`` gets uint8 RGB (frozen) or float64 on the
    0-1 scale (paper protocol) and returns uint8 of the same shape."""

    key: str
    label: str
    run: Callable[[np.ndarray, float | None], np.ndarray]
    paper: bool = False          # also runs the float paper protocol
    gaussian_only: bool = False  # needs the true σ: Gaussian conditions only
    limit: int | None = None     # first N images only
    info: dict = field(default_factory=dict)


def _median(k: int):
    def run(x, sigma=None):
        return cv2.medianBlur(x, k)
    return run


def _gblur(x, sigma=None):
    return cv2.GaussianBlur(x, (5, 5), 1.2)


def _nlm(x, sigma=None):
    if x.ndim == 2:
        return cv2.fastNlMeansDenoising(x, None, 10, 7, 21)
    return _bgr(cv2.fastNlMeansDenoisingColored(_bgr(x), None, 10, 10, 7, 21))


def _noisy(x, sigma=None):
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


def model_method(spec: str, engine: str, device: str | None) -> Method:
    """``shipped`` (the weights inside the package, whatever $CLEANVISION_MODEL says) or a folder / repo id."""
    from .inference import SHIPPED_MODEL, Denoiser

    path = SHIPPED_MODEL if spec == "shipped" else spec
    den = Denoiser.from_pretrained(path, engine=engine, device=device)
    name = "shipped" if spec == "shipped" else Path(spec.rstrip("/")).name or spec
    info = {"model": spec, "engine": den.engine, "device": str(den.device)}
    if (Path(path) / "config.json").is_file():
        info["config"] = json.loads((Path(path) / "config.json").read_text())
    weights = Path(path) / "model.safetensors"
    if weights.is_file():
        info["weights_sha256"] = sha256_file(weights)
    training = Path(path) / "training_info.json"
    if training.is_file():
        try:
            t = json.loads(training.read_text())
            info["training"] = {k: t[k] for k in ("steps", "wall_seconds", "finished", "hardware") if k in t}
            stages = training_stages(t)
            if len(stages) > 1:
                info["training"].update(stages=len(stages), total_steps=sum(x.get("steps", 0) for x in stages),
                                        total_wall_seconds=sum(x.get("wall_seconds", 0) for x in stages))
            if t.get("finished") is False:
                print(f"cleanvision eval: note: {training} says training is not finished "
                      f"(step {t.get('steps')})", file=sys.stderr)
        except (ValueError, OSError):
            pass

    def run(x, sigma=None):
        if x.dtype == np.uint8:
            return den(x)
        return to_uint8(den(x.astype(np.float32)))

    label = "CleanVision (shipped)" if spec == "shipped" else f"CleanVision ({name})"
    return Method(f"model:{name}", label, run, paper=True, info=info)


def build_methods(names: Sequence[str], models: Sequence[str], engine: str, device: str | None,
                  bm3d_limit: int | None) -> list[Method]:
    unknown = [n for n in names if n not in ALL_METHODS]
    if unknown:
        raise SystemExit(f"cleanvision eval: unknown method(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(ALL_METHODS)}")
    out: list[Method] = []
    for n in names:
        if n == "model":
            keys = set()
            for spec in models:
                m = model_method(spec, engine, device)
                if m.key in keys:
                    raise SystemExit(f"cleanvision eval: two models are both called {m.key!r}")
                keys.add(m.key)
                out.append(m)
        elif n == "noisy":
            out.append(Method("noisy", "noisy input", _noisy, paper=True))
        elif n in ("median3", "median5"):
            k = int(n[-1])
            out.append(Method(n, f"median {k}×{k}", _median(k), info={"ksize": k}))
        elif n == "gblur":
            out.append(Method(n, "Gaussian blur 5×5, σ 1.2", _gblur, info={"ksize": 5, "sigma": 1.2}))
        elif n == "nlm":
            out.append(Method(n, "OpenCV NLM (h 10, 7, 21)", _nlm,
                              info={"h": 10, "hColor": 10, "templateWindowSize": 7, "searchWindowSize": 21}))
        elif n == "bm3d":
            import importlib.util

            if importlib.util.find_spec("bm3d") is None:
                raise SystemExit("cleanvision eval: BM3D needs the bm3d package (pip install 'cleanvision[bench]'"
                                 " or pip install bm3d), or leave bm3d out of --methods")
            lim = bm3d_limit if bm3d_limit and bm3d_limit > 0 else None
            label = "BM3D, true σ" + (f" (first {lim} image{'s' if lim > 1 else ''})" if lim else "")
            out.append(Method(n, label, _bm3d, paper=True, gaussian_only=True, limit=lim,
                              info={"profile": "np", "sigma": "true", "limit": lim}))
    return out


# --------------------------------------------------------------------------- frozen benchmark

def ensure_bench(bench: Path, clean: Path, make_bench: Path, seed: int, conditions: Sequence[str]) -> dict:
    """The manifest of the frozen benchmark in ``bench``, built with make_bench.py if missing."""
    manifest_path = bench / "manifest.json"
    if not manifest_path.is_file():
        if not make_bench.is_file():
            raise SystemExit(f"cleanvision eval: {bench} has no manifest.json and the generator {make_bench} "
                             "is missing (pass --make-bench)")
        print(f"building the frozen benchmark: {make_bench} --clean {clean} --out {bench} --seed {seed}",
              file=sys.stderr)
        subprocess.run([sys.executable, str(make_bench), "--clean", str(clean), "--out", str(bench),
                        "--seed", str(seed)], check=True)
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("seed") != seed:
        raise SystemExit(f"cleanvision eval: {bench} was built with seed {manifest.get('seed')}, not {seed}")
    missing = [c for c in conditions if c not in manifest.get("conditions", {})]
    if missing:
        raise SystemExit(f"cleanvision eval: {bench} lacks condition(s) {', '.join(missing)}; delete the "
                         f"folder to rebuild it, or run {make_bench} --clean {clean} --out {bench}")
    return manifest


def read_noisy(bench: Path, manifest: dict, condition: str, clean_name: str, shape: tuple) -> tuple[np.ndarray, dict]:
    entry = manifest["conditions"][condition].get(clean_name)
    if entry is None:
        raise SystemExit(f"cleanvision eval: {bench}/manifest.json has no {condition} image for {clean_name}; "
                         "the benchmark was built from another folder: delete it to rebuild")
    noisy = read_image(bench / entry["file"])
    if noisy.ndim == 3 and noisy.shape[2] in (2, 4):
        noisy = noisy[..., :-1]
    if noisy.shape != shape:
        raise SystemExit(f"cleanvision eval: {bench / entry['file']}: shape {noisy.shape} != clean {shape}")
    if hashlib.sha256(_bgr(noisy).tobytes()).hexdigest() != entry["sha256"]:
        raise SystemExit(f"cleanvision eval: {bench / entry['file']}: content differs from the manifest's sha256 "
                         "(modified benchmark?); delete the folder to rebuild it")
    return noisy, entry.get("params", {})


# --------------------------------------------------------------------------- figure

def pick_window(clean: np.ndarray, size: int, noisy: np.ndarray | None = None) -> tuple[int, int]:
    """Top-left corner of the ``size``×``size`` window with the most texture plus damage (deterministic):
    mean |Laplacian| of the clean image plus mean |noisy − clean|, so scribbles land in the crop."""
    h, w = clean.shape[:2]
    size = min(size, h, w)

    def grey(x):
        x = x.astype(np.float64)
        return x if x.ndim == 2 else x.mean(axis=2)

    score = np.abs(cv2.Laplacian(grey(clean), cv2.CV_64F))
    if noisy is not None:
        score = score + np.abs(grey(noisy) - grey(clean))
    ii = cv2.integral(score)
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    step = max(1, size // 4)
    sub = sums[::step, ::step]
    y, x = np.unravel_index(int(np.argmax(sub)), sub.shape)
    return int(y * step), int(x * step)


def _tile(img: np.ndarray | None, size: int, zoom: int, caption: str, sub: str) -> np.ndarray:
    bar = 34
    tile = np.full((size * zoom + bar, size * zoom, 3), 255, np.uint8)
    if img is not None:
        rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        tile[:size * zoom] = cv2.resize(rgb, (size * zoom, size * zoom), interpolation=cv2.INTER_NEAREST)
    else:
        tile[:size * zoom] = 235
        cv2.putText(tile, "not run", (8, size * zoom // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1,
                    cv2.LINE_AA)
    cv2.putText(tile, caption[:34], (3, size * zoom + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(tile, sub, (3, size * zoom + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def make_figure(crops: dict, methods: list[Method], path: Path, size: int, zoom: int) -> Path | None:
    """Rows: (image, condition); columns: clean, noisy, then each method; PSNR under each crop."""
    if not crops:
        return None
    cols = [m for m in methods if m.key != "noisy"]
    rows = []
    for (name, cond), c in crops.items():
        tiles = [_tile(c["clean"], size, zoom, f"clean {Path(name).stem}", cond),
                 _tile(c["noisy"], size, zoom, "noisy input", f"{c['psnr'].get('noisy', float('nan')):.2f} dB")]
        for m in cols:
            out = c["out"].get(m.key)
            sub = f"{c['psnr'][m.key]:.2f} dB (whole image)" if m.key in c["psnr"] else "-"
            tiles.append(_tile(out, size, zoom, m.label, sub))
        rows.append(np.concatenate([np.concatenate([t, np.full((t.shape[0], 4, 3), 255, np.uint8)], axis=1)
                                    for t in tiles], axis=1))
    grid = np.concatenate([np.concatenate([r, np.full((6, r.shape[1], 3), 255, np.uint8)], axis=0)
                           for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("cannot encode the figure")
    path.write_bytes(buf.tobytes())
    return path


# --------------------------------------------------------------------------- the run

def environment() -> dict:
    import torch

    from . import __version__
    try:
        from .speed import cpu_name
        cpu = cpu_name()
    except Exception:  # noqa: BLE001
        cpu = platform.processor() or platform.machine()
    env = {"cleanvision": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "opencv": cv2.__version__, "torch": torch.__version__, "cpu": cpu, "cores": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "opencv_threads": cv2.getNumThreads()}
    for mod in ("skimage", "bm3d"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    return env


def evaluate_set(clean_dir: Path, bench_dir: Path | None, methods: list[Method], *, conditions: Sequence[str],
                 paper_sigmas: Sequence[int], paper_crop: int, limit: int | None, seed: int = 0,
                 make_bench: Path = DEFAULT_MAKE_BENCH, figure_images: int = 2,
                 figure_conditions: Sequence[str] = ("gauss50", "sp10", "scribble", "mixed"),
                 crop_size: int = 96, progress: bool = True) -> tuple[dict, dict]:
    """Evaluate ``methods`` on one clean set. Returns (results JSON dict, figure crops)."""
    from tqdm.auto import tqdm

    set_name = clean_dir.resolve().name
    files = list_images(clean_dir)
    total = len(files)
    if limit:
        files = files[:limit]
    names = [f.name for f in files]
    manifest = ensure_bench(bench_dir, clean_dir, make_bench, seed, conditions) if conditions else None
    clean = {f.name: read_clean(f) for f in files}
    clean_hash = hashlib.sha256()
    for f in files:
        clean_hash.update(f.name.encode() + b"\0" + hashlib.sha256(clean[f.name].tobytes()).digest())

    cond_info: dict[str, dict] = {c: {"protocol": "frozen"} for c in conditions}
    for s in paper_sigmas:
        cond_info[f"paper{s}"] = {"protocol": "paper", "sigma": float(s), "crop": paper_crop}
    results = {c: {m.key: {"per_image": {}} for m in methods} for c in cond_info}
    timing = {m.key: {"seconds": 0.0, "megapixels": 0.0} for m in methods}
    crops: dict = {}
    fig_names = set(names[:figure_images])

    # warm-up (kernel selection, lazy imports) outside the timed calls
    probe = clean[names[0]][:64, :64]
    for m in methods:
        if not m.gaussian_only:
            m.run(probe, None)

    bar = tqdm(total=len(cond_info) * len(names), desc=set_name, unit="img", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for cond, info in cond_info.items():
            for name in names:
                ref = clean[name]
                if info["protocol"] == "frozen":
                    noisy, params = read_noisy(bench_dir, manifest, cond, name, ref.shape)
                    sigma = params.get("sigma") if cond.startswith("gauss") else None
                else:
                    ref = centre_crop(ref, paper_crop)
                    noisy, sigma = paper_noisy(ref, info["sigma"]), info["sigma"]
                keep = name in fig_names and cond in figure_conditions
                if keep:
                    y, x = pick_window(ref, crop_size, _noisy(noisy))
                    win = (slice(y, y + crop_size), slice(x, x + crop_size))
                    crops[(name, cond)] = {"clean": ref[win], "noisy": _noisy(noisy)[win], "out": {}, "psnr": {}}
                for m in methods:
                    if info["protocol"] == "paper" and not m.paper:
                        continue
                    if m.gaussian_only and sigma is None:
                        continue
                    if m.limit is not None and names.index(name) >= m.limit:
                        continue
                    bar.set_postfix_str(f"{cond} {m.key}", refresh=False)
                    t0 = time.perf_counter()
                    out = m.run(noisy, sigma)
                    dt = time.perf_counter() - t0
                    if m.key != "noisy":
                        timing[m.key]["seconds"] += dt
                        timing[m.key]["megapixels"] += ref.shape[0] * ref.shape[1] / 1e6
                    if out.shape != ref.shape or out.dtype != np.uint8:
                        raise RuntimeError(f"{m.key} returned {out.shape} {out.dtype} for {ref.shape} uint8")
                    p, s = psnr_uint8(ref, out), ssim_value(ref, out)
                    results[cond][m.key]["per_image"][name] = {"psnr": p, "ssim": s}
                    if keep:
                        crops[(name, cond)]["psnr"][m.key] = p
                        if m.key != "noisy":
                            crops[(name, cond)]["out"][m.key] = out[win]
                bar.update(1)
    finally:
        bar.close()

    for cond in results:
        for key in list(results[cond]):
            per = results[cond][key]["per_image"]
            if not per:
                del results[cond][key]
                continue
            results[cond][key] = {"n": len(per), "psnr": float(np.mean([v["psnr"] for v in per.values()])),
                                  "ssim": float(np.mean([v["ssim"] for v in per.values()])), "per_image": per}
    for key, t in timing.items():
        t["s_per_mp"] = t["seconds"] / t["megapixels"] if t["megapixels"] else None

    doc = {
        "schema": SCHEMA,
        "set": set_name,
        "clean_dir": str(clean_dir),
        "clean_sha256": clean_hash.hexdigest(),
        "images": names,
        "images_total": total,
        "limit": limit,
        "bench": {"dir": str(bench_dir) if conditions else None, "seed": seed, "generator": str(make_bench),
                  "generator_sha256": sha256_file(make_bench) if make_bench.is_file() else None},
        "paper_protocol": {"sigmas": [float(s) for s in paper_sigmas], "crop": paper_crop, "seed": 0,
                           "noise": "clean/255 + N(0, (sigma/255)^2), float64, RGB order, not clipped; "
                                    "np.random.seed(0) before each image; output clipped and rounded to uint8"},
        "conditions": cond_info,
        "methods": {m.key: {"label": m.label, "paper": m.paper, "gaussian_only": m.gaussian_only,
                            "limit": m.limit, **m.info} for m in methods},
        "results": results,
        "timing": timing,
        "quoted": QUOTED.get(set_name, []) if paper_sigmas else [],
        "metrics": {"psnr": "cleanvision.metrics.psnr_uint8 (data range 255, all channels)",
                    "ssim": "Gaussian window sigma 1.5, K1 0.01, K2 0.03, population covariance, per channel "
                            "averaged (skimage.metrics.structural_similarity)"},
        "environment": environment(),
    }
    return doc, crops


# --------------------------------------------------------------------------- markdown

def _cell(r: dict | None, ssim: bool = True) -> str:
    if not r:
        return "—"
    return f"{r['psnr']:.2f} / {r['ssim']:.4f}" if ssim else f"{r['psnr']:.2f}"


def _cond_title(cond: str, info: dict) -> str:
    return f"σ = {info['sigma']:g}" if info.get("protocol") == "paper" else f"`{cond}`"


def model_keys(doc: dict) -> list[str]:
    return [k for k in doc["methods"] if k.startswith("model:")]


def render_markdown(doc: dict, source: str | None = None, tool: str = "scripts/update_tables.py") -> str:
    """The results table of one set (what README.md and model_card.md show between the markers)."""
    res, conds, methods = doc["results"], doc["conditions"], doc["methods"]
    frozen = [c for c, i in conds.items() if i["protocol"] == "frozen"]
    paper = [c for c, i in conds.items() if i["protocol"] == "paper"]
    n, total = len(doc["images"]), doc["images_total"]
    images = f"{n} images" if n == total else f"first {n} of {total} images"
    lines = []
    if source:
        lines.append(f"<!-- generated by {tool} from {source}; do not edit by hand -->")
    t = doc["timing"]

    def spm(key: str) -> str:
        v = t.get(key, {}).get("s_per_mp")
        return "—" if v is None else f"{v:.2g}" if v < 1 else f"{v:.1f}"

    if frozen:
        lines += [f"**{doc['set']}** ({images}), frozen benchmark (`make_bench.py`, seed {doc['bench']['seed']}): "
                  "mean PSNR (dB) / SSIM; s/MP = seconds per megapixel.", "",
                  "| method | " + " | ".join(_cond_title(c, conds[c]) for c in frozen) + " | s/MP |",
                  "| --- | " + " | ".join("---:" for _ in frozen) + " | ---: |"]
        for key, m in methods.items():
            if not any(key in res[c] for c in frozen):
                continue
            lines.append(f"| {m['label']} | " + " | ".join(_cell(res[c].get(key)) for c in frozen)
                         + f" | {spm(key)} |")
        lines.append("")
    if paper:
        crop = doc["paper_protocol"]["crop"]
        where = f"{crop}×{crop} centre crops" if crop else "whole images"
        lines += [f"**{doc['set']}**, paper protocol (float Gaussian noise, not clipped, `np.random.seed(0)` per "
                  f"image; {where}): mean PSNR (dB) / SSIM.", "",
                  "| method | " + " | ".join(_cond_title(c, conds[c]) for c in paper) + " |",
                  "| --- | " + " | ".join("---:" for _ in paper) + " |"]
        for key, m in methods.items():
            if not any(key in res[c] for c in paper):
                continue
            lines.append(f"| {m['label']} | " + " | ".join(_cell(res[c].get(key)) for c in paper) + " |")
        for q in doc.get("quoted", []):
            lines.append(f"| {q['method']} (quoted from paper) | "
                         + " | ".join(f"{q['psnr'][c]:.2f}" if c in q["psnr"] else "—" for c in paper) + " |")
        lines.append("")
    notes = []
    for key, m in methods.items():
        if m.get("limit") and model_keys(doc):
            mk = model_keys(doc)[0]
            cmp = []
            for c in frozen + paper:
                sub = [v for name, v in res[c].get(mk, {}).get("per_image", {}).items()
                       if name in res[c].get(key, {}).get("per_image", {})]
                if sub and key in res[c]:
                    cmp.append(f"{_cond_title(c, conds[c])} {np.mean([v['psnr'] for v in sub]):.2f}")
            notes.append(f"BM3D runs on the first {m['limit']} image{'s' if m['limit'] > 1 else ''} only (it is "
                         f"slow); on those images {methods[mk]['label']} scores " + ", ".join(cmp) + " dB.")
    if doc.get("quoted"):
        notes.append("Quoted rows: " + "; ".join(f"{q['method']}: {q['source']}" for q in doc["quoted"])
                     + ". PSNR only, as published.")
    env = doc["environment"]
    mk = model_keys(doc)
    if mk:
        mi = methods[mk[0]]
        w = mi.get("weights_sha256")
        tr = mi.get("training") or {}
        steps = tr.get("total_steps", tr.get("steps"))
        stages = f" in {tr['stages']} stages" if tr.get("stages") else ""
        notes.append(f"{mi['label']}: engine `{mi.get('engine')}` on {mi.get('device')}"
                     + (f", weights sha256 `{w[:12]}`" if w else "")
                     + (f", {steps:,} training steps{stages}" if steps else "") + ".")
    notes.append(f"Times: {env.get('cpu')}, {env.get('cores')} cores, torch {env.get('torch')} "
                 f"({env.get('torch_threads')} threads), OpenCV {env.get('opencv')}; one run, shared machine.")
    if frozen:
        notes.append("Median, blur and NLM take 8-bit input, so they run on the frozen conditions only.")
    lines += [f"- {x}" for x in notes]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- CLI

def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clean", action="append", type=Path, required=True, metavar="DIR",
                    help="folder of clean images; repeat for several sets (e.g. CBSD68 and Kodak24)")
    ap.add_argument("--bench", default=".bench/{set}", metavar="DIR",
                    help="frozen noisy benchmark of the set ({set} = the clean folder's name); built with "
                         "make_bench.py if it does not exist (default: .bench/{set})")
    ap.add_argument("--make-bench", type=Path, default=DEFAULT_MAKE_BENCH, metavar="PY",
                    help=f"the frozen benchmark generator (default: {DEFAULT_MAKE_BENCH})")
    ap.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0, the published one)")
    ap.add_argument("--out", default="docs/bench/{set}", metavar="DIR",
                    help="output folder for results.json, results.md, figure.png (default: docs/bench/{set})")
    ap.add_argument("--model", action="append", default=None, metavar="M",
                    help="'shipped' (the package's weights; default) or a save_pretrained folder / Hub repo id; "
                         "repeat to compare models")
    ap.add_argument("--engine", default="auto", choices=("auto", "reference", "fp32", "bf16"),
                    help="model engine (default auto: bf16 where the CPU/GPU computes it natively, else fp32)")
    ap.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    ap.add_argument("--methods", default=",".join(ALL_METHODS),
                    help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: all; 'model' = every --model)")
    ap.add_argument("--conditions", default=",".join(FROZEN_CONDITIONS),
                    help="frozen-benchmark conditions ('' for none; default: all seven)")
    ap.add_argument("--paper-sigmas", default=",".join(map(str, PAPER_SIGMAS)),
                    help="σ values of the paper protocol ('' for none; default 15,25,50)")
    ap.add_argument("--paper-crop", default="auto",
                    help="paper-protocol centre crop in px; 'auto' = 500 for Kodak24 (FFDNet's protocol), "
                         "whole image otherwise; 0 = whole image")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="first N images (sorted by name) only")
    ap.add_argument("--bm3d-limit", type=int, default=DEFAULT_BM3D_LIMIT, metavar="N",
                    help=f"BM3D on the first N images only (slow; default {DEFAULT_BM3D_LIMIT}; 0 = all)")
    ap.add_argument("--figure-images", type=int, default=2, metavar="N", help="images in the figure (0 = none)")
    ap.add_argument("--figure-conditions", default="gauss50,sp10,scribble,mixed", help="conditions in the figure")
    ap.add_argument("--crop-size", type=int, default=96, help="figure crop size in px (shown 2× enlarged)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip() and t.strip().lower() != "none"]


def main_from_args(args: argparse.Namespace) -> int:
    import torch

    methods_wanted = _split(args.methods)
    conditions = _split(args.conditions)
    bad = [c for c in conditions if c not in FROZEN_CONDITIONS]
    if bad:
        raise SystemExit(f"cleanvision eval: unknown condition(s) {', '.join(bad)}; choose from "
                         f"{', '.join(FROZEN_CONDITIONS)}")
    try:
        sigmas = [int(s) for s in _split(args.paper_sigmas)]
    except ValueError:
        raise SystemExit(f"cleanvision eval: --paper-sigmas takes integers, got {args.paper_sigmas!r}") from None
    if len(args.clean) > 1:
        for opt in ("out", "bench"):
            if "{set}" not in getattr(args, opt):
                raise SystemExit(f"cleanvision eval: with several --clean sets, --{opt} must contain {{set}}")
    if torch.cuda.is_available():  # reproducible GPU numbers: no TF32, deterministic kernels
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    methods = build_methods(methods_wanted, args.model or ["shipped"], args.engine, args.device, args.bm3d_limit)
    if not methods:
        raise SystemExit("cleanvision eval: no methods selected")
    arguments = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
                 for k, v in vars(args).items() if k not in ("func", "command")}
    for clean_dir in args.clean:
        set_name = clean_dir.resolve().name
        if args.paper_crop == "auto":
            crop = AUTO_PAPER_CROP.get(set_name, 0)
        else:
            try:
                crop = int(args.paper_crop)
            except ValueError:
                raise SystemExit(f"cleanvision eval: --paper-crop takes 'auto' or pixels, got {args.paper_crop!r}") \
                    from None
        out = Path(args.out.replace("{set}", set_name))
        bench = Path(args.bench.replace("{set}", set_name))
        t0 = time.perf_counter()
        doc, crops = evaluate_set(clean_dir, bench, methods, conditions=conditions, paper_sigmas=sigmas,
                                  paper_crop=crop, limit=args.limit, seed=args.seed, make_bench=args.make_bench,
                                  figure_images=args.figure_images,
                                  figure_conditions=_split(args.figure_conditions), crop_size=args.crop_size,
                                  progress=not args.no_progress)
        doc["arguments"] = arguments
        doc["wall_seconds"] = time.perf_counter() - t0
        write_outputs(doc, crops, methods, out, args.crop_size)
        print(f"{set_name}: {out / JSON_NAME}, {out / MD_NAME}" + (f", {out / FIGURE_NAME}" if crops else "")
              + f" ({doc['wall_seconds']:.0f} s)", file=sys.stderr)
        print(render_markdown(doc))
    return 0


def write_outputs(doc: dict, crops: dict, methods: list[Method], out: Path, crop_size: int = 96) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (JSON_NAME + ".part")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, out / JSON_NAME)
    (out / MD_NAME).write_text(render_markdown(doc, str(out / JSON_NAME), tool="cleanvision eval"))
    if crops:
        make_figure(crops, methods, out / FIGURE_NAME, crop_size, 2)


def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="python -m cleanvision.evaluate", description=__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.set_defaults(func=main_from_args)
    return ap


def add_eval_parser(sub) -> argparse.ArgumentParser:
    """``cleanvision eval``: the same options as ``python -m cleanvision.evaluate``."""
    p = sub.add_parser("eval", help="benchmark: PSNR/SSIM tables of models and classical baselines",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return build_parser(p)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return main_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
