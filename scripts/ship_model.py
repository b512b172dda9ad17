#!/usr/bin/env python
"""Copy a trained run into the package as the shipped default model, and record how it was made.

    python scripts/ship_model.py runs/cpu-ffdnet12 [--checkpoint runs/cpu-ffdnet12/checkpoint-8000]

Copies config.json + model.safetensors (strictly loadable, checked) and training_info.json
into cleanvision/weights/default/, then regenerates the documents (scripts/update_tables.py),
so the model card's training summary and docs/training_history.md's stage tables state the
command, data, steps, wall time and hardware that actually produced the weights.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import update_tables

from cleanvision import DnCNN

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "cleanvision" / "weights" / "default"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training output folder (save_pretrained + training_info.json)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="ship this checkpoint's weights instead")
    ap.add_argument("--phase-correction", action="store_true",
                    help="switch on the model's phase correction in the shipped config (removes the "
                    "2-pixel dot grid; scripts/pixel_pattern.py --phase-correction measures it)")
    args = ap.parse_args()
    info = json.loads((args.run / "training_info.json").read_text())
    weights = (args.checkpoint or args.run) / "model.safetensors"
    DEST.mkdir(parents=True, exist_ok=True)
    config = json.loads((args.run / "config.json").read_text())
    if args.phase_correction:
        config["phase_correction"] = True
    (DEST / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copy(weights, DEST / "model.safetensors")
    if args.checkpoint:
        info["shipped_checkpoint"] = args.checkpoint.name
    (DEST / "training_info.json").write_text(json.dumps(info, indent=1) + "\n")
    DnCNN.from_pretrained(DEST)  # strict load: config and weights agree
    print(f"shipped {weights} -> {DEST}")
    update_tables.main([])


if __name__ == "__main__":
    main()
