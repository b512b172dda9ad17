#!/usr/bin/env python
"""Make the README's picture: noisy | restored | clean, for each noise type, with PSNR.

    python scripts/readme_figure.py [--model DIR_OR_REPO] [--out docs/example.png]

Images come from scikit-image (astronaut, coffee, chelsea); noise from cleanvision.noise with
fixed seeds, so anyone gets the same picture from the same weights.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np
from skimage import data

from cleanvision import Denoiser
from cleanvision.image_io import write_image
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import apply_noise

ROWS = [  # (image, crop, noise, label)
    (data.astronaut, (0, 256, 96, 352), {"sigma": 25}, "Gaussian sigma 25"),
    (data.coffee, (80, 336, 150, 406), {"salt_pepper": 0.1}, "salt & pepper 10%"),
    (data.chelsea, (20, 276, 100, 356), {"speckle_var": 0.04, "scribbles": 5, "thickness": (2, 4)},
     "speckle 0.04 + scribbles"),
    (data.astronaut, (250, 506, 200, 456), {"sigma": 15, "scribbles": 4, "thickness": 2, "salt_pepper": 0.05},
     "Gaussian 15 + scribbles + s&p 5%"),
]


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder or Hub repo id (default: the shipped model)")
    ap.add_argument("--out", default="docs/example.png")
    args = ap.parse_args()
    den = Denoiser.from_pretrained(args.model)
    rows = []
    for i, (load, (y0, y1, x0, x1), params, name) in enumerate(ROWS):
        clean = np.ascontiguousarray(load()[y0:y1, x0:x1])
        noisy, _ = apply_noise(clean, params, rng=i)
        restored = den(noisy)
        rows.append(np.hstack([
            label(noisy, f"{name}: {psnr_uint8(clean, noisy):.1f} dB"),
            label(restored, f"restored: {psnr_uint8(clean, restored):.1f} dB"),
            label(clean, "clean"),
        ]))
    write_image(args.out, np.vstack(rows), overwrite=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
