#!/usr/bin/env python
"""Make the README's pictures: noisy | restored | clean, with PSNR.

    python scripts/readme_figure.py [--model DIR_OR_REPO] [--out docs/example.png] [--real-out docs/real_example.png]

``--out``: one row per synthetic noise type. Images come from scikit-image (astronaut, coffee,
chelsea); noise from cleanvision.noise with fixed seeds, so anyone gets the same picture from
the same weights.

``--real-out``: crops of real camera photos with their ground truth (the mean of many shots)
from ``../shared/data/real`` (PolyU: Xu et al. 2018, non-commercial research use; CC15: Nam et
al. 2016), and a grey photo (a BSD68 test image with Gaussian noise σ 25, grey in, grey out).
PSNR is of the crop; each row names its source.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from cleanvision import Denoiser
from cleanvision.image_io import read_image, write_image
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import add_gaussian_noise, apply_noise

ROWS = [  # (image, crop, noise, label)
    (data.astronaut, (0, 256, 96, 352), {"sigma": 25}, "Gaussian sigma 25"),
    (data.coffee, (80, 336, 150, 406), {"salt_pepper": 0.1}, "salt & pepper 10%"),
    (data.chelsea, (20, 276, 100, 356), {"speckle_var": 0.04, "scribbles": 5, "thickness": (2, 4)},
     "speckle 0.04 + scribbles"),
    (data.astronaut, (250, 506, 200, 456), {"sigma": 15, "scribbles": 4, "thickness": 2, "salt_pepper": 0.05},
     "Gaussian 15 + scribbles + s&p 5%"),
]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_ROWS = [  # (path stem under ../shared/data, crop corner, size, label)
    ("real/PolyU/Canon80D_8_8_6400_comproom_11", (150, 150), 256, "PolyU, Canon 80D ISO 6400"),
    ("real/CC15/d800_iso3200_1", (200, 120), 256, "CC15, Nikon D800 ISO 3200"),
    ("BSD68/test003", (60, 40), 256, "grey BSD68 + Gaussian 25"),
]


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy() if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def row(den: Denoiser, noisy: np.ndarray, clean: np.ndarray, name: str, truth: str = "clean") -> np.ndarray:
    restored = den(noisy)
    return np.hstack([label(noisy, f"{name}: {psnr_uint8(clean, noisy):.1f} dB"),
                      label(restored, f"restored: {psnr_uint8(clean, restored):.1f} dB"),
                      label(clean, truth)])


def load_real(stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean): a real pair ``X_real``/``X_mean``, or a grey test image with seeded noise σ 25."""
    base = DATA / stem
    real = sorted(base.parent.glob(base.name + "_real.*"))
    if real:
        return read_image(real[0]), read_image(next(base.parent.glob(base.name + "_mean.*")))
    clean = read_image(next(base.parent.glob(base.name + ".*")))
    return add_gaussian_noise(clean, 25, rng=0), clean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder or Hub repo id (default: the shipped model)")
    ap.add_argument("--out", default="docs/example.png", help="synthetic-noise figure")
    ap.add_argument("--real-out", default="docs/real_example.png", help="real-photo and grey figure")
    args = ap.parse_args()
    den = Denoiser.from_pretrained(args.model)
    rows = []
    for i, (load, (y0, y1, x0, x1), params, name) in enumerate(ROWS):
        clean = np.ascontiguousarray(load()[y0:y1, x0:x1])
        rows.append(row(den, apply_noise(clean, params, rng=i)[0], clean, name))
    write_image(args.out, np.vstack(rows), overwrite=True)
    rows = []
    for stem, (y, x), size, name in REAL_ROWS:
        noisy, clean = load_real(stem)
        win = (slice(y, y + size), slice(x, x + size))
        rows.append(row(den, noisy[win], clean[win], name, "ground truth" if stem.startswith("real/") else "clean"))
    write_image(args.real_out, np.vstack(rows), overwrite=True)
    print(f"wrote {args.out} and {args.real_out}")


if __name__ == "__main__":
    main()
