"""Where a model's error on the frozen ``scribble`` condition lies: under the strokes, or in the
rest of the photo, which had no damage at all.

A blind model that has learnt to remove faint noise also changes undamaged texture; on the
scribble images that change sits beside the stroke repair and can cost more than it does. For
each model this prints the ``scribble`` PSNR (as ``cleanvision eval`` scores it), the share of
the squared error away from the strokes, and the PSNR each part alone would leave (the other
part perfect). ``model_card.md`` quotes it in its limitations.

    python scripts/scribble_error_split.py --model shipped --model runs/stage2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cleanvision.bench.sets import DEFAULT_MAKE_BENCH, ensure_bench, list_images, read_clean, read_noisy


def psnr(mse: float) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def split(clean: np.ndarray, noisy: np.ndarray, restored: np.ndarray) -> tuple[float, float]:
    """(mean squared error under the strokes, elsewhere), both over the whole image's pixels,
    so they add up to the image's MSE. Stroke pixels: where the noisy image differs from the clean one."""
    err = (restored.astype(np.float64) - clean.astype(np.float64)) ** 2
    stroke = noisy != clean
    if err.ndim == 3:
        err, stroke = err.mean(axis=2), stroke.any(axis=2)
    return float(err[stroke].sum() / err.size), float(err[~stroke].sum() / err.size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, default=Path("../shared/data/CBSD68"), help="clean set (default CBSD68)")
    ap.add_argument("--bench", type=Path, default=None, help="its frozen benchmark (default .bench/<set>)")
    ap.add_argument("--model", action="append", default=None, help="'shipped' or a model folder; repeatable")
    ap.add_argument("--engine", default="onnxruntime", help="model engine (default: the tables' onnxruntime)")
    args = ap.parse_args(argv)
    from cleanvision.bench.methods import model_method

    bench = args.bench or Path(".bench") / args.clean.resolve().name
    manifest = ensure_bench(bench, args.clean, DEFAULT_MAKE_BENCH, 0, ["scribble"])
    pairs = []
    for f in list_images(args.clean):
        clean = read_clean(f)
        pairs.append((clean, read_noisy(bench, manifest, "scribble", f.name, clean.shape)[0]))
    print("| model | `scribble` PSNR | error away from the strokes | PSNR, strokes perfect | PSNR, rest perfect |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for spec in args.model or ["shipped"]:
        restore = model_method(spec, args.engine, None).run  # 'shipped' or a folder, as cleanvision eval
        under, rest = (np.array(c) for c in zip(*(split(clean, noisy, restore(noisy)) for clean, noisy in pairs)))
        share = float(np.mean(rest / (under + rest)))
        print(f"| {spec} | {np.mean([psnr(x) for x in under + rest]):.2f} | {share:.0%} "
              f"| {np.mean([psnr(r) for r in rest]):.2f} | {np.mean([psnr(u) for u in under]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
