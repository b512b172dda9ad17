#!/usr/bin/env python
"""Choose between noise-level estimators on held-out training photos, never on a test set.

    python scripts/estimator_check.py --model runs/noise-map --model runs/estimator-refit
    python scripts/estimator_check.py --model A --model B --restore --levels 0,4,8,12,16,25,50

``scripts/noise_level_report.py`` scores a finished model's estimator on the test sets, for the
record; choosing between estimators (a run's own, one refitted with ``train_accelerate.py
--train_only estimator``) must not read those. This reads ``Denoiser.estimate_noise_level`` —
the level auto mode restores with — on 256-px centre crops of the photos training holds out
(``heldout_check.heldout_files``), under damage of known level: Gaussian σ 5/10/25/50,
independent per colour or the same in every colour (luminance noise, what camera pipelines
leave), σ 10 and luminance σ 5 saved as JPEG quality 90, camera sensor noise (demosaiced,
luminance, the stand-in for real photos) alone and saved as JPEG 90; and damage whose level is 0:
undamaged, 10 % impulses, 3-6 strokes, JPEG quality 30 alone. Per model: the median level of
each condition, then the median relative error over the known-σ rows and the largest median
of the level-0 rows (the targets: at most 10 % and 2). A level is read to restore with:
``--restore`` also restores every damaged crop in auto mode with each model and reports the
mean PSNR, and ``--levels`` the first model's best fixed level per condition beside it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from heldout_check import add_heldout_arguments, heldout_files  # noqa: E402

from cleanvision.hardware import cpu_name  # noqa: E402
from cleanvision.image_io import read_image  # noqa: E402
from cleanvision.inference import Denoiser, model_location  # noqa: E402
from cleanvision.metrics import psnr_uint8  # noqa: E402
from cleanvision.noise import add_salt_pepper_noise, add_scribbles, jpeg_uint8  # noqa: E402
from cleanvision.noise_level import reduce_channels  # noqa: E402
from cleanvision.real_noise import camera_std, correlated_noise  # noqa: E402

CROP = 256


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _camera(level: float, jpeg: int = 0):
    """Camera sensor noise as a phone or camera leaves it: Poisson-Gaussian in linear light
    through the sRGB curve, demosaiced (spatially correlated), the same in every colour, scaled
    so that the median of its per-pixel std (the map's definition) is ``level``. The stand-in
    for real photos, whose noise hides from estimators that look for colour noise."""
    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        clean = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        n = correlated_noise(clean.shape, torch.tensor([1]), torch.tensor([1]), generator=g)
        cam = camera_std(clean, torch.tensor([4e-3]), torch.tensor([2e-5]))
        scale = level / 255.0 / float(reduce_channels(cam * n.std(dim=(2, 3), keepdim=True), 1).median())
        out = _u8(255.0 * (clean + scale * cam * n)[0].permute(1, 2, 0).numpy())
        return jpeg_uint8(out, jpeg) if jpeg else out
    return apply


def _gauss(s: float, luma: bool = False, jpeg: int = 0):
    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = rng.normal(0.0, s, img.shape[:2])[..., None] if luma else rng.normal(0.0, s, img.shape)
        out = _u8(img + n)
        return jpeg_uint8(out, jpeg) if jpeg else out
    return apply


#: condition -> (damage, the level a perfect estimator reads)
CONDITIONS = {
    **{f"σ {s}": (_gauss(s), float(s)) for s in (5, 10, 25, 50)},
    **{f"luminance σ {s}": (_gauss(s, luma=True), float(s)) for s in (5, 25)},
    "σ 10, JPEG 90": (_gauss(10, jpeg=90), 10.0),
    "luminance σ 5, JPEG 90": (_gauss(5, luma=True, jpeg=90), 5.0),
    "camera noise 8": (_camera(8), 8.0),
    "camera noise 8, JPEG 90": (_camera(8, jpeg=90), 8.0),
    "undamaged": (lambda img, rng: img, 0.0),
    "10 % impulses": (lambda img, rng: add_salt_pepper_noise(img, 0.1, rng), 0.0),
    "3-6 strokes": (lambda img, rng: add_scribbles(img, int(rng.integers(3, 7)), rng=rng), 0.0),
    "JPEG 30": (lambda img, rng: jpeg_uint8(img, 30), 0.0),
}


def own_noise(photo: np.ndarray) -> float:
    """The noise a photo carries before any is added: ``skimage.restoration.estimate_sigma``
    (wavelet, averaged over colours). A crop that has some is a poor reference: restoring it
    well is scored as damage, so it pulls a choice towards leaving noise in."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(photo, channel_axis=-1, average_sigmas=True))


def crops(train_dirs: list[Path], fraction: float, limit: int | None,
          max_own_noise: float | None = None) -> list[np.ndarray]:
    """Centre crops of the held-out photos large enough for one (and, with ``max_own_noise``,
    clean enough to be a reference: :func:`own_noise` at most that)."""
    out = []
    for f in heldout_files(train_dirs, fraction):
        img = read_image(f)[..., :3]
        h, w = img.shape[:2]
        if img.ndim == 3 and min(h, w) >= CROP:
            crop = np.ascontiguousarray(img[(h - CROP) // 2:(h + CROP) // 2, (w - CROP) // 2:(w + CROP) // 2])
            if max_own_noise is None or own_noise(crop) <= max_own_noise:
                out.append(crop)
    return out[:limit]


def damaged(photos: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Every condition's damaged crops, drawn once so every model reads the same ones."""
    out = {}
    for i, (name, (damage, _)) in enumerate(CONDITIONS.items()):
        rng = np.random.default_rng(i)
        out[name] = [damage(p, rng) for p in photos]
    return out


def levels(den: Denoiser, noisy: dict[str, list[np.ndarray]], desc: str) -> dict[str, float]:
    """Median estimated level per condition."""
    return {name: statistics.median(den.estimate_noise_level(x) for x in xs)
            for name, xs in tqdm(noisy.items(), desc=desc, leave=False)}


def restored_psnr(den: Denoiser, photos: list[np.ndarray], noisy: dict[str, list[np.ndarray]], desc: str,
                  level: float | None = None) -> dict[str, float]:
    """Mean PSNR per condition of the restorations at ``level`` (``None``: auto mode)."""
    return {name: statistics.mean(psnr_uint8(p, den(x, noise_level=level)) for p, x in zip(photos, xs))
            for name, xs in tqdm(noisy.items(), desc=desc, leave=False)}


def restore_markdown(models: list[str], rows: dict[str, dict[str, float]],
                     fixed: dict[float, dict[str, float]]) -> str:
    """Auto mode's PSNR per model, and the first model's best fixed level of ``fixed``."""
    head = "| condition | " + " | ".join(f"`{m}`" for m in models) + (" | best fixed level, first model |" if fixed else " |")
    lines = ["Mean PSNR (dB) of the restorations in auto mode, against the undamaged crops.", "", head,
             "| --- |" + " ---: |" * (len(models) + bool(fixed))]
    for c in CONDITIONS:
        cells = [f"{rows[m][c]:.2f}" for m in models]
        if fixed:
            best = max(fixed, key=lambda v: fixed[v][c])
            cells.append(f"{fixed[best][c]:.2f} (level {best:g})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def clean_note(max_own_noise: float | None) -> str:
    return "" if max_own_noise is None else f" whose own noise is at most {max_own_noise:g}"


def summary(row: dict[str, float]) -> tuple[float, float]:
    """(median relative error over the known-σ rows, largest median of the level-0 rows)."""
    rel = [abs(row[c] - t) / t for c, (_, t) in CONDITIONS.items() if t > 0]
    return statistics.median(rel), max(row[c] for c, (_, t) in CONDITIONS.items() if t == 0)


def markdown(models: list[str], rows: dict[str, dict[str, float]], n: int, clean: str = "") -> str:
    lines = [f"Estimated level (median over {n} held-out photos, {CROP}-px centre crops{clean}), {cpu_name()}.", "",
             "| condition | true level | " + " | ".join(f"`{m}`" for m in models) + " |",
             "| --- | ---: |" + " ---: |" * len(models)]
    for c, (_, t) in CONDITIONS.items():
        lines.append(f"| {c} | {t:g} | " + " | ".join(f"{rows[m][c]:.2f}" for m in models) + " |")
    sums = {m: summary(rows[m]) for m in models}
    lines.append("| median relative error (known σ) | | " + " | ".join(f"{100 * sums[m][0]:.1f} %" for m in models) + " |")
    lines.append("| largest level where none (level 0) | | " + " | ".join(f"{sums[m][1]:.2f}" for m in models) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="a noise-map model folder, checkpoint folder or Hub repo id (repeatable)")
    add_heldout_arguments(ap, limit=True)
    ap.add_argument("--restore", action="store_true",
                    help="also restore every damaged crop in auto mode with each model and report the PSNR: "
                         "what a level read is for")
    ap.add_argument("--levels", default="",
                    help="with --restore: also restore with the first model at each of these fixed levels "
                         "(comma-separated, e.g. 0,2,4,6,8,10,12,16,25,50) and report the best per condition")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = ap.parse_args(argv)
    dens = {}
    for m in args.model:
        den = Denoiser.from_pretrained(model_location(m), engine="fp32")  # the estimator runs in fp32 anyway
        if not den.takes_noise_level:
            ap.error(f"{m} is a blind model: it has no noise-level estimator")
        dens[m] = den
    photos = crops(args.train_data_dir, args.validation_fraction, args.limit, args.max_own_noise)
    if not photos:
        ap.error(f"no held-out photo of at least {CROP} px in {', '.join(map(str, args.train_data_dir))}")
    noisy = damaged(photos)
    rows = {m: levels(den, noisy, m) for m, den in dens.items()}
    text = markdown(args.model, rows, len(photos), clean_note(args.max_own_noise))
    if args.restore:
        first = dens[args.model[0]]
        fixed = {float(v): restored_psnr(first, photos, noisy, f"level {v}", float(v))
                 for v in args.levels.split(",") if v.strip()}
        text += "\n" + restore_markdown(args.model, {m: restored_psnr(den, photos, noisy, m)
                                                      for m, den in dens.items()}, fixed)
    elif args.levels:
        ap.error("--levels goes with --restore")
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
