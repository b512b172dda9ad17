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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision import DnCNN  # noqa: E402
from cleanvision.model import WEIGHTS_FILE  # noqa: E402
from cleanvision.bench.sets import sha256_file  # noqa: E402


def average(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """``weight``·a + (1 − weight)·b for float tensors of two state dicts with the same keys;
    integer buffers (BatchNorm's batch count) from ``a``."""
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
    if json.loads((args.second / "config.json").read_text()) != json.loads((args.first / "config.json").read_text()):
        ap.error(f"{args.second}/config.json differs from {args.first}/config.json (not the same architecture)")
    a, b = DnCNN.from_pretrained(args.first), DnCNN.from_pretrained(args.second)  # strict loads
    a.load_state_dict(average(a.state_dict(), b.state_dict(), args.weight))
    a.save_pretrained(args.out)  # config.json + model.safetensors, as every model folder here
    wa, wb = args.first / WEIGHTS_FILE, args.second / WEIGHTS_FILE
    info_path = args.first / "training_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info["averaged_with"] = {"path": str(args.second), "weight_of_this_run": args.weight,
                             "this_run_sha256": sha256_file(wa)[:12], "other_sha256": sha256_file(wb)[:12],
                             "command": " ".join(["scripts/average_weights.py", *(argv or sys.argv[1:])])}
    (args.out / "training_info.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {args.out} ({args.weight:g} × {args.first} + {1 - args.weight:g} × {args.second})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
