#!/usr/bin/env python
"""Average two models of the same architecture, tensor by tensor, into a new model folder.

    python scripts/average_weights.py runs/stage20 cleanvision/weights/default -o runs/stage20-avg

A fine-tune from the shipped weights on a changed mix moves some benchmark rows up and others
down; the mean of the two weight sets (a "model soup", Wortsman et al. 2022) often keeps most of
the gains and few of the losses, because both lie in one basin. BatchNorm running statistics are
averaged too. The output has the first model's config.json and its training_info.json with an
``averaged_with`` record (the second folder, both weights' sha256, the weight), so
``scripts/ship_model.py`` and the model card say how the weights were made.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision import DnCNN  # noqa: E402
from cleanvision.bench.sets import sha256_file  # noqa: E402


def average(a: dict, b: dict, weight: float) -> dict:
    """``weight``·a + (1 − weight)·b for float tensors; integer buffers (BatchNorm's batch count) from ``a``."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise SystemExit("average_weights: the two models have different tensors (not the same architecture)")
    return {k: (weight * a[k].double() + (1 - weight) * b[k].double()).to(a[k].dtype)
            if a[k].is_floating_point() else a[k] for k in a}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path, help="model folder whose config and training record the output keeps")
    ap.add_argument("second", type=Path, help="model folder to average with (same architecture)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="new model folder (must not exist)")
    ap.add_argument("--weight", type=float, default=0.5, help="share of the first model (default 0.5)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.weight <= 1.0:
        ap.error("--weight must be in [0, 1]")
    if args.out.exists():
        ap.error(f"{args.out} exists; choose a new folder")
    for folder in (args.first, args.second):
        if json.loads((folder / "config.json").read_text()) != json.loads((args.first / "config.json").read_text()):
            ap.error(f"{folder}/config.json differs from {args.first}/config.json")
    wa, wb = args.first / "model.safetensors", args.second / "model.safetensors"
    mixed = average(load_file(wa), load_file(wb), args.weight)
    args.out.mkdir(parents=True)
    (args.out / "config.json").write_text((args.first / "config.json").read_text())
    save_file(mixed, args.out / "model.safetensors")
    info_path = args.first / "training_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info["averaged_with"] = {"path": str(args.second), "weight_of_this_run": args.weight,
                             "this_run_sha256": sha256_file(wa)[:12], "other_sha256": sha256_file(wb)[:12],
                             "command": " ".join(["scripts/average_weights.py", *(argv or sys.argv[1:])])}
    (args.out / "training_info.json").write_text(json.dumps(info, indent=1) + "\n")
    DnCNN.from_pretrained(args.out)  # strict load: config and averaged weights agree
    print(f"wrote {args.out} ({args.weight:g} × {args.first} + {1 - args.weight:g} × {args.second})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
