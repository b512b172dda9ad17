#!/usr/bin/env python
"""Does the real-photo damage (JPEG on the CPU above all) starve training? Measure it.

    python scripts/degradation_speed.py [--batch 32] [--patch 64] [--repeats 20] [--out docs/bench/degradation_speed.json]

Times, on the same clean training patches, (a) the synthetic mixture alone
(``real_noise.SYNTHETIC_ONLY``), (b) the shipped training mix (``real_noise.TRAIN_MIX``: the
synthetic mixture plus camera/correlated noise, grey and JPEG), and (c) one optimizer step of
the shipped network (forward, backward, Adam) in fp32, then reports training patches per
second with each: batch / (degradation + step). Median of ``--repeats``; CPU named in the JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from cleanvision.data import FolderImages, RandomPatches, list_images
from cleanvision.hardware import cpu_name
from cleanvision.inference import SHIPPED_MODEL
from cleanvision.model import DnCNN
from cleanvision.real_noise import SYNTHETIC_ONLY, TRAIN_MIX, training_batch

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "CBSD432"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--data", type=Path, default=TRAIN, help="clean training photos")
    ap.add_argument("--out", type=Path, default=Path("docs/bench/degradation_speed.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    patches = RandomPatches(FolderImages(list_images([args.data])[:64]), args.patch, 16)
    clean = torch.stack([patches[i] for i in range(args.batch)]).float() / 255.0

    model = DnCNN.from_pretrained(SHIPPED_MODEL).train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    _, noisy = training_batch(clean, TRAIN_MIX)

    def step():
        x = noisy.contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.mse_loss(x - model(x), noisy - clean)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    result = {"cpu": cpu_name(), "torch_threads": torch.get_num_threads(), "batch": args.batch,
              "patch": args.patch, "repeats": args.repeats, "seconds": {}, "patches_per_second": {}}
    s = result["seconds"]
    s["synthetic_only"] = median_seconds(lambda: training_batch(clean, SYNTHETIC_ONLY), args.repeats)
    s["train_mix"] = median_seconds(lambda: training_batch(clean, TRAIN_MIX), args.repeats)
    s["optimizer_step"] = median_seconds(step, max(3, args.repeats // 4))
    for name in ("synthetic_only", "train_mix"):
        result["patches_per_second"][name] = args.batch / (s[name] + s["optimizer_step"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
