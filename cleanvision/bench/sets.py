"""Benchmark inputs: clean sets, the frozen noisy benchmark, the paper protocol, real pairs.

* A **clean set** is a folder of 8-bit images (CBSD68, Kodak24, grey BSD68, Set12 ...).
* The **frozen benchmark** is what ``../shared/bench/make_bench.py`` writes from a clean set:
  one noisy PNG per (condition, image), checked here against the sha256 in its manifest.
* The **paper protocol** of the DnCNN / FFDNet / DRUNet test scripts: float Gaussian noise,
  ``np.random.seed(0)`` before each image, not clipped, not rounded.
* A **real set** is a folder of real noisy photos ``*_real.*`` beside their ground truth
  ``*_mean.*`` (PolyU, CC15): no noise is synthesised at all.
* The **undamaged** condition gives a method the clean photo itself: a blind model cannot know
  a photo is clean, and what it changes there it also changes around every scribble.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CleanVisionError
from ..image_io import images_in, read_image, split_alpha, swap_rb

from .options import (AUTO_PAPER_CROP, DEFAULT_MAKE_BENCH, EXTENDED_CONDITIONS,  # noqa: F401 - re-exported
                      FROZEN_CONDITIONS, PAPER_SIGMAS, REPO_ROOT, UNDAMAGED)

REAL_SUFFIX, TRUTH_SUFFIX = "_real", "_mean"


class BenchError(CleanVisionError):
    """The benchmark cannot run as asked (missing folder, modified benchmark, bad option)."""


def to_uint8(x: np.ndarray) -> np.ndarray:
    """A float image on the 0-1 scale, clipped and rounded to uint8 (as a saved photo)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchError(f"{folder}: no such folder")
    files = images_in(folder, recursive=False)
    if not files:
        raise BenchError(f"{folder}: no images")
    return files


def real_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """``{name: (noisy, truth)}`` for a folder of ``X_real.*`` / ``X_mean.*`` pairs; {} for a clean set."""
    files = list_images(folder)
    real = {p.stem[: -len(REAL_SUFFIX)]: p for p in files if p.stem.endswith(REAL_SUFFIX)}
    truth = {p.stem[: -len(TRUTH_SUFFIX)]: p for p in files if p.stem.endswith(TRUTH_SUFFIX)}
    if not real and not truth:
        return {}
    lonely = sorted(set(real) ^ set(truth))
    if lonely:
        raise BenchError(f"{folder}: {len(lonely)} photo(s) without their pair, e.g. {lonely[0]}")
    return {name: (real[name], truth[name]) for name in sorted(real)}


def read_clean(path: Path) -> np.ndarray:
    """An 8-bit benchmark image as uint8 H×W (grey) or H×W×3 (RGB); alpha dropped as make_bench does."""
    img = read_image(path)
    if img.dtype != np.uint8:
        raise BenchError(f"{path}: the benchmark is on 8-bit images, got {img.dtype}")
    img = split_alpha(img)[0]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.ascontiguousarray(img)


def paper_noisy(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The paper protocol: ``np.random.seed(0)``, then clean/255 + N(0, (σ/255)²), float64, unclipped."""
    np.random.seed(0)
    return clean.astype(np.float64) / 255.0 + np.random.normal(0.0, sigma / 255.0, clean.shape)


def ensure_bench(bench: Path, clean: Path, make_bench: Path, seed: int, conditions: Sequence[str]) -> dict:
    """The manifest of the frozen benchmark in ``bench``, built with make_bench.py if missing.

    A benchmark that lacks some of ``conditions`` (e.g. the extended ones) is rebuilt with the
    union of what it had and what is asked: make_bench is deterministic, so the images it
    already had come out byte for byte the same.
    """
    manifest_path = bench / "manifest.json"
    have: list[str] = []
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("seed") != seed:
            raise BenchError(f"{bench} was built with seed {manifest.get('seed')}, not {seed}")
        have = list(manifest.get("conditions", {}))
        if all(c in have for c in conditions):
            return manifest
    if not make_bench.is_file():
        raise BenchError(f"{bench} lacks the benchmark images and the generator {make_bench} is missing "
                         "(give the path of make_bench.py)")
    wanted = have + [c for c in conditions if c not in have]
    print(f"building the frozen benchmark: {make_bench} --clean {clean} --out {bench} --seed {seed} "
          f"--conditions {','.join(wanted)}", file=sys.stderr)
    subprocess.run([sys.executable, str(make_bench), "--clean", str(clean), "--out", str(bench),
                    "--seed", str(seed), "--conditions", ",".join(wanted)], check=True)
    return json.loads(manifest_path.read_text())


def read_noisy(bench: Path, manifest: dict, condition: str, clean_name: str, shape: tuple) -> tuple[np.ndarray, dict]:
    """One noisy image of the frozen benchmark, checked against its manifest's sha256."""
    entry = manifest["conditions"][condition].get(clean_name)
    if entry is None:
        raise BenchError(f"{bench}/manifest.json has no {condition} image for {clean_name}; "
                         "the benchmark was built from another folder: delete it to rebuild")
    noisy = read_image(bench / entry["file"])
    noisy = split_alpha(noisy)[0]
    if noisy.shape != shape:
        raise BenchError(f"{bench / entry['file']}: shape {noisy.shape} != clean {shape}")
    if hashlib.sha256(swap_rb(noisy).tobytes()).hexdigest() != entry["sha256"]:
        raise BenchError(f"{bench / entry['file']}: content differs from the manifest's sha256 "
                         "(modified benchmark?); delete the folder to rebuild it")
    return noisy, entry.get("params", {})
