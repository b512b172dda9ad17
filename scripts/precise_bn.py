#!/usr/bin/env python
"""Re-estimate a model's BatchNorm statistics over many training batches ("precise BN").

    python scripts/precise_bn.py cleanvision/weights/default -o runs/shipped-pbn --batches 200

Training leaves each BatchNorm's running mean and variance as an exponential average of its
last few dozen batches (momentum 0.1), and averaging two models' weights averages those
statistics too, though they no longer describe the averaged network. This replaces them with
the plain mean over ``--batches`` batches of the training mix (``TRAIN_MIX``) on the photos
training uses (its held-out 5 % excluded), weights untouched — the step SWA and "Rethinking
Batch in BatchNorm" (Wu & Johnson 2021) prescribe. Score the result against the original with
``scripts/heldout_check.py`` before using it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from cleanvision import DnCNN  # noqa: E402
from cleanvision.data import FolderImages, RandomPatches, holdout_split, list_images  # noqa: E402
from cleanvision.real_noise import TRAIN_MIX, training_batch  # noqa: E402
from heldout_check import TRAIN_DIRS  # noqa: E402  (one list of the shipped model's training folders)


def training_loader(dirs, validation_fraction: float = 0.05, patch_size: int = 64,
                    batch_size: int = 32) -> tuple[DataLoader, int]:
    """Shuffled batches of uint8 crops from the photos training uses (its held-out share left
    out, as ``train_accelerate.py`` splits it), and how many photos that is."""
    files, _ = holdout_split(list_images([str(d) for d in dirs]), validation_fraction)
    return DataLoader(RandomPatches(FolderImages(files), patch_size, 64), batch_size=batch_size,
                      shuffle=True, drop_last=True), len(files)


@torch.no_grad()
def reestimate(model: DnCNN, batches, n: int) -> int:
    """Reset every BatchNorm and average its batch statistics over ``n`` degraded batches."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        raise ValueError("the model has no BatchNorm layers")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative mean over the batches seen
    model.train()
    seen = 0
    for clean in batches:
        if seen == n:
            break
        _, noisy = training_batch(clean.float() / 255.0, TRAIN_MIX)
        model(noisy)
        seen += 1
    model.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return seen


def model_tool_parser(description: str) -> argparse.ArgumentParser:
    """The arguments this script shares with deepen_model.py: a model folder in, a new folder
    out, and the training crops (photos, held-out share, seed) it reads."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="model folder (config.json + model.safetensors)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="new model folder (must not exist)")
    ap.add_argument("--train_data_dir", nargs="+", type=Path, default=TRAIN_DIRS,
                    help="photos to crop from (default: the shipped model's training folders)")
    ap.add_argument("--validation_fraction", type=float, default=0.05,
                    help="the held-out share to leave out, as in train_accelerate.py")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the crops and the damage")
    return ap


def write_record(model_dir: Path, out: Path, key: str, record: dict, script: str, argv: list[str] | None) -> None:
    """``out/training_info.json``: the source model's record plus what ``script`` did, under ``key``."""
    info_path = model_dir / "training_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info[key] = {**record, "command": " ".join([f"scripts/{script}", *(argv or sys.argv[1:])])}
    (out / "training_info.json").write_text(json.dumps(info, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = model_tool_parser(__doc__)
    ap.add_argument("--batches", type=int, default=200, help="batches to average over (default 200)")
    ap.add_argument("--batch_size", type=int, default=32, help="patches a batch (default 32, as training)")
    ap.add_argument("--patch_size", type=int, default=64, help="patch side, px (default 64, as training)")
    args = ap.parse_args(argv)
    if args.out.exists():
        ap.error(f"{args.out} exists; choose a new folder")
    if args.batches < 1:
        ap.error("--batches must be at least 1")
    torch.manual_seed(args.seed)
    loader, n_images = training_loader(args.train_data_dir, args.validation_fraction, args.patch_size,
                                       args.batch_size)
    model = DnCNN.from_pretrained(args.model)
    seen = reestimate(model, loader, args.batches)
    model.save_pretrained(args.out)
    write_record(args.model, args.out, "precise_bn",
                 {"batches": seen, "batch_size": args.batch_size, "patch_size": args.patch_size,
                  "seed": args.seed, "train_images": n_images}, "precise_bn.py", argv)
    print(f"wrote {args.out}: BatchNorm statistics over {seen} batches of {args.batch_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
