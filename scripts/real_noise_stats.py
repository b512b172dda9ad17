"""What the noise of real photo pairs looks like, so the training damage can be shaped like it.

For each ``*_real`` / ``*_mean`` pair of a real set (PolyU, CC15) the noise is ``real − mean``;
this prints its σ per channel (0-255), the correlation between channels and between
neighbouring pixels (lag 1 and 2, mean over channels), and, with ``--model``, the model's PSNR,
its PSNR when red and blue are swapped on the way in and back on the way out (a model that
treats the channels alike scores the same), and the share of the noise it removes (the
least-squares fit of the model's estimate to the true noise: 1 is all of it). These are the
figures ``model_card.md`` quotes for the real-photo degradations.

    python scripts/real_noise_stats.py ../shared/data/real/CC15 ../shared/data/real/PolyU --model
    python scripts/real_noise_stats.py ../shared/data/real/CC15 --model runs/stage10
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cleanvision.bench.sets import real_pairs
from cleanvision.image_io import read_image
from cleanvision.metrics import psnr_uint8


def noise_stats(noisy: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """σ per channel, channel and neighbour correlations of ``noisy − truth`` (H×W×3 arrays)."""
    n = noisy.astype(np.float64) - truth.astype(np.float64)
    ch = np.corrcoef(n.reshape(-1, 3).T)

    def lag(k: int) -> float:
        return float(np.mean([np.corrcoef(n[:, :-k, c].ravel(), n[:, k:, c].ravel())[0, 1] for c in range(3)]))

    sd = n.std(axis=(0, 1))
    return {"σ R": sd[0], "σ G": sd[1], "σ B": sd[2], "corr RG": ch[0, 1], "corr RB": ch[0, 2],
            "corr GB": ch[1, 2], "lag 1": lag(1), "lag 2": lag(2)}


def removed_share(noisy: np.ndarray, truth: np.ndarray, restored: np.ndarray) -> float:
    """How much of the true noise the model's noise estimate (noisy − restored) accounts for."""
    n = noisy.astype(np.float64) - truth
    e = noisy.astype(np.float64) - restored
    return float((e * n).sum() / (n * n).sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders of *_real / *_mean pairs")
    p.add_argument("--model", nargs="?", const="", default=None, metavar="FOLDER",
                   help="also measure a model (default: the shipped one): PSNR, PSNR with R and B "
                        "swapped, share of the noise removed")
    args = p.parse_args(argv)
    den = None
    if args.model is not None:
        from cleanvision import Denoiser
        den = Denoiser.from_pretrained(args.model or None)
    for folder in args.folders:
        pairs = real_pairs(folder)
        if not pairs:
            p.error(f"{folder}: no *_real / *_mean pairs")
        rows = []
        for name, (noisy_path, truth_path) in sorted(pairs.items()):
            noisy, truth = read_image(noisy_path), read_image(truth_path)
            if noisy.ndim != 3 or noisy.shape != truth.shape:
                p.error(f"{noisy_path}: expected a colour pair of equal shapes, got {noisy.shape} and {truth.shape}")
            row = noise_stats(noisy, truth)
            if den is not None:
                restored = den(noisy)
                row["PSNR"] = psnr_uint8(truth, restored)
                row["PSNR R↔B"] = psnr_uint8(truth, den(noisy[..., ::-1].copy())[..., ::-1])
                row["removed"] = removed_share(noisy, truth, restored)
            rows.append(row)
        keys = list(rows[0])
        print(f"{folder} ({len(rows)} pairs): " + ", ".join(
            f"{k} {np.mean([r[k] for r in rows]):.2f} [{np.min([r[k] for r in rows]):.2f}–"
            f"{np.max([r[k] for r in rows]):.2f}]" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
