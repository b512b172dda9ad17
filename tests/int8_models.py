"""Small real models for the int8 tests: a float DnCNN trained briefly on the training photos
(so it genuinely denoises), and its int8 folder made by ``scripts/qat.py``.

The shipped weights take minutes per hundred QAT steps on two cores; these take seconds and
go through exactly the same code (training mix, QAT, export, engine)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from conftest import ROOT, SHARED, load_script, require

TRAIN = SHARED / "data" / "train" / "CBSD432"


def train_small_float(folder: Path, noise_map: int = 0, steps: int = 300, seed: int = 0) -> Path:
    """A 6-layer, 32-wide pixel-unshuffle DnCNN trained ``steps`` steps on CBSD432 crops with the
    synthetic mixture (Gaussian, salt-and-pepper, speckle, strokes: quick to learn and to draw),
    saved with a training_info.json naming its data and degradations as train_accelerate.py
    records them, which scripts/qat.py then trains on."""
    import dataclasses

    from torch.utils.data import DataLoader

    from cleanvision import DnCNN
    from cleanvision.data import FolderImages, RandomPatches, holdout_split, list_images
    from cleanvision.noise_level import training_map
    from cleanvision.real_noise import SYNTHETIC_ONLY as mix
    from cleanvision.real_noise import training_batch

    torch.manual_seed(seed)
    files, _ = holdout_split(list_images([str(require(TRAIN))]), 0.05)
    loader = DataLoader(RandomPatches(FolderImages(files[:60]), 64, 16), batch_size=16, shuffle=True, drop_last=True)
    model = DnCNN(channels=3, depth=6, width=32, pixel_unshuffle=2, noise_map=noise_map, estimator_depth=3,
                  estimator_width=8).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    step = 0
    while step < steps:
        for clean in loader:
            clean, noisy, sigma = training_batch(clean.float() / 255, mix, return_sigma=True)
            given = training_map(sigma, noise_map) if noise_map else None
            loss = torch.nn.functional.mse_loss(model(noisy, given), clean)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    model.eval().save_pretrained(folder)
    degradations = {"real_fraction": mix.real, "grey_fraction": mix.grey, "clean_fraction": mix.clean,
                    "real_ranges": dataclasses.asdict(mix.ranges), "synthetic_ranges": dataclasses.asdict(mix.synthetic)}
    (folder / "training_info.json").write_text(json.dumps({"train_data": [str(TRAIN)], "steps": steps,
                                                           "degradations": degradations}))
    return folder


def run_qat(model_dir: Path, out: Path, *extra: str) -> dict:
    """``scripts/qat.py`` on ``model_dir`` with small settings; returns its qat_info."""
    qat = load_script(ROOT / "scripts" / "qat.py")
    return qat.main([str(model_dir), "--output_dir", str(out), "--train_batch_size", "8", "--max_validation_images",
                     "4", "--validation_crop", "128", "--calibration_batches", "2", "--learning_rate", "1e-4",
                     "--lr_warmup_steps", "5", *extra])
