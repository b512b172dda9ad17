"""train_accelerate.py for real: a 2-process run, resuming, and a saved model that loads and denoises."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cleanvision import Denoiser, DnCNN
from cleanvision.image_io import write_image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_accelerate.py"
TINY = ["--depth", "4", "--width", "8", "--pixel_unshuffle", "2", "--patch_size", "32",
        "--train_batch_size", "4", "--patches_per_image", "2", "--max_validation_images", "2",
        "--validation_crop", "64", "--report_to", "none", "--checkpointing_steps", "2",
        "--validation_steps", "2", "--lr_warmup_steps", "1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Twelve real photo crops from scikit-image (no network, no shared data needed)."""
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for i, img in enumerate([data.astronaut(), data.coffee(), data.chelsea()]):
        for j in range(4):
            write_image(d / f"{i}_{j}.png", np.ascontiguousarray(img[j * 30:j * 30 + 200, j * 40:j * 40 + 250]))
    return d


def run(args, env_extra=None, launcher=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = (launcher or [sys.executable]) + [str(SCRIPT), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_processes_with_torchrun(tmp_path, folder):
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    run(["--train_data_dir", str(folder), "--output_dir", str(out), "--max_train_steps", "4", *TINY],
        env_extra={"ACCELERATE_USE_CPU": "yes"}, launcher=torchrun)
    info = json.loads((out / "training_info.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 4
    assert info["patches_seen"] == 4 * 4 * 2
    assert "val/psnr" in info and info["validation_images"] >= 1
    model = DnCNN.from_pretrained(out)  # strict load of what the main process saved
    assert model.depth == 4 and model.scale == 2
    den = Denoiser.from_pretrained(out)
    img = np.asarray(__import__("skimage").data.astronaut()[:64, :64])
    assert den(img).shape == img.shape


def test_resume_continues_at_the_saved_step(tmp_path, folder):
    out = tmp_path / "run"
    base = ["--train_data_dir", str(folder), "--output_dir", str(out), *TINY]
    run(base + ["--max_train_steps", "4"])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]  # limit 2
    r = run(base + ["--max_train_steps", "6", "--resume_from_checkpoint", "latest"])
    assert "resumed from" in r.stderr and "at step 4" in r.stderr
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 6 and info["steps_this_run"] == 2
    assert info["finished"] is True and info["stopped_by"] == "step limit"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]


def test_help_and_bad_arguments():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--train_data_dir" in r.stdout and "--dataset_name" in r.stdout
    r = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", "x"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--train_data_dir" in r.stderr


def test_time_budget_stops_saves_and_resumes(tmp_path, folder):
    """--max_train_minutes: stops, checkpoints and saves well before the step limit; a rerun resumes."""
    out = tmp_path / "run"
    base = ["--train_data_dir", str(folder), "--output_dir", str(out), *TINY, "--max_train_steps", "100000",
            "--max_train_minutes", "0.02", "--resume_from_checkpoint", "latest"]
    run(base)
    first = json.loads((out / "training_info.json").read_text())
    assert 0 < first["steps"] < 100000
    assert first["finished"] is True and first["stopped_by"] == "time budget: --max_train_minutes 0.02"
    assert (out / f"checkpoint-{first['steps']}").is_dir() and (out / "model.safetensors").is_file()
    run(base)
    second = json.loads((out / "training_info.json").read_text())
    assert second["steps"] > first["steps"] and second["steps_this_run"] == second["steps"] - first["steps"]
    assert second["wall_seconds"] > first["wall_seconds"]  # total time, not this invocation's only


def test_hub_dataset_route_offline(tmp_path, folder):
    """--dataset_name goes through `datasets` (here its local imagefolder builder, no network)."""
    out = tmp_path / "run"
    run(["--dataset_name", "imagefolder", "--data_files", str(folder / "*.png"), "--validation_data_dir", str(folder),
         "--output_dir", str(out), "--max_train_steps", "2", *TINY],
        env_extra={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    info = json.loads((out / "training_info.json").read_text())
    assert info["train_data"] == "imagefolder" and info["train_images"] == 12 and info["steps"] == 2
