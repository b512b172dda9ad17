#!/usr/bin/env python
"""Copy a trained run into the package as the shipped default model, and record how it was made.

    python scripts/ship_model.py runs/cpu-ffdnet12 [--checkpoint runs/cpu-ffdnet12/checkpoint-8000]

Copies config.json + model.safetensors (strictly loadable, checked) and training_info.json
into cleanvision/weights/default/, and rewrites the training block of model_card.md from
training_info.json, so the card states the command, data, steps, wall time and hardware
that actually produced the weights.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

from cleanvision import DnCNN
from cleanvision.bench import training_stages

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "cleanvision" / "weights" / "default"
CARD = ROOT / "model_card.md"


def training_block(info: dict) -> str:
    """A table of each training stage (a run started ``--init_from`` another records it)."""
    stages = training_stages(info)
    if len(stages) == 1:
        return stage_table(stages[0])
    return "\n\n".join(f"Stage {i + 1} of {len(stages)}:\n\n" + stage_table(s) for i, s in enumerate(stages))


def degradations(info: dict) -> str:
    """What the stage trained on (records from before real-photo damage had only the synthetic mixture)."""
    d = info.get("degradations")
    if not d:
        return "the synthetic mixture (`cleanvision.noise`)"
    return (f"{d['real_fraction']:.0%} of patches with real-photo damage (`cleanvision.real_noise`: correlated, "
            f"camera and JPEG), the rest the synthetic mixture; {d['grey_fraction']:.0%} made grey first"
            + (f"; {d['clean_fraction']:.0%} left undamaged" if d.get("clean_fraction") else ""))


def stage_table(info: dict) -> str:
    hours = info["wall_seconds"] / 3600
    # records older than "stopped_by" say only whether the step limit was reached
    stopped = info.get("stopped_by", "step limit" if info.get("finished") else "time budget")
    avg = info.get("averaged_with")  # scripts/average_weights.py
    data = info["train_data"] if isinstance(info["train_data"], str) else ", ".join(info["train_data"])
    rows = [
        ("command", f"`{info['command']}`"),
        ("data", f"{data} ({info['train_images']} images; {info['validation_images']} held-out crops for validation)"),
        ("steps", f"{info['steps']:,} optimizer steps, {info['patches_seen']:,} patches"),
        ("wall time", f"{hours:.2f} h" + ("" if stopped == "step limit" else f" (stopped by the {stopped})")),
        ("hardware", f"{info['hardware']}, {info['processes']} process(es), {info['mixed_precision']} autocast"),
        ("degradations", degradations(info)),
        ("validation" + (" (this run, before averaging)" if avg else ""),
         f"PSNR {info.get('val/psnr', float('nan')):.2f} dB, SSIM {info.get('val/ssim', float('nan')):.4f} "
         "(held-out crops, benchmark `mixed` noise ranges)"),
    ]
    if avg:
        w = avg["weight_of_this_run"]
        rows.append(("weights", f"{w:g} × this run's (sha256 `{avg['this_run_sha256']}`) + {1 - w:g} × "
                                f"`{avg['path']}`'s (sha256 `{avg['other_sha256']}`), tensor by tensor: `{avg['command']}`"))
    return "\n".join(["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training output folder (save_pretrained + training_info.json)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="ship this checkpoint's weights instead")
    args = ap.parse_args()
    info = json.loads((args.run / "training_info.json").read_text())
    weights = (args.checkpoint or args.run) / "model.safetensors"
    DEST.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.run / "config.json", DEST / "config.json")
    shutil.copy(weights, DEST / "model.safetensors")
    if args.checkpoint:
        info["shipped_checkpoint"] = args.checkpoint.name
    (DEST / "training_info.json").write_text(json.dumps(info, indent=1) + "\n")
    DnCNN.from_pretrained(DEST)  # strict load: config and weights agree
    card = CARD.read_text()
    card = re.sub(r"(<!-- training:start -->\n).*?(<!-- training:end -->)",
                  lambda m: m.group(1) + training_block(info) + "\n" + m.group(2), card, flags=re.S)
    CARD.write_text(card)
    print(f"shipped {weights} -> {DEST}")


if __name__ == "__main__":
    main()
