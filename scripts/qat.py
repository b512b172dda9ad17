#!/usr/bin/env python
"""Quantisation-aware fine-tuning: a float model folder in, a model folder with its int8 graph out.

    python scripts/qat.py cleanvision/weights/default --output_dir runs/qat --max_train_steps 3000
    python scripts/qat.py cleanvision/weights/default --output_dir runs/qat --resume_from_checkpoint latest

The model's BatchNorm is folded, every convolution gets the int8 rounding ONNX Runtime's QDQ
convolution does (:mod:`cleanvision.quantize`), activation scales are calibrated on a few
training batches, and the network is fine-tuned on the degradations and photos the float model
was trained on (read from its ``training_info.json``: the same ``TrainingMix``, the same
folders, the same 5 % held out by file name), with the float model's residual loss (MSE to the
truth; ``--distill W`` mixes in the float model's own prediction as a second target).
Checkpoints are Accelerate's (``save_state``, every ``--checkpointing_steps``);
``--resume_from_checkpoint latest`` continues at the saved step with the run's own quantisation
settings (``qat_spec.json``).

At the end ``--output_dir`` is a model folder: the float model's ``config.json``,
``model.safetensors`` and ``training_info.json`` copied unchanged (the float engines keep
running the float weights), ``model_int8.onnx`` (the int8 graph, recording the float weights'
sha256, so a graph beside retrained weights is refused) and ``qat_info.json`` (steps, data,
validation PSNR of the float model and of the int8 one on the held-out crops). Measure the
graph against the gate with ``scripts/int8_gate.py``; ship it by copying ``model_int8.onnx``
beside the same ``model.safetensors``.

Needs the [onnx] extra (the export) and Accelerate (a default dependency).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision import metrics  # noqa: E402
from cleanvision.data import FolderImages, RandomPatches, center_crop, holdout_split, list_images  # noqa: E402
from cleanvision.image_io import give_open_mode  # noqa: E402
from cleanvision.inference import load_model  # noqa: E402
from cleanvision.int8 import INT8_FILE, write_graph  # noqa: E402
from cleanvision.model import WEIGHTS_FILE, DnCNN  # noqa: E402
from cleanvision.noise import BENCH_RANGES, NoiseRanges, random_mixture  # noqa: E402
from cleanvision.noise_level import IMPULSE_CONTRAST, training_map  # noqa: E402
from cleanvision.quantize import QuantSpec, int8_onnx_bytes, prepare_qat  # noqa: E402
from cleanvision.real_noise import TRAIN_MIX, RealRanges, TrainingMix, training_batch  # noqa: E402

logger = get_logger("qat")
#: The shipped model's training folders, used when a model records none that exist here.
TRAIN_DIRS = [ROOT.parent / "shared" / "data" / "train" / d for d in ("CBSD432", "Sun_Hays80", "wikipedia-photos")]
SPEC_FILE, INFO_FILE = "qat_spec.json", "qat_info.json"
COPIED = ("config.json", WEIGHTS_FILE, "training_info.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="float model folder (config.json + model.safetensors)")
    p.add_argument("--output_dir", type=Path, required=True, help="run folder: checkpoints, then the int8 model folder")
    d = p.add_argument_group("data (default: what the float model was trained on)")
    d.add_argument("--train_data_dir", nargs="+", type=Path, default=None,
                   help="photo folders (default: the model's training_info.json train_data, else CBSD432, "
                   "Sun_Hays80 and wikipedia-photos)")
    d.add_argument("--validation_fraction", type=float, default=0.05,
                   help="share held out by file name, as train_accelerate.py (default: 0.05)")
    d.add_argument("--max_validation_images", type=int, default=24, help="held-out crops scored (default: 24)")
    d.add_argument("--validation_crop", type=int, default=256, help="side of each held-out crop (default: 256)")
    d.add_argument("--patch_size", type=int, default=64, help="side of the training crops (default: 64)")
    d.add_argument("--patches_per_image", type=int, default=64, help="crops per photo per pass (default: 64)")
    q = p.add_argument_group("quantisation (fixed for a run: a resumed run keeps its own)")
    q.add_argument("--weight_max", type=int, default=127, choices=(127, 64),
                   help="largest int8 weight: 127, or 64 (7-bit) so ONNX Runtime's u8×s8 sums cannot saturate "
                   "on AVX2 CPUs without VNNI (default: 127)")
    q.add_argument("--quantise_last", action="store_true",
                   help="also round the last convolution's output (the predicted noise) to 8 bits; by default "
                   "that convolution, about 1%% of the work, runs in float")
    q.add_argument("--learn_weight_scale", action="store_true",
                   help="learn each output channel's weight scale (LSQ) instead of taking its largest weight")
    q.add_argument("--fixed_activation_ranges", action="store_true",
                   help="keep each activation range at its calibrated least-squares value instead of learning it "
                   "(LSQ): learned ranges shrink toward the common case and clip the activations impulses cause")
    q.add_argument("--equalise", type=float, default=0.5, metavar="S",
                   help="before calibration, rescale channels (0 to 1: how far; 0 = not) so each activation's "
                   "channels span more nearly its one uint8 range; the float model's output is unchanged. 0.5 "
                   "lost least of 0, 0.5 and 1 on the int8 gate (docs/speed.md) (default: 0.5)")
    q.add_argument("--calibration_batches", type=int, default=8,
                   help="training batches the first activation scales are fitted on (default: 8)")
    t = p.add_argument_group("optimisation")
    t.add_argument("--max_train_steps", type=int, default=3000, help="optimizer steps in all, across resumes (default: 3000)")
    t.add_argument("--max_train_minutes", type=float, default=None, help="stop (and save) after this long in this invocation")
    t.add_argument("--train_batch_size", type=int, default=16, help="crops per step (default: 16)")
    t.add_argument("--learning_rate", type=float, default=2e-5, help="peak Adam learning rate (default: 2e-5)")
    t.add_argument("--lr_warmup_steps", type=int, default=50, help="linear warm-up, then cosine to 0 (default: 50)")
    t.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="weight of the float model's own prediction as a second target (distillation): the loss is "
                   "(1-W)·MSE(to the truth) + W·MSE(to the float model); 0 = the truth only (default: 0)")
    t.add_argument("--large_damage_weight", type=float, default=1.0, metavar="W",
                   help="weight in the loss of pixels damaged by more than %(large)d grey levels (impulses, "
                   "strokes), whose large corrections int8 rounds worst; 1 = every pixel alike (default: 1)"
                   % {"large": round(LARGE_DAMAGE * 255)})
    t.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping (0: none; default: 1)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--dataloader_num_workers", type=int, default=0, help="data-loader processes (default: 0)")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpointing_steps", type=int, default=250, help="save every N steps (default: 250)")
    c.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep the newest N (default: 2)")
    c.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder or 'latest'")
    c.add_argument("--validation_steps", type=int, default=500, help="score the held-out crops every N steps (default: 500)")
    return p


def training_mix(info: dict) -> TrainingMix:
    """The ``TrainingMix`` a model's training_info.json records (its last stage's), else the default."""
    d = info.get("degradations")
    if not d:
        return TRAIN_MIX
    tup = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731 - JSON lists back to tuples
    return TrainingMix(real=d["real_fraction"], grey=d["grey_fraction"], clean=d["clean_fraction"],
                       synthetic=NoiseRanges(**{k: tup(v) for k, v in d["synthetic_ranges"].items()}),
                       ranges=RealRanges(**{k: tup(v) for k, v in d["real_ranges"].items()}),
                       jpeg_level=d.get("map_jpeg_level", False))


def training_dirs(info: dict, given: list[Path] | None) -> list[Path]:
    """``given``, else the folders the model records (relative to the repository), else TRAIN_DIRS."""
    if given:
        return given
    recorded = info.get("train_data")
    recorded = [recorded] if isinstance(recorded, str) else recorded or []
    dirs = [p if p.is_absolute() else ROOT / p for p in map(Path, recorded)]
    return dirs if dirs and all(d.is_dir() for d in dirs) else TRAIN_DIRS


def checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


#: Damage (0-1 scale, any colour) above which a pixel counts as large damage for ``--large_damage_weight``:
#: the impulse test's contrast (cleanvision.noise_level.IMPULSE_CONTRAST), 64 grey levels.
LARGE_DAMAGE = IMPULSE_CONTRAST


def damage_weights(noisy: torch.Tensor, clean: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel loss weights (N×1×H×W): ``weight`` where the damage exceeds :data:`LARGE_DAMAGE`
    in any colour, 1 elsewhere. On impulse photos most of int8's extra error lies on those
    pixels (docs/speed.md, "Where int8 loses on impulses"), a few per cent of all."""
    large = ((noisy - clean).abs() > LARGE_DAMAGE).any(dim=1, keepdim=True)
    return 1.0 + (weight - 1.0) * large.to(noisy.dtype)


def weighted_mse(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error with per-pixel weights ``w`` (normalised by their mean, so weights
    of 1 give the plain MSE); ``None``: the plain MSE."""
    if w is None:
        return F.mse_loss(a, b)
    return ((a - b).pow(2) * w).mean() / w.mean()


def degraded(clean_uint8: torch.Tensor, mix: TrainingMix, map_channels: int):
    """(clean, noisy, map or None) for a batch of uint8 crops, degraded as the float model's training."""
    clean, noisy, sigma = training_batch(clean_uint8.float() / 255.0, mix, return_sigma=True)
    return clean, noisy, training_map(sigma, map_channels) if map_channels else None


def validation_crops(files: list[Path], n: int, crop: int, channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(clean, noisy) held-out centre crops with the benchmark's mixture, as train_accelerate.py validates."""
    out = []
    for i, f in enumerate(files[:n]):
        clean = center_crop(FolderImages([f], channels)[0], crop)
        out.append((clean, random_mixture(clean, np.random.default_rng(1000 + i), BENCH_RANGES)[0]))
    return out


@torch.no_grad()
def validate(model: DnCNN, crops) -> float:
    """Mean PSNR of ``model`` (float or QAT, fake-quantised) on the held-out crops, rounded to 8 bits."""
    was = model.training
    model.eval()
    psnrs = []
    for clean, noisy in crops:
        x = torch.from_numpy(np.ascontiguousarray(noisy)).permute(2, 0, 1)[None].float() / 255
        c = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None].float() / 255
        out = torch.round(model(x).clamp(0, 1) * 255) / 255
        psnrs.append(float(metrics.psnr(out, c)))
    model.train(was)
    return float(np.mean(psnrs)) if psnrs else float("nan")


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    out, src = args.output_dir, args.model
    if out.resolve() == src.resolve():
        raise SystemExit("--output_dir must be a new folder, not the model folder")
    accelerator = Accelerator(project_config=ProjectConfiguration(project_dir=str(out)))
    set_seed(args.seed, device_specific=True)
    out.mkdir(parents=True, exist_ok=True)

    float_model = load_model(src)
    info_file = src / "training_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    mix, dirs = training_mix(info), training_dirs(info, args.train_data_dir)
    files, held_out = holdout_split(list_images([str(d) for d in dirs]), args.validation_fraction)
    loader = DataLoader(RandomPatches(FolderImages(files, float_model.channels), args.patch_size,
                                      args.patches_per_image),
                        batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                        num_workers=args.dataloader_num_workers)
    crops = validation_crops(held_out, args.max_validation_images, args.validation_crop, float_model.channels)
    map_channels = float_model.noise_map

    resume = None
    if args.resume_from_checkpoint:
        resume = (checkpoints(out)[-1:] or [None])[0] if args.resume_from_checkpoint == "latest" \
            else Path(args.resume_from_checkpoint)
        if resume is None:
            logger.info("no checkpoint to resume from; starting a new run")
    if resume is not None:  # the run's own settings; its scales come with the checkpoint
        spec = QuantSpec(**json.loads((out / SPEC_FILE).read_text()))
        model = prepare_qat(float_model, spec)
    else:
        spec = QuantSpec(weight_max=args.weight_max, float_last=not args.quantise_last,
                         learn_weight_scale=args.learn_weight_scale,
                         learn_activation_scale=not args.fixed_activation_ranges, equalise=args.equalise)
        calibration = []
        for clean in loader:
            _, noisy, given = degraded(clean, mix, map_channels)
            calibration.append((noisy, given))
            if len(calibration) == args.calibration_batches:
                break
        model = prepare_qat(float_model, spec, calibration)
        (out / SPEC_FILE).write_text(spec.to_json() + "\n")

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.learning_rate)
    warm, total = args.lr_warmup_steps, args.max_train_steps

    def factor(step: int) -> float:  # a plain function: checkpoints hold no schedule settings
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    step, wall_before = 0, 0.0
    if resume is not None:
        accelerator.load_state(str(resume))
        step = int(resume.name.split("-")[1])
        progress = resume / "progress.json"
        wall_before = json.loads(progress.read_text())["wall_seconds"] if progress.is_file() else 0.0
        logger.info(f"resumed from {resume} at step {step}")
    start, started_at = step, time.time()

    def save_checkpoint() -> None:
        for old in checkpoints(out)[: max(0, len(checkpoints(out)) - args.checkpoints_total_limit + 1)]:
            shutil.rmtree(old)
        ckpt = out / f"checkpoint-{step}"
        accelerator.save_state(str(ckpt))
        for f in ckpt.iterdir():
            give_open_mode(f)
        (ckpt / "progress.json").write_text(json.dumps({"wall_seconds": wall_before + time.time() - started_at}))

    teacher = copy.deepcopy(float_model).fuse().eval() if args.distill else None
    float_psnr = validate(float_model, crops)
    last_psnr = None
    bar = tqdm(total=total, initial=step, desc="qat", dynamic_ncols=True)
    model.train()
    stop = step >= total
    while not stop:
        for clean in loader:
            clean, noisy, given = degraded(clean, mix, map_channels)
            restored = model(noisy, given) if map_channels else model(noisy)
            w = damage_weights(noisy, clean, args.large_damage_weight) if args.large_damage_weight != 1 else None
            loss = weighted_mse((noisy - restored).float(), noisy - clean, w)
            if args.distill:
                with torch.no_grad():
                    taught = teacher(noisy, given) if map_channels else teacher(noisy)
                loss = (1 - args.distill) * loss + args.distill * weighted_mse(restored.float(), taught.float(), w)
            accelerator.backward(loss)
            if args.max_grad_norm:
                accelerator.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if step % args.validation_steps == 0:
                last_psnr = validate(accelerator.unwrap_model(model), crops)
                logger.info(f"step {step}: held-out PSNR int8 {last_psnr:.3f} dB, float {float_psnr:.3f} dB")
            bar.set_postfix(loss=f"{loss.item():.2e}")
            out_of_time = bool(args.max_train_minutes) and time.time() - started_at > 60 * args.max_train_minutes
            if step % args.checkpointing_steps == 0 or step >= total or out_of_time:
                save_checkpoint()
            if step >= total or out_of_time:
                stop = True
                break
    bar.close()

    qat = accelerator.unwrap_model(model).eval()
    if last_psnr is None or step % args.validation_steps:
        last_psnr = validate(qat, crops)
    for name in COPIED:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    from cleanvision.bench.sets import sha256_file
    from cleanvision.export import metadata
    from cleanvision.options import DEFAULT_OPSET

    command = " ".join(["python scripts/qat.py", *(argv if argv is not None else sys.argv[1:])])
    qat_info = {"command": command, "steps": step, "steps_this_run": step - start, "finished": step >= total,
                "train_batch_size": args.train_batch_size, "patch_size": args.patch_size,
                "learning_rate": args.learning_rate, "distill": args.distill,
                "large_damage_weight": args.large_damage_weight, "train_data": [str(d) for d in dirs],
                "train_images": len(files), "validation_images": len(crops),
                "val_psnr_float": float_psnr, "val_psnr_int8": last_psnr, "val_delta": last_psnr - float_psnr,
                "wall_seconds": wall_before + time.time() - started_at}
    meta = metadata(float_model, DEFAULT_OPSET, str(src)) | {
        "precision": "int8 (ONNX QDQ: uint8 activations per tensor, int8 weights per output channel)",
        "weights_sha256": sha256_file(out / WEIGHTS_FILE),
        "quantization": spec.to_json(),
        "qat": json.dumps(qat_info, sort_keys=True),
        "tiling": f"the tiles Denoiser runs (no whole-image phase correction); tiles overlap by "
                  f"{float_model.receptive_radius} px"}
    write_graph(out / INT8_FILE, int8_onnx_bytes(qat), meta, overwrite=True)
    (out / INFO_FILE).write_text(json.dumps(qat_info, indent=1) + "\n")
    logger.info(f"wrote {out / INT8_FILE}: held-out PSNR int8 {last_psnr:.3f} dB, float {float_psnr:.3f} dB "
                f"({last_psnr - float_psnr:+.3f}) after {step} steps")
    accelerator.end_training()
    return qat_info


if __name__ == "__main__":
    main()
