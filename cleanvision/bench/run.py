"""Running a benchmark: every method on every image of a set, under each protocol.

Same inputs, same numbers: nothing is random except through fixed seeds. Metrics are those of
``SPEC.md``: PSNR over all channels (:func:`cleanvision.metrics.psnr_uint8`) and SSIM with a
Gaussian window σ = 1.5 per channel, averaged, as ``skimage.metrics.structural_similarity``
computes it (used when scikit-image is installed: same values as
:func:`cleanvision.metrics.ssim_uint8` to ~1e-15, ten times faster on a CPU).
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..metrics import psnr_uint8, ssim_uint8
from .methods import FROZEN, PAPER, REAL, Method, noisy_input
from .published import QUOTED
from .render import pick_window
from ..image_io import centre_crop
from .sets import (DEFAULT_MAKE_BENCH, UNDAMAGED, BenchError, ensure_bench, list_images, paper_noisy,
                   read_clean, read_noisy, real_pairs, sha256_file)

SCHEMA = 1


def ssim_value(clean: np.ndarray, restored: np.ndarray) -> float:
    """SSIM as SPEC.md defines it (skimage's reference when installed, else cleanvision.metrics)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:  # scikit-image is a test/bench dependency; the library's SSIM is equal, slower
        return ssim_uint8(clean, restored)
    return float(structural_similarity(clean, restored, channel_axis=-1 if clean.ndim == 3 else None,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=255))


def environment() -> dict:
    import torch

    from .. import __version__
    from ..hardware import cpu_name

    cpu = cpu_name()
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
                 figure_conditions: Sequence[str] = ("gauss50", "sp10", "scribble", "mixed", "real"),
                 crop_size: int = 96, progress: bool = True) -> tuple[dict, dict]:
    """Evaluate ``methods`` on one set. Returns (results JSON dict, figure crops).

    A folder of ``*_real`` / ``*_mean`` pairs is a real set: its one condition is ``real`` and
    ``conditions`` / ``paper_sigmas`` do not apply. Any other folder is a clean set, scored on
    the frozen ``conditions`` and the paper protocol at ``paper_sigmas``; ``undamaged`` among
    ``conditions`` gives each method the clean photo itself.
    """
    from tqdm.auto import tqdm

    set_name = clean_dir.resolve().name
    pairs = real_pairs(clean_dir)
    if pairs:
        names = list(pairs)
        conditions, paper_sigmas, paper_crop = [], [], 0
        files = [pairs[n][1] for n in names]
    else:
        files = list_images(clean_dir)
        names = [f.name for f in files]
    total = len(names)
    if limit:
        names, files = names[:limit], files[:limit]
    undamaged = UNDAMAGED in conditions
    conditions = [c for c in conditions if c != UNDAMAGED]
    manifest = ensure_bench(bench_dir, clean_dir, make_bench, seed, conditions) if conditions else None
    clean = {n: read_clean(f) for n, f in zip(names, files)}
    clean_hash = hashlib.sha256()
    for n in names:
        clean_hash.update(n.encode() + b"\0" + hashlib.sha256(clean[n].tobytes()).digest())

    cond_info: dict[str, dict] = {c: {"protocol": FROZEN} for c in conditions}
    for s in paper_sigmas:
        cond_info[f"paper{s}"] = {"protocol": PAPER, "sigma": float(s), "crop": paper_crop}
    if pairs:
        cond_info["real"] = {"protocol": REAL, "noisy": "*_real", "truth": "*_mean"}
    elif undamaged:
        cond_info[UNDAMAGED] = {"protocol": UNDAMAGED, "noisy": "the clean image itself"}
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
                sigma = None
                if info["protocol"] == FROZEN:
                    noisy, params = read_noisy(bench_dir, manifest, cond, name, ref.shape)
                    sigma = params.get("sigma") if cond.startswith("gauss") else None
                elif info["protocol"] == UNDAMAGED:
                    noisy = ref
                elif info["protocol"] == REAL:
                    noisy = read_clean(pairs[name][0])
                    if noisy.shape != ref.shape:
                        raise RuntimeError(f"{pairs[name][0]}: shape {noisy.shape} != {ref.shape} of its truth")
                else:
                    ref = centre_crop(ref, paper_crop)
                    noisy, sigma = paper_noisy(ref, info["sigma"]), info["sigma"]
                keep = name in fig_names and cond in figure_conditions
                if keep:
                    y, x = pick_window(ref, crop_size, noisy_input(noisy))
                    win = (slice(y, y + crop_size), slice(x, x + crop_size))
                    crops[(name, cond)] = {"clean": ref[win], "noisy": noisy_input(noisy)[win], "out": {}, "psnr": {}}
                for m in methods:
                    if info["protocol"] not in m.protocols:
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
            results[cond][key] = summarise(per)
    timing = {k: t for k, t in timing.items() if any(k in r for r in results.values())}
    env = environment()
    for key, t in timing.items():
        t["s_per_mp"] = t["seconds"] / t["megapixels"] if t["megapixels"] else None
        t.update(timed_on(env))

    doc = {
        "schema": SCHEMA,
        "set": set_name,
        "clean_dir": str(clean_dir),
        "clean_sha256": clean_hash.hexdigest(),
        "grey": all(clean[n].ndim == 2 for n in names),
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
                            "limit": m.limit, **m.info} for m in methods if any(m.key in r for r in results.values())},
        "results": results,
        "timing": timing,
        "quoted": [q for q in QUOTED.get(set_name, []) if set(q["psnr"]) & set(cond_info)],
        "metrics": {"psnr": "cleanvision.metrics.psnr_uint8 (data range 255, all channels)",
                    "ssim": "Gaussian window sigma 1.5, K1 0.01, K2 0.03, population covariance, per channel "
                            "averaged (skimage.metrics.structural_similarity)"},
        "environment": env,
    }
    return doc, crops


def timed_on(env: dict) -> dict:
    """The machine a method's s/MP was measured on: ``--update`` keeps rows timed on other
    machines, and one "Times:" note for all of them would name the wrong CPU for some."""
    return {"cpu": env.get("cpu"), "torch_threads": env.get("torch_threads")}


def summarise(per_image: dict) -> dict:
    """Mean PSNR / SSIM of a method on a condition, with the per-image values kept."""
    return {"n": len(per_image), "psnr": float(np.mean([v["psnr"] for v in per_image.values()])),
            "ssim": float(np.mean([v["ssim"] for v in per_image.values()])), "per_image": per_image}


def merge_into(old: dict, new: dict) -> dict:
    """``new`` with every (condition, method) result it did not compute taken from ``old``.

    Lets a retrained model be scored without rerunning the slow baselines, and baselines be
    run on added conditions without losing their other rows. A method whose description
    changed (other weights, another engine) keeps none of its old rows: they would mix two
    models under one name. Refuses when the clean images or the seed differ. A generator that
    changed (it gained conditions) is recorded, not refused: every noisy image read is checked
    against its manifest's sha256, and SPEC.md keeps the frozen conditions' files unchanged.
    """

    for key in ("clean_sha256", "images"):
        if old.get(key) != new.get(key):
            raise BenchError(f"cannot merge: the existing results are for other images ({key} differs)")
    if old.get("bench", {}).get("seed") != new["bench"]["seed"]:
        raise BenchError("cannot merge: the existing results come from a benchmark with another seed")
    doc = dict(new)
    doc["conditions"] = {**old.get("conditions", {}), **new["conditions"]}
    doc["methods"] = {**{k: new["methods"].get(k, v) for k, v in old["methods"].items()}, **new["methods"]}
    # rows timed before timings named their machine were timed on the one the old document names
    legacy = timed_on(old.get("environment", {}))
    doc["timing"] = {**{k: new["timing"].get(k, {**legacy, **v}) for k, v in old["timing"].items()},
                     **new["timing"]}
    changed = {k for k, v in new["methods"].items() if k in old["methods"] and old["methods"][k] != v}
    results = {}
    for cond in doc["conditions"]:
        kept = {k: v for k, v in old["results"].get(cond, {}).items() if k not in changed}
        results[cond] = {**kept, **new["results"].get(cond, {})}
    doc["results"] = results
    doc["quoted"] = [q for q in QUOTED.get(doc["set"], []) if set(q["psnr"]) & set(doc["conditions"])]
    doc["paper_protocol"] = new["paper_protocol"] if new["paper_protocol"]["sigmas"] else old["paper_protocol"]
    if not new["bench"]["dir"]:
        doc["bench"] = old["bench"]
    elif old["bench"].get("generator_sha256") != new["bench"]["generator_sha256"]:
        doc["bench"] = {**new["bench"], "generator_sha256_before": old["bench"].get("generator_sha256")}
    doc["runs"] = old.get("runs", [{"methods": list(old["methods"]), "wall_seconds": old.get("wall_seconds")}]) \
        + [{"methods": list(new["methods"]), "wall_seconds": new.get("wall_seconds")}]
    doc["wall_seconds"] = sum(r["wall_seconds"] or 0 for r in doc["runs"])
    return doc
