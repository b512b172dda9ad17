#!/usr/bin/env python
"""Fit a noise-map model's level curve on held-out training photos: the reading-to-level
correction auto mode restores with, written into a copy of the model.

    python scripts/fit_level_curve.py runs/noise-map --output_dir runs/noise-map-curved

The estimator is trained to read the std of the noise (the map's definition in training), but
the level a denoiser restores a photo best with need not be that std: on faint noise it is about
twice it, and on a photo that needs nothing it is 0 while the estimator reads the photo's own
grain. A monotone piecewise-linear curve from reading to level (``DnCNN.level_curve``, knots at
``--knots`` readings, the identity from the last one on, so strong noise keeps its true level
and guided use its meaning) is fitted to maximise the mean PSNR of the restorations over the
damage conditions of ``scripts/estimator_check.py`` (Gaussian, luminance and camera noise, JPEG,
impulses, strokes, none) on 256-px centre crops of the photos training holds out — never a test
set — that carry little noise of their own (``--max_own_noise``: a noisy reference scores the
removal of its own noise as damage, and pulls the curve towards leaving noise). Each crop reading under the last knot is restored at every level of ``--levels`` (the
sweep, saved as ``OUTPUT_DIR/level_sweep.npz``; ``--sweep`` reuses one), the level between two
is read off linearly, and the knots' levels are set by coordinate ascent. The report
(``OUTPUT_DIR/level_curve.md``) gives per condition the PSNR with the reading itself, with the
curve, with the best single level and with each crop's best level, and the same curve fitted on
half the photos and scored on the other half: how much of the gain is fitted noise.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from estimator_check import CONDITIONS, CROP, clean_note, crops, damaged, own_noise  # noqa: E402
from heldout_check import add_heldout_arguments  # noqa: E402

from cleanvision import DnCNN  # noqa: E402
from cleanvision.hardware import cpu_name  # noqa: E402
from cleanvision.inference import Denoiser, model_location  # noqa: E402
from cleanvision.metrics import psnr_uint8  # noqa: E402

KNOTS = "0,2,3,4,5,6,7,8,10,12,15"
LEVELS = ",".join(str(v) for v in range(16))


def sweep(den: Denoiser, photos: list[np.ndarray], noisy: dict[str, list[np.ndarray]],
          levels: np.ndarray, below: float) -> tuple[np.ndarray, np.ndarray]:
    """(readings C×P, PSNR C×P×L at each level; NaN for crops reading ``below`` or more)."""
    names = list(noisy)
    readings = np.array([[den.estimate_noise_level(x) for x in noisy[c]] for c in names])
    psnr = np.full((*readings.shape, len(levels)), np.nan)
    todo = [(i, j) for i in range(len(names)) for j in range(len(photos)) if readings[i, j] < below]
    for i, j in tqdm(todo, desc="level sweep"):
        x = noisy[names[i]][j]
        psnr[i, j] = [psnr_uint8(photos[j], den(x, noise_level=float(v))) for v in levels]
    return readings, psnr


def score(curve_levels: np.ndarray, knots: np.ndarray, readings: np.ndarray, psnr: np.ndarray,
          levels: np.ndarray) -> np.ndarray:
    """PSNR of each swept crop restored at the curve's level for its reading (NaN elsewhere)."""
    target = np.interp(readings, knots, curve_levels)
    out = np.full(readings.shape, np.nan)
    for idx in zip(*np.nonzero(~np.isnan(psnr[..., 0]))):
        out[idx] = np.interp(target[idx], levels, psnr[idx])
    return out


def fit(knots: np.ndarray, readings: np.ndarray, psnr: np.ndarray, levels: np.ndarray,
        step: float = 0.5) -> np.ndarray:
    """The knots' levels (non-decreasing, the last on the diagonal) that maximise the mean PSNR
    of the swept crops, by coordinate ascent from the identity."""
    y = knots.astype(float).copy()
    candidates = np.arange(0.0, knots[-1] + step / 2, step)
    best = np.nanmean(score(y, knots, readings, psnr, levels))
    for _ in range(20):
        moved = False
        for k in range(len(knots) - 1):  # the last knot stays on the diagonal
            lo, hi = (y[k - 1] if k else 0.0), y[k + 1]
            for v in candidates[(candidates >= lo) & (candidates <= hi)]:
                trial = y.copy()
                trial[k] = v
                s = np.nanmean(score(trial, knots, readings, psnr, levels))
                if s > best + 1e-6:
                    best, y, moved = s, trial, True
        if not moved:
            break
    return y


def report(names: list[str], knots: np.ndarray, y: np.ndarray, readings: np.ndarray, psnr: np.ndarray,
           levels: np.ndarray, model: str, clean: str = "") -> str:
    """Per condition: mean PSNR over the swept crops with the reading, the curve, the best single
    level and each crop's best level; then the half-and-half check."""
    ident, curved = score(knots, knots, readings, psnr, levels), score(y, knots, readings, psnr, levels)
    lines = [f"Level curve of `{model}`, fitted on {readings.shape[1]} held-out photos ({CROP}-px centre crops"
             f"{clean}), {cpu_name()}.", "",
             "| reading | " + " | ".join(f"{a:g}" for a in knots) + " | above |",
             "| --- |" + " ---: |" * (len(knots) + 1),
             "| level | " + " | ".join(f"{b:g}" for b in y) + " | reading |", "",
             "Mean PSNR (dB) of the crops reading under the last knot (the curve changes no other).", "",
             "| condition | crops | reading as level | curve | best single level | each crop's best |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for i, c in enumerate(names):
        ok = ~np.isnan(psnr[i, :, 0])
        if not ok.any():
            lines.append(f"| {c} | 0 | | | | |")
            continue
        p = psnr[i, ok]
        single = p.mean(axis=0)
        lines.append(f"| {c} | {ok.sum()} | {ident[i, ok].mean():.2f} | {curved[i, ok].mean():.2f} | "
                     f"{single.max():.2f} (level {levels[single.argmax()]:g}) | {p.max(axis=1).mean():.2f} |")
    swept = ~np.isnan(psnr[..., 0])
    lines.append(f"| mean of the swept crops | {int(swept.sum())} | {np.nanmean(ident):.2f} | "
                 f"{np.nanmean(curved):.2f} | | {psnr[swept].max(axis=1).mean():.2f} |")
    odd, even = np.arange(readings.shape[1]) % 2 == 1, np.arange(readings.shape[1]) % 2 == 0
    y_odd = fit(knots, readings[:, odd], psnr[:, odd], levels)
    held = score(y_odd, knots, readings[:, even], psnr[:, even], levels)
    base = score(knots, knots, readings[:, even], psnr[:, even], levels)
    full = score(y, knots, readings[:, even], psnr[:, even], levels)
    lines += ["", f"Fitted on the odd photos, scored on the even ones: {np.nanmean(base):.2f} dB with the reading, "
              f"{np.nanmean(held):.2f} with that curve ({' '.join(f'{b:g}' for b in y_odd)}), "
              f"{np.nanmean(full):.2f} with the curve fitted on all."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a noise-map model folder, checkpoint folder or Hub repo id")
    ap.add_argument("--output_dir", type=Path, required=True,
                    help="where the model with its fitted curve is written (a new or empty folder)")
    ap.add_argument("--knots", default=KNOTS,
                    help=f"the curve's readings, increasing from 0 (default {KNOTS}); from the last on it is the identity")
    ap.add_argument("--levels", default=LEVELS,
                    help="the levels each crop is restored at, comma-separated, covering 0 to the last knot "
                         "(default 0,1,...,15)")
    ap.add_argument("--sweep", type=Path, default=None,
                    help="reuse a level_sweep.npz written by an earlier run on the same model, knots and levels")
    add_heldout_arguments(ap, limit=True)
    args = ap.parse_args(argv)
    knots = np.array([float(v) for v in args.knots.split(",")])
    levels = np.array([float(v) for v in args.levels.split(",")])
    if knots[0] != 0 or (np.diff(knots) <= 0).any():
        ap.error("--knots: increasing readings starting at 0")
    if (np.diff(levels) <= 0).any() or levels[0] > 0 or levels[-1] < knots[-1]:
        ap.error("--levels: increasing, from 0 to at least the last knot")
    if (args.output_dir / "model.safetensors").exists():
        ap.error(f"{args.output_dir} already holds a model: choose a new folder")
    model = DnCNN.from_pretrained(model_location(args.model))
    if not model.noise_map:
        ap.error(f"{args.model} is a blind model: it has no noise-level estimator")
    names = list(CONDITIONS)
    if args.sweep:  # its photos, less those with more own noise than asked now
        saved = np.load(args.sweep)
        if list(saved["conditions"]) != names or not np.array_equal(saved["levels"], levels):
            ap.error(f"{args.sweep} was swept over other conditions or levels")
        keep = saved["own_noise"] <= (np.inf if args.max_own_noise is None else args.max_own_noise)
        readings, psnr, own = saved["readings"][:, keep], saved["psnr"][:, keep], saved["own_noise"][keep]
    else:
        # a second copy: the fp32 engine folds BatchNorm in place, and `model` is saved unfolded below
        den = Denoiser(DnCNN.from_pretrained(model_location(args.model)).with_level_curve(None), engine="fp32")
        photos = crops(args.train_data_dir, args.validation_fraction, args.limit, args.max_own_noise)
        readings, psnr = sweep(den, photos, damaged(photos), levels, knots[-1])
        own = np.array([own_noise(p) for p in photos])
    if readings.shape[1] < 2:
        ap.error(f"{readings.shape[1]} held-out photo(s) of at least {CROP} px{clean_note(args.max_own_noise)}: "
                 "too few to fit a curve")
    y = fit(knots, readings, psnr, levels)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if not args.sweep:
        np.savez(args.output_dir / "level_sweep.npz", conditions=np.array(names), levels=levels,
                 readings=readings, psnr=psnr, own_noise=own)
    model.with_level_curve([[float(a), float(b)] for a, b in zip(knots, y)]).save_pretrained(args.output_dir)
    info = Path(model_location(args.model)) / "training_info.json"
    if info.is_file():
        shutil.copy(info, args.output_dir / "training_info.json")
    text = report(names, knots, y, readings, psnr, levels, args.model, clean_note(args.max_own_noise))
    (args.output_dir / "level_curve.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
