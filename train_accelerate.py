#!/usr/bin/env python
"""Train a CleanVision denoiser (DnCNN) with Hugging Face Accelerate.

One script for a laptop CPU, one GPU or many:

    python train_accelerate.py --train_data_dir ../shared/data/train/CBSD432 --output_dir runs/x
    accelerate launch train_accelerate.py --dataset_name <hub imagefolder repo> --output_dir runs/x
    ACCELERATE_USE_CPU=yes torchrun --nproc_per_node 2 train_accelerate.py ...

Clean patches come from local folders (``--train_data_dir``) or a Hub dataset through
``datasets`` (``--dataset_name``, e.g. DIV2K); the random mixture of Gaussian, salt-and-pepper,
speckle and scribble noise is applied on the training device, so no two noisy patches repeat.
The network learns the residual (MSE between predicted and true noise, as in the paper).
Checkpoints (``save_state``) every ``--checkpointing_steps``; ``--resume_from_checkpoint
latest`` continues an interrupted run at the same step. The final model is written with
``save_pretrained`` (config.json + model.safetensors) plus ``training_info.json`` and a
README.md that says what was trained, on what, and whether it was pushed to the Hub.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
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

from cleanvision import metrics
from cleanvision.data import FolderImages, HubImages, RandomPatches, center_crop, holdout_split, list_images
from cleanvision.hardware import cpu_name
from cleanvision.image_io import give_open_mode
from cleanvision.model import DnCNN
from cleanvision.noise import BENCH_RANGES, random_mixture
from cleanvision.noise_level import reduce_channels, training_map
from cleanvision.real_noise import TRAIN_MIX, TrainingMix, override_ranges, training_batch

logger = get_logger(__name__)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the description's layout and shows each option's default (not for
    flags, options that are off by default, or help that already names its default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--train_data_dir", nargs="+", help="local folder(s) of clean images (offline route)")
    d.add_argument("--dataset_name", help="Hub dataset of clean images, e.g. an imagefolder repo of DIV2K")
    d.add_argument("--dataset_config_name", default=None, help="configuration of --dataset_name, if it has several")
    d.add_argument("--data_files", default=None, help="data_files for load_dataset, e.g. DIV2K_train_HR.zip")
    d.add_argument("--image_column", default="image", help="column of --dataset_name holding the images")
    d.add_argument("--cache_dir", default=None, help="datasets cache folder (default: the datasets library's)")
    d.add_argument("--validation_data_dir", nargs="+",
                   help="held-out folder(s); default: a slice of the training folders (--validation_fraction)")
    d.add_argument("--validation_fraction", type=float, default=0.05,
                   help="fraction of the training folders held out for validation when no --validation_data_dir")
    d.add_argument("--max_validation_images", type=int, default=24,
                   help="validate on at most this many images (one centre crop each)")
    d.add_argument("--validation_crop", type=int, default=256, help="side of each validation centre crop, px")
    d.add_argument("--patch_size", type=int, default=64, help="side of the random training crops, px")
    d.add_argument("--patches_per_image", type=int, default=32,
                   help="random crops drawn from each training image per pass over the data")
    d.add_argument("--dataloader_num_workers", type=int, default=0,
                   help="data-loader worker processes (0: load in the training process)")
    d.add_argument("--real_fraction", type=float, default=TRAIN_MIX.real,
                   help="share of patches with real-photo damage (camera noise, correlated noise, JPEG); "
                        "the rest get the synthetic mixture. 0 = synthetic only")
    d.add_argument("--grey_fraction", type=float, default=TRAIN_MIX.grey,
                   help="share of patches made grey before damage (channel-identical damage)")
    d.add_argument("--clean_fraction", type=float, default=TRAIN_MIX.clean,
                   help="share of patches left undamaged (input = target), so the model learns that a "
                        "photo may need nothing; 0 = every patch damaged")
    d.add_argument("--real_ranges", nargs="+", default=[], metavar="NAME=VALUE",
                   help="override fields of cleanvision.real_noise.RealRanges (default: the shipped "
                        "model's mix) for this run, e.g. p_sigma_log=0 channel_gain=1,1 "
                        "(tuples comma-separated); "
                        "recorded in training_info.json")
    m = p.add_argument_group("model")
    m.add_argument("--channels", type=int, default=3, choices=(1, 3), help="3 for colour, 1 for grey")
    m.add_argument("--depth", type=int, default=17, help="number of conv layers")
    m.add_argument("--width", type=int, default=64, help="feature channels of the middle layers")
    m.add_argument("--pixel_unshuffle", type=int, default=1, help="2 = FFDNet-style half-resolution body")
    m.add_argument("--no_batch_norm", action="store_true", help="no BatchNorm in the middle layers")
    m.add_argument("--noise_map", type=int, default=0, choices=(0, 1, 3),
                   help="noise-level map input channels (FFDNet/CBDNet): 0 = blind; 1 = one level for all "
                        "colours; 3 = one per colour. The map's estimator trains alongside. With --init_from "
                        "a blind model, the map's input weights start at zero (the model starts as that model)")
    m.add_argument("--map_jpeg_level", action="store_true",
                   help="the map gives JPEG-only patches the robust std of their JPEG error instead of 0, so "
                        "that level 0 means no dense damage at all (a photo that needs nothing but its "
                        "impulses or strokes repaired); recorded in training_info.json")
    m.add_argument("--init_from", default=None,
                   help="start from these weights (a save_pretrained folder); its config replaces "
                        "--channels/--depth/--width/--pixel_unshuffle")
    t = p.add_argument_group("optimisation")
    t.add_argument("--output_dir", required=True,
                   help="run folder: checkpoints, logs, the final model and its README")
    t.add_argument("--train_only", default="all", choices=("all", "estimator"),
                   help="estimator: fit only a noise-map model's estimator (--init_from that model) at "
                        "--estimator_learning_rate, the denoiser frozen and not run, e.g. to refit it on "
                        "another damage mix once the denoiser's run is done (default: all)")
    t.add_argument("--estimator_fit", default="map", choices=("map", "restoration"),
                   help="what --train_only estimator fits: map, the true noise-level map (L1, in levels); "
                        "restoration, the frozen denoiser's --loss when it restores with the one level per "
                        "image the estimate gives (what auto mode does), plus --estimator_map_weight times "
                        "the map's L1: the level the model restores best with rather than the noise's std "
                        "(default: map)")
    t.add_argument("--estimator_map_weight", type=float, default=0.01,
                   help="with --estimator_fit restoration: weight of the map's L1 (levels) beside the "
                        "restoration loss (default: 0.01)")
    t.add_argument("--seed", type=int, default=0, help="random seed (each process derives its own)")
    t.add_argument("--train_batch_size", type=int, default=16, help="patches per batch, per device")
    t.add_argument("--gradient_accumulation_steps", type=int, default=1,
                   help="batches accumulated per optimizer step")
    t.add_argument("--max_train_steps", type=int, default=10000, help="optimizer steps in all (across resumes)")
    t.add_argument("--max_train_minutes", type=float, default=None,
                   help="stop (and save) after this much wall-clock time in this invocation")
    t.add_argument("--learning_rate", type=float, default=1e-3, help="peak learning rate (Adam)")
    t.add_argument("--estimator_learning_rate", type=float, default=1e-3,
                   help="peak learning rate of the noise-level estimator (with --noise_map), which starts "
                        "from scratch while the denoiser starts trained")
    t.add_argument("--lr_scheduler", default="cosine", choices=("cosine", "constant"),
                   help="after the warm-up: cosine decay to --min_lr_ratio, or constant")
    t.add_argument("--lr_warmup_steps", type=int, default=200, help="linear warm-up steps")
    t.add_argument("--min_lr_ratio", type=float, default=0.02,
                   help="the cosine schedule ends at this fraction of --learning_rate")
    t.add_argument("--adam_beta1", type=float, default=0.9, help="Adam beta1")
    t.add_argument("--adam_beta2", type=float, default=0.999, help="Adam beta2")
    t.add_argument("--adam_weight_decay", type=float, default=0.0, help="Adam weight decay")
    t.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping norm (0: no clipping)")
    t.add_argument("--loss", default="mse", choices=("mse", "l1", "charbonnier", "psnr"),
                   help="loss between the predicted and the true noise; psnr: minus the mean per-patch "
                        "PSNR, so a lightly and a heavily damaged patch weigh alike, as in the benchmark's mean")
    t.add_argument("--psnr_loss_floor_db", type=float, default=PSNR_LOSS_FLOOR_DB,
                   help="with --loss psnr: a patch counts as at most this PSNR, so near-perfect patches "
                        "(a few impulses) do not take the gradient from the rest; lower = closer to mse")
    t.add_argument("--mixed_precision", default=None, choices=("no", "fp16", "bf16"),
                   help="overrides the accelerate config")
    t.add_argument("--channels_last", action="store_true", help="NHWC memory format (faster on CPUs and GPUs)")
    c = p.add_argument_group("checkpoints and logging")
    c.add_argument("--checkpointing_steps", type=int, default=500, help="save a checkpoint every N steps")
    c.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep only the newest N checkpoints")
    c.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder or 'latest'")
    c.add_argument("--validation_steps", type=int, default=500, help="validate every N steps (and at the end)")
    c.add_argument("--report_to", default="tensorboard", help="tensorboard, wandb, all or none")
    c.add_argument("--logging_dir", default="logs", help="tracker logs, inside --output_dir")
    c.add_argument("--push_to_hub", action="store_true", help="upload the final model to --hub_model_id")
    c.add_argument("--hub_model_id", default=None, help="Hub repo id for --push_to_hub, e.g. me/cleanvision")
    c.add_argument("--hub_token", default=None, help="Hub token (default: the one `hf auth login` saved)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if not args.train_data_dir and not args.dataset_name:
        p.error("give --train_data_dir (local folders) or --dataset_name (a Hub dataset)")
    if args.push_to_hub and not args.hub_model_id:
        p.error("--push_to_hub needs --hub_model_id")
    for name in ("real_fraction", "grey_fraction", "clean_fraction"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            p.error(f"--{name} is a share of the patches, from 0 to 1; got {getattr(args, name)}")
    try:
        args.ranges = override_ranges(args.real_ranges)
    except ValueError as e:
        p.error(f"--real_ranges: {e}")
    return args


#: Fewer validation crops than this give a PSNR that moves by tenths of a dB from crop to crop.
MIN_USEFUL_VALIDATION = 8


def build_data(args: argparse.Namespace):
    """Training image source and a fixed list of (clean, noisy) validation crops."""
    if args.dataset_name:
        train = HubImages(args.dataset_name, "train", args.image_column, args.dataset_config_name,
                          args.data_files, args.channels, args.cache_dir)
        val_files = list_images(args.validation_data_dir) if args.validation_data_dir else []
    else:
        files = list_images(args.train_data_dir)
        if args.validation_data_dir:
            val_files = list_images(args.validation_data_dir)
        else:
            files, val_files = holdout_split(files, args.validation_fraction)
        train = FolderImages(files, args.channels)
    val = []
    for i, f in enumerate(val_files[: args.max_validation_images]):
        clean = center_crop(FolderImages([f], args.channels)[0], args.validation_crop)
        noisy, params = random_mixture(clean, np.random.default_rng(1000 + i), BENCH_RANGES)
        val.append((clean, noisy, dense_noise_std(clean, params)))
    if args.validation_data_dir:
        source = f"--validation_data_dir ({len(val_files)} images)"
    elif args.dataset_name:
        source = "the Hub dataset route, which holds nothing out without --validation_data_dir"
    else:
        source = f"--validation_fraction {args.validation_fraction:g} of {len(train) + len(val_files)} images"
    if not val:
        logger.warning(f"validation set is EMPTY ({source}): no validation PSNR/SSIM will be reported. "
                       "Pass --validation_data_dir with held-out photos, or a larger --validation_fraction.",
                       main_process_only=True)
    elif len(val) < MIN_USEFUL_VALIDATION:
        logger.warning(f"validation set is tiny: {len(val)} crop(s) from {source}; its PSNR/SSIM will be noisy. "
                       "Pass --validation_data_dir or a larger --validation_fraction for a steadier number.",
                       main_process_only=True)
    else:
        logger.info(f"validation: {len(val)} centre crops of {args.validation_crop} px from {source}",
                    main_process_only=True)
    return train, val


def dense_noise_std(clean: np.ndarray, params: dict) -> np.ndarray:
    """The std of a validation crop's dense noise at each pixel (0-255 scale), from what
    :func:`random_mixture` drew: Gaussian σ and speckle σ·x (impulses and strokes are not
    dense). The map a noise-map model is validated with beside its own estimate."""
    var = params.get("sigma", 0.0) ** 2 + params.get("speckle_var", 0.0) * clean.astype(np.float64) ** 2
    return np.sqrt(var).astype(np.float32)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


@torch.no_grad()
def validate(model, val, accelerator) -> dict[str, float]:
    """Mean PSNR/SSIM of the restored validation crops, each process taking its share.

    Any number of crops on any number of processes: process ``r`` restores crops ``r``,
    ``r + n``, ``r + 2n`` ... (none when there are fewer crops than processes), and one
    ``reduce`` sums the PSNRs, SSIMs and counts, so every crop counts exactly once and the
    collective has the same shape everywhere. The crops go through the unwrapped model:
    a DDP forward would sync buffers, a collective that processes without a crop never join.
    """
    if not val:
        return {}
    modes = [m.training for m in model.modules()]  # given back as found (a frozen denoiser stays in eval)
    model.eval()
    net = accelerator.unwrap_model(model)
    dev = accelerator.device
    # PSNR sum, SSIM sum, crops, and a noise-map model's PSNR with the true map (float32: MPS has no float64)
    totals = torch.zeros(4, device=dev)
    for i in range(accelerator.process_index, len(val), accelerator.num_processes):
        clean, noisy, std = (to_tensor(a).to(dev) for a in val[i])
        with accelerator.autocast():
            out = net(noisy)  # a noise-map model reads its map with its estimator
            guided = net(noisy, reduce_channels(std, net.noise_map)) if net.noise_map else out
        out, guided = (torch.round(o.float().clamp(0, 1) * 255) / 255 for o in (out, guided))
        totals += torch.stack([metrics.psnr(out, clean).sum(), metrics.ssim(out, clean).sum(),
                               torch.ones((), device=dev), metrics.psnr(guided, clean).sum()])
    for m, mode in zip(model.modules(), modes):
        m.train(mode)
    totals = accelerator.reduce(totals, "sum")
    logs = {"val/psnr": float(totals[0] / totals[2]), "val/ssim": float(totals[1] / totals[2])}
    if net.noise_map:
        logs["val/psnr_guided"] = float(totals[3] / totals[2])
    return logs


class LRSchedule:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``, as a LambdaLR factor.

    With ``--max_train_minutes`` the cosine ends at whichever comes first, the step limit or
    the time budget of this invocation (continuing from where a resumed run left off), so a
    fixed wall-clock run still ends at a low learning rate. Accelerate steps a prepared
    scheduler once per process per optimizer step, hence the division by ``processes``.
    """

    def __init__(self, args: argparse.Namespace, processes: int):
        self.args, self.processes = args, processes
        self.start_progress = 0.0
        self.time_used = 0.0  # fraction of the time budget, the same on every process

    def step_progress(self, step: int) -> float:
        a = self.args
        return min(1.0, max(0.0, (step - a.lr_warmup_steps) / max(1, a.max_train_steps - a.lr_warmup_steps)))

    def start_clock(self, step: int) -> None:
        self.start_progress, self.time_used = self.step_progress(step), 0.0

    def __call__(self, scheduler_step: int) -> float:
        a, step = self.args, scheduler_step // self.processes
        if step < a.lr_warmup_steps:
            return (step + 1) / a.lr_warmup_steps
        if a.lr_scheduler == "constant":
            return 1.0
        progress = self.step_progress(step)
        if a.max_train_minutes:
            progress = max(progress, self.start_progress + (1 - self.start_progress) * self.time_used)
        return a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


#: Default cap of a patch's PSNR in the ``psnr`` loss: a near-perfect patch must not take the
#: whole gradient (``--psnr_loss_floor_db``).
PSNR_LOSS_FLOOR_DB = 50.0


def residual_loss(pred: torch.Tensor, target: torch.Tensor, kind: str,
                  psnr_floor_db: float = PSNR_LOSS_FLOOR_DB) -> torch.Tensor:
    """Loss between predicted and true residuals of a B×C×H×W batch in [0, 1] units.

    ``mse`` weighs patches by their squared error, so the heavily damaged ones dominate;
    ``psnr`` (−mean of per-patch PSNR, whose gradient is the MSE's divided by the patch's own
    error) gives every patch the same weight in dB, which is what a mean-PSNR benchmark scores.
    ``psnr_floor_db`` caps a patch's PSNR there (its error floored at 10^(−dB/10)), so
    near-perfect patches (a few impulses, a clean corner) cannot take the whole gradient.
    """
    if kind == "psnr":
        mse = ((pred - target) ** 2).flatten(1).mean(dim=1)
        return 10 * torch.log10(mse + 10 ** (-psnr_floor_db / 10)).mean()
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    return torch.sqrt((pred - target) ** 2 + 1e-6).mean()


def estimator_loss(estimate: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """L1 between the estimated and the true noise-level map, in levels of the 0-255 scale
    (a median-unbiased fit: an estimate of one photo's level is the median of its map)."""
    return 255.0 * F.l1_loss(estimate, sigma)


def param_groups(model: DnCNN) -> list[list[torch.nn.Parameter]]:
    """The denoiser's and the estimator's parameters, clipped apart: the estimator's loss must
    not shrink the denoiser's step through one shared gradient norm, nor the other way."""
    est = list(model.estimator.parameters()) if model.noise_map else []
    ids = {id(p) for p in est}
    return [g for g in ([p for p in model.parameters() if id(p) not in ids], est) if g]


def checkpoints(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def write_run_readme(out: Path, info: dict, model: DnCNN, hub_repo: str | None = None,
                     pushed_url: str | None = None) -> Path:
    """The run folder's README.md (replacing the generic card ``save_pretrained`` writes): what
    was trained, on what, for how long, how it validated, and where it is: saved in ``out``;
    pushed to the Hub repo ``hub_repo`` only when ``pushed_url`` (the commit URL) says it was.
    Sections without content are left out. Its YAML header makes it a valid Hub model card."""
    arch = f"DnCNN, {model.depth} layers, {model.width} wide, {'colour' if model.channels == 3 else 'grey'}"
    if model.scale > 1:
        arch += f", pixel-unshuffle {model.scale}"
    data = info["train_data"]
    data = ", ".join(map(str, data)) if isinstance(data, (list, tuple)) else str(data)
    hours, minutes = divmod(round(info["wall_seconds"] / 60), 60)
    took = f"{hours} h {minutes} min" if hours else f"{minutes} min" if minutes else "under a minute"
    lines = ["---", "library_name: cleanvision", "license: mit", "pipeline_tag: image-to-image",
             "tags:", "- image-restoration", "- denoising", "- dncnn", "---", "",
             f"# CleanVision denoiser: {out.name}", "",
             f"A blind image denoiser ({arch}) trained with CleanVision's `train_accelerate.py`.", "",
             "## Training", "",
             f"- Command: `{info['command']}`",
             f"- Data: {data} ({info['train_images']} images)",
             f"- Steps: {info['steps']:,} ({info['steps_this_run']:,} in the last run), "
             f"{info['patches_seen']:,} patches; stopped by the {info['stopped_by']}",
             f"- Hardware: {info['processes']} process(es) on {info['hardware']}, mixed precision "
             f"{info['mixed_precision']}, {took}"]
    if "init_from" in info:
        lines.append(f"- Started from the weights in `{info['init_from']['path']}`")
    lines.append("")
    if "val/psnr" in info:
        lines += ["## Validation", "",
                  f"Mean PSNR {info['val/psnr']:.2f} dB, SSIM {info['val/ssim']:.4f} on {info['validation_images']} "
                  "validation centre crops with the benchmark's random noise mixture.", ""]
    else:
        lines += ["There was no validation set, so there are no validation numbers.", ""]
    where = hub_repo or str(out)
    lines += ["## Use", "", "```python", "from cleanvision import Denoiser", "",
              f'den = Denoiser.from_pretrained("{where}")', "restored = den(noisy)  # numpy in, numpy out", "```", "",
              "## Files", "",
              f"Saved by the training run in `{out}`: `config.json`, `model.safetensors`, `training_info.json` "
              "(every number above) and this README."]
    if hub_repo and pushed_url:
        lines.append(f"Pushed to the Hugging Face Hub as [{hub_repo}](https://huggingface.co/{hub_repo}) "
                     f"({pushed_url}).")
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    out = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / args.logging_dir)),
    )
    set_seed(args.seed, device_specific=True)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    logger.info(f"{accelerator.num_processes} process(es) on {accelerator.device}, "
                f"mixed precision {accelerator.mixed_precision}", main_process_only=True)

    train_images, val = build_data(args)
    mix = TrainingMix(real=args.real_fraction, grey=args.grey_fraction, clean=args.clean_fraction, ranges=args.ranges,
                      jpeg_level=args.map_jpeg_level)
    patches = RandomPatches(train_images, args.patch_size, args.patches_per_image)
    loader = DataLoader(patches, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                        num_workers=args.dataloader_num_workers,
                        persistent_workers=args.dataloader_num_workers > 0)

    if args.init_from:
        model = DnCNN.from_pretrained(args.init_from).train()
        if model.noise_map and model.level_curve is not None:  # fitted to those weights, not to what training makes
            logger.info("dropping the level curve of --init_from: refit it on the result (scripts/fit_level_curve.py)",
                        main_process_only=True)
            model.with_level_curve(None)
        if args.noise_map and not model.noise_map:
            model = DnCNN.with_noise_map(model, args.noise_map)
    else:
        model = DnCNN(args.channels, args.depth, args.width, args.pixel_unshuffle, not args.no_batch_norm,
                      args.noise_map)
    map_channels = model.noise_map
    estimator_only = args.train_only == "estimator"
    if estimator_only and not map_channels:
        raise SystemExit("--train_only estimator needs a noise-map model: --init_from one, or --noise_map 1|3")
    through_denoiser = args.estimator_fit == "restoration"
    if through_denoiser and not estimator_only:
        raise SystemExit("--estimator_fit restoration goes with --train_only estimator (the denoiser frozen)")
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    groups = param_groups(model)
    lrs = [args.learning_rate, args.estimator_learning_rate][: len(groups)]
    if estimator_only:  # the denoiser keeps its weights and BatchNorm statistics: it is never run here
        for p in groups[0]:
            p.requires_grad_(False)
        groups, lrs = groups[1:], lrs[1:]
    optimizer = torch.optim.Adam([{"params": g, "lr": lr} for g, lr in zip(groups, lrs)],
                                 betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.adam_weight_decay)
    schedule = LRSchedule(args, accelerator.num_processes)
    # a plain function, so checkpoints hold no schedule settings and a resumed run may change them
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    global_step, wall_before = 0, 0.0
    if args.resume_from_checkpoint:
        path = (checkpoints(out)[-1:] or [None])[0] if args.resume_from_checkpoint == "latest" \
            else Path(args.resume_from_checkpoint)
        if path is None:
            logger.info("no checkpoint to resume from; starting a new run", main_process_only=True)
        else:
            accelerator.load_state(str(path))
            global_step = int(path.name.split("-")[1])
            if (path / "progress.json").is_file():
                wall_before = json.loads((path / "progress.json").read_text())["wall_seconds"]
            logger.info(f"resumed from {path} at step {global_step}", main_process_only=True)

    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("cleanvision", config={k: v for k, v in vars(args).items()
                                                          if isinstance(v, (int, float, str, bool))})

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process and args.checkpoints_total_limit:
            for old in checkpoints(out)[: max(0, len(checkpoints(out)) - args.checkpoints_total_limit + 1)]:
                shutil.rmtree(old)
        ckpt = out / f"checkpoint-{global_step}"
        accelerator.save_state(str(ckpt))
        if accelerator.is_main_process:  # wall time so far, so a resumed run reports the total
            for f in ckpt.iterdir():  # safetensors and torch.save write 0600; give what open() would
                give_open_mode(f)
            (ckpt / "progress.json").write_text(json.dumps({"wall_seconds": wall_before + time.time() - started_at}))
            # the model's config beside its weights: a checkpoint is then a model folder that
            # Denoiser.from_pretrained, cleanvision eval and heldout_check load as it is
            (ckpt / "config.json").write_text(json.dumps(accelerator.unwrap_model(model)._hub_mixin_config,
                                                         indent=2, sort_keys=True))

    start, started_at = global_step, time.time()
    schedule.start_clock(global_step)
    info_path = out / "training_info.json"
    bar = tqdm(total=args.max_train_steps, initial=global_step, desc="train",
               disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    last_val: dict[str, float] = {}
    model.train()
    if estimator_only:  # the frozen denoiser restores as it will in use: BatchNorm's running statistics
        accelerator.unwrap_model(model).body.eval()
    stop = global_step >= args.max_train_steps
    out_of_time = False
    while not stop:
        for clean in loader:
            with accelerator.accumulate(model):
                clean, noisy, sigma = training_batch(clean.float() / 255.0, mix, return_sigma=True)
                if args.channels_last:
                    clean = clean.contiguous(memory_format=torch.channels_last)
                    noisy = noisy.contiguous(memory_format=torch.channels_last)
                with accelerator.autocast():  # forward() through DDP; its residual is the prediction
                    if through_denoiser:
                        restored, estimate = model(noisy, with_estimate=True, per_image_level=True)
                    elif estimator_only:
                        estimate = model(noisy, estimate_only=True)
                    elif map_channels:
                        given = training_map(sigma, map_channels)
                        restored, estimate = model(noisy, given, with_estimate=True)
                    else:
                        restored = model(noisy)
                est_loss = (estimator_loss(estimate.float(), reduce_channels(sigma, map_channels))
                            if map_channels else None)
                if through_denoiser:
                    loss = (residual_loss((noisy - restored).float(), noisy - clean, args.loss, args.psnr_loss_floor_db)
                            + args.estimator_map_weight * est_loss)
                elif estimator_only:
                    loss = est_loss
                else:
                    loss = residual_loss((noisy - restored).float(), noisy - clean, args.loss, args.psnr_loss_floor_db)
                accelerator.backward(loss if est_loss is None or estimator_only else loss + est_loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    for group in param_groups(accelerator.unwrap_model(model)):
                        accelerator.clip_grad_norm_(group, args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            bar.update(1)
            logs = {"train/loss": loss.detach().item(), "train/lr": scheduler.get_last_lr()[0]}
            if map_channels:
                logs["train/estimator_l1"] = est_loss.detach().item()
            if global_step % args.validation_steps == 0 or global_step == args.max_train_steps:
                last_val = validate(model, val, accelerator)
                logs.update(last_val)
            bar.set_postfix(loss=f"{logs['train/loss']:.2e}", **{k[4:]: f"{v:.3f}" for k, v in last_val.items()})
            accelerator.log(logs, step=global_step)
            out_of_time = False
            if args.max_train_minutes:  # every process must agree on the clock, so take the max
                used = torch.tensor([(time.time() - started_at) / (60 * args.max_train_minutes)],
                                    device=accelerator.device)
                schedule.time_used = min(1.0, float(accelerator.reduce(used, "max").item()))
                out_of_time = schedule.time_used >= 1.0
            if global_step % args.checkpointing_steps == 0 or out_of_time or global_step >= args.max_train_steps:
                save_checkpoint()
            if out_of_time or global_step >= args.max_train_steps:
                stop = True
                break
    bar.close()

    if not last_val or global_step % args.validation_steps:
        last_val = validate(model, val, accelerator)
    accelerator.wait_for_everyone()
    info = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "steps": global_step, "steps_this_run": global_step - start,
        "patches_seen": global_step * args.train_batch_size * args.gradient_accumulation_steps
        * accelerator.num_processes,
        "processes": accelerator.num_processes, "device": str(accelerator.device),
        "hardware": torch.cuda.get_device_name() if torch.cuda.is_available()
        else f"{cpu_name()} ({os.cpu_count()} cores)",
        "mixed_precision": accelerator.mixed_precision,
        "degradations": {"real_fraction": mix.real, "grey_fraction": mix.grey, "clean_fraction": mix.clean,
                         "real_ranges": dataclasses.asdict(mix.ranges), "synthetic_ranges": dataclasses.asdict(mix.synthetic),
                         "map_jpeg_level": mix.jpeg_level},
        "wall_seconds": wall_before + time.time() - started_at,
        "train_data": args.dataset_name or args.train_data_dir,
        "train_images": len(train_images), "validation_images": len(val), **last_val,
        # the schedule ran to its end: the step limit, or the --max_train_minutes budget
        "finished": global_step >= args.max_train_steps or out_of_time,
        "stopped_by": "step limit" if global_step >= args.max_train_steps
        else f"time budget: --max_train_minutes {args.max_train_minutes:g}",
    }
    if args.init_from and (Path(args.init_from) / "training_info.json").is_file():
        # a second stage records the first, so the shipped model's whole history stays with it
        info["init_from"] = {"path": args.init_from,
                             **json.loads((Path(args.init_from) / "training_info.json").read_text())}
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        final.save_pretrained(out)
        info_path.write_text(json.dumps(info, indent=1))
        hub_repo = args.hub_model_id if args.push_to_hub else None
        write_run_readme(out, info, final, hub_repo)
        logger.info(f"saved model to {out}: {json.dumps(last_val)}", main_process_only=True)
        if args.push_to_hub:
            from cleanvision.hub import push_to_hub
            url = push_to_hub(out, args.hub_model_id, out / "README.md", token=args.hub_token)
            write_run_readme(out, info, final, hub_repo, pushed_url=url)  # only now is "pushed" true
            logger.info(f"pushed to the Hub: {url}", main_process_only=True)
    accelerator.end_training()
    return info


if __name__ == "__main__":
    main()
