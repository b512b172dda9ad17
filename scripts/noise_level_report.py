#!/usr/bin/env python
"""How well a noise-map model reads the noise level, and what a fixed level does on real photos.

    python scripts/noise_level_report.py --model runs/noise-map [--limit N]

Two tables, written to ``docs/bench/noise_level.json`` / ``.md`` with a figure
``docs/bench/noise_level_sweep.png``:

* **The estimator's error**: the level ``Denoiser.estimate_noise_level`` reads (what auto mode
  restores with) beside scikit-image's ``estimate_sigma`` (the classical wavelet estimator), on
  CBSD68 with Gaussian noise of known σ (frozen ``gauss25``, ``gauss50``, ``luma25``; the paper
  protocol at 15/25/50: median relative error), on damage that is not dense noise (frozen
  ``sp10``, ``scribble``, undamaged photos: median estimate, which should be near 0), and on
  the real pairs (PolyU, CC15: median estimate beside the std of noisy − ground truth).
* **One level for a whole set of real photos**: mean PSNR on PolyU and CC15 at each fixed
  level, and in auto mode. The best fixed level is read off the test set itself, so it is an
  upper bound for a knob, not a result.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision.bench.sets import (ensure_bench, list_images, paper_noisy, read_clean, read_noisy,  # noqa: E402
                                    real_pairs)
from cleanvision.hardware import cpu_name  # noqa: E402
from cleanvision.inference import Denoiser, model_location  # noqa: E402
from cleanvision.metrics import psnr_uint8  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MAKE_BENCH = ROOT.parent / "shared" / "bench" / "make_bench.py"
KNOWN = {"gauss25": 25.0, "gauss50": 50.0, "luma25": 25.0}
SPARSE = ("sp10", "scribble")
REAL = ("PolyU", "CC15")
#: The sweep's fixed levels by default: every integer σ of the range camera noise lies in.
LEVELS = ",".join(str(v) for v in range(16))


def classical(img: np.ndarray) -> float:
    """scikit-image's wavelet estimate of σ (0-255 scale), the mean over colour channels."""
    from skimage.restoration import estimate_sigma

    x = img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
    return float(estimate_sigma(x, channel_axis=-1 if x.ndim == 3 else None, average_sigmas=True)) * 255.0


def estimator_rows(den: Denoiser, limit: int | None) -> list[dict]:
    """One row per condition: true σ (or the real noise's std), and each estimator's median."""
    files = list_images(DATA / "CBSD68")[:limit]
    bench = ROOT / ".bench" / "CBSD68"
    manifest = ensure_bench(bench, DATA / "CBSD68", MAKE_BENCH, 0, [*KNOWN, *SPARSE])
    cases: dict[str, list[tuple[np.ndarray, float | None]]] = {}
    for f in files:
        clean = read_clean(f)
        for cond in (*KNOWN, *SPARSE):
            noisy = read_noisy(bench, manifest, cond, f.name, clean.shape)[0]
            cases.setdefault(cond, []).append((noisy, KNOWN.get(cond, 0.0)))
        for s in (15, 25, 50):
            noisy = np.clip(paper_noisy(clean, s), 0, 1).astype(np.float32)
            cases.setdefault(f"paper σ {s}", []).append((noisy, float(s)))
        cases.setdefault("undamaged", []).append((clean, 0.0))
    for name in REAL:
        for noisy_path, truth_path in list(real_pairs(DATA / "real" / name).values())[:limit]:
            noisy, truth = read_clean(noisy_path), read_clean(truth_path)
            cases.setdefault(name, []).append((noisy, float(np.std(noisy.astype(float) - truth))))
    rows = []
    for cond, items in tqdm(cases.items(), desc="estimates"):
        learned = [den.estimate_noise_level(x) for x, _ in items]
        wavelet = [classical(x) for x, _ in items]
        truth = [t for _, t in items]
        row = {"condition": cond, "images": len(items), "truth": statistics.median(truth),
               "model": statistics.median(learned), "estimate_sigma": statistics.median(wavelet)}
        if cond in KNOWN or cond.startswith("paper"):
            for key, est in (("model", learned), ("estimate_sigma", wavelet)):
                row[f"{key}_rel_error"] = statistics.median(abs(e - t) / t for e, t in zip(est, truth))
        rows.append(row)
    return rows


def sweep(den: Denoiser, levels: list[float], limit: int | None) -> dict[str, dict]:
    """Mean PSNR of each real set at each fixed level, and in auto mode (with its mean level)."""
    out = {}
    for name in REAL:
        pairs = [(read_clean(a), read_clean(b)) for a, b in list(real_pairs(DATA / "real" / name).values())[:limit]]
        at = {}
        for level in tqdm(levels, desc=name):
            at[level] = float(np.mean([psnr_uint8(t, den(x, noise_level=level)) for x, t in pairs]))
        auto = float(np.mean([psnr_uint8(t, den(x)) for x, t in pairs]))
        auto_level = float(np.mean([den.estimate_noise_level(x) for x, _ in pairs]))
        best = max(at, key=at.get)
        out[name] = {"images": len(pairs), "psnr_at": {f"{k:g}": v for k, v in at.items()}, "auto": auto,
                     "auto_mean_level": auto_level, "best_level": best, "best": at[best]}
    return out


def figure(result: dict[str, dict], path: Path) -> None:
    """PSNR against the fixed level, one line per real set, auto mode as a dashed level line."""
    w, h, pad = 720, 420, 60
    img = np.full((h, w, 3), 255, np.uint8)
    colours = {"PolyU": (200, 80, 30), "CC15": (30, 120, 220)}
    values = [v for r in result.values() for v in [*r["psnr_at"].values(), r["auto"]]]
    levels = [float(k) for k in next(iter(result.values()))["psnr_at"]]
    lo, hi = min(values) - 0.2, max(values) + 0.2
    px = lambda s: int(pad + (s - levels[0]) / (levels[-1] - levels[0]) * (w - 2 * pad))  # noqa: E731
    py = lambda v: int(h - pad - (v - lo) / (hi - lo) * (h - 2 * pad))  # noqa: E731
    cv2.rectangle(img, (pad, pad), (w - pad, h - pad), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for s in levels[:: max(1, len(levels) // 8)]:
        cv2.putText(img, f"{s:g}", (px(s) - 8, h - pad + 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for v in np.linspace(lo, hi, 5):
        cv2.putText(img, f"{v:.1f}", (5, py(v) + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "fixed noise level (sigma, 0-255)", (w // 2 - 130, h - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "mean PSNR dB", (5, pad - 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (name, r) in enumerate(result.items()):
        c = colours.get(name, (0, 0, 0))
        pts = [(px(float(k)), py(v)) for k, v in r["psnr_at"].items()]
        cv2.polylines(img, [np.array(pts, np.int32)], False, c, 2, cv2.LINE_AA)
        for x in range(pad, w - pad, 12):
            cv2.line(img, (x, py(r["auto"])), (x + 6, py(r["auto"])), c, 1, cv2.LINE_AA)
        cv2.circle(img, (px(r["best_level"]), py(r["best"])), 5, c, -1, cv2.LINE_AA)
        cv2.putText(img, f"{name}: best fixed {r['best_level']:g} (read off the test set), dashed: auto",
                    (pad + 10, pad + 20 + 20 * i), font, 0.45, c, 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])


def markdown(doc: dict) -> str:
    lim = f" --limit {doc['limit']}" if doc["limit"] else ""
    levels = doc.get("levels", LEVELS)
    lim += f" --levels {levels}" if levels != LEVELS else ""
    lines = [f"`python scripts/noise_level_report.py --model {doc['model']}{lim}`, engine `{doc['engine']}`, "
             f"{doc['machine']}.", "",
             "| condition | images | true σ (real: std of noisy − truth) | model's estimate | `estimate_sigma` "
             "| model's median relative error | `estimate_sigma`'s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in doc["estimates"]:
        rel = [f"{100 * r[k]:.1f} %" if k in r else "–" for k in ("model_rel_error", "estimate_sigma_rel_error")]
        lines.append(f"| {r['condition']} | {r['images']} | {r['truth']:.2f} | {r['model']:.2f} | "
                     f"{r['estimate_sigma']:.2f} | {rel[0]} | {rel[1]} |")
    lines += ["", "| real set | images | auto: mean level | auto PSNR dB | best fixed level (read off the test set) "
              "| its PSNR dB | auto − best dB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in doc["sweep"].items():
        lines.append(f"| {name} | {r['images']} | {r['auto_mean_level']:.2f} | {r['auto']:.3f} | "
                     f"{r['best_level']:g} | {r['best']:.3f} | {r['auto'] - r['best']:+.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a noise-map model folder (or checkpoint folder) or Hub repo id")
    ap.add_argument("--engine", default="onnxruntime", help="Denoiser engine (default: the benchmark's)")
    ap.add_argument("--levels", default=LEVELS,
                    help="the fixed levels of the sweep (comma-separated)")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each set (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "noise_level",
                    help="writes OUT.json, OUT.md and OUT_sweep.png (default: docs/bench/noise_level)")
    args = ap.parse_args(argv)
    den = Denoiser.from_pretrained(model_location(args.model), engine=args.engine)
    if not den.takes_noise_level:
        ap.error(f"{args.model} is a blind model: it has no noise level to read or set")
    doc = {"model": args.model, "engine": den.engine, "machine": cpu_name(), "limit": args.limit, "levels": args.levels,
           "estimates": estimator_rows(den, args.limit),
           "sweep": sweep(den, [float(v) for v in args.levels.split(",")], args.limit)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    figure(doc["sweep"], args.out.with_name(args.out.name + "_sweep.png"))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
